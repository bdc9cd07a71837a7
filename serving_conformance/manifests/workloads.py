"""What the manifests will run: pod specs, containers, images and vLLM command lines.

KServe components (predictor, transformer, explainer) carry pod-level fields inline; Deployments
carry them under `spec.template.spec`. Both are presented here as `Workload`s so that rules and
cluster tests read containers the same way.

One module (about 450 lines): every rule and test reads workloads through these few types
(Workload, Container, Image, VllmArgs); kept together so that they are read one way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving_conformance.base.text import short_repr
from serving_conformance.manifests.model import ManifestSet, Resource

KSERVE_CONTAINER = "kserve-container"
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet")
# KServe's serving runtimes: templates whose resources each InferenceService that uses one gives.
RUNTIME_KINDS = ("ServingRuntime", "ClusterServingRuntime")
GPU_RESOURCE = "nvidia.com/gpu"
# NVIDIA's MIG slices (the device plugin's mixed strategy: nvidia.com/mig-1g.10gb, ...) are GPUs too,
# each its own extended resource; the GPU slots count whole GPUs only.
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
VLLM_DEFAULT_PORT = 8000
# KServe points the Service and probes at the first containerPort, or at 8080 when none is declared.
KSERVE_DEFAULT_PORT = 8080
MODELCAR_MOUNT = "/mnt/models"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# vLLM's images: the repository's last part is "vllm" or starts with "vllm-"/"vllm_".
_VLLM_IMAGE = re.compile(r"^vllm(?:[-_][a-z0-9][a-z0-9._-]*)?$")
_VLLM_COMMAND = re.compile(r"(?:^|[\s/])vllm(?:\s+serve\b|\s|$)|vllm\.entrypoints")
# Accelerators, by the prefix of the extended resource a container asks for (NVIDIA's MIG slices
# included) and by the words of an image's name, tag or organisation.
ACCELERATOR_RESOURCES = {
    "nvidia.com/": "cuda", "google.com/tpu": "tpu", "amd.com/": "rocm", "aws.amazon.com/neuron": "neuron",
    "habana.ai/": "hpu", "gpu.intel.com/": "xpu", "rebellions.ai/": "npu", "furiosa.ai/": "npu",
}
ACCELERATOR_WORDS = {
    "cpu": {"cpu"}, "tpu": {"tpu"}, "rocm": {"rocm"}, "neuron": {"neuron"}, "hpu": {"hpu", "gaudi", "habana"},
    "xpu": {"xpu"}, "npu": {"rbln", "npu"},
}
# Images that imitate vLLM's API for tests and demos; they are not vLLM.
IMITATIONS = ("mock", "simulator", "emulator", "fake", "stub")
OCI_DIGEST_URI = re.compile(r"^oci://[^@\s]+/[^@\s]+@sha256:[0-9a-f]{64}$")
# The release a tag names, pre-release and post-release parts included (v0.23.0rc1 is not 0.23.0);
# an architecture suffix (v0.23.0-x86_64) is not part of it.
_VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:\.post\d+|\.?rc\d+|\.dev\d+)*)(?![\w.])")
# Boolean vLLM flags that never take a value; needed to tell a flag from a positional model.
# Options that take one or more values (argparse nargs="+"): `--served-model-name a b`.
_VLLM_MANY_VALUES = frozenset({"--served-model-name"})
_VLLM_BOOLEAN_FLAGS = frozenset(
    {
        "--enforce-eager",
        "--trust-remote-code",
        "--disable-log-requests",
        "--disable-log-stats",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--enable-chunked-prefill",
        "--enable-auto-tool-choice",
        "--disable-frontend-multiprocessing",
        "--enable-lora",
    }
)


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


@dataclass(frozen=True)
class Image:
    reference: str

    @property
    def digest_pinned(self) -> bool:
        return bool(_DIGEST.search(self.reference))

    @property
    def repository(self) -> str:
        name = self.reference.split("@", 1)[0]
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return name

    @property
    def tag(self) -> str | None:
        last = self.reference.split("@", 1)[0].rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else None

    @property
    def version(self) -> str | None:
        match = _VERSION.search(self.tag or "")
        return match.group(1) if match else None


@dataclass(frozen=True)
class Container:
    body: Mapping[str, Any]

    def __repr__(self) -> str:  # never the body (tracebacks, JUnit)
        return f"Container({short_repr(self.name)})"

    @property
    def name(self) -> str:
        return str(self.body.get("name", ""))

    @property
    def image(self) -> Image:
        return Image(str(self.body.get("image", "")))

    @property
    def command(self) -> list[str]:
        return [str(c) for c in as_list(self.body.get("command"))]

    @property
    def args(self) -> list[str]:
        return [str(a) for a in as_list(self.body.get("args"))]

    @property
    def resources(self) -> Mapping[str, Any]:
        return as_mapping(self.body.get("resources"))

    def requests(self) -> Mapping[str, Any]:
        return as_mapping(self.resources.get("requests"))

    def limits(self) -> Mapping[str, Any]:
        return as_mapping(self.resources.get("limits"))

    @property
    def env(self) -> dict[str, str | None]:
        """Env by name; None where the value comes from a reference (valueFrom)."""
        result: dict[str, str | None] = {}
        for entry in as_list(self.body.get("env")):
            entry = as_mapping(entry)
            if "name" in entry:
                result[str(entry["name"])] = None if "valueFrom" in entry else str(entry.get("value", ""))
        return result

    def env_entry(self, name: str) -> Mapping[str, Any] | None:
        return next(
            (as_mapping(e) for e in as_list(self.body.get("env")) if as_mapping(e).get("name") == name),
            None,
        )

    @property
    def container_ports(self) -> list[int]:
        ports = []
        for port in as_list(self.body.get("ports")):
            value = as_mapping(port).get("containerPort")
            if isinstance(value, int):
                ports.append(value)
        return ports

    def probe_ports(self) -> dict[str, Any]:
        """Port of each declared probe (an int, a named port, or None when absent)."""
        result: dict[str, Any] = {}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            spec = as_mapping(self.body.get(probe))
            if not spec:
                continue
            handler = as_mapping(spec.get("httpGet")) or as_mapping(spec.get("tcpSocket"))
            result[probe] = handler.get("port")
        return result

    def named_port(self, name: str) -> int | None:
        for port in as_list(self.body.get("ports")):
            port = as_mapping(port)
            if port.get("name") == name and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
        return None

    @property
    def is_vllm(self) -> bool:
        """vLLM's own image (vllm/vllm-openai, vllm-openai-cpu, vllm-tpu, rocm/vllm, a platform's
        vllm-* build), or a command that runs it (`vllm serve`, `python -m vllm.entrypoints...`).
        Images that only carry the word (a UI calling vLLM, a mock imitating its API) are not."""
        name = self.image.repository.rsplit("/", 1)[-1].lower()
        if any(word in name for word in IMITATIONS):
            return False
        if _VLLM_IMAGE.match(name):
            return True
        return any(_VLLM_COMMAND.search(part) for part in self.command)

    @property
    def accelerator(self) -> str:
        """What vLLM runs on: the accelerator resource the container asks for, else what its image
        says it is built for (cpu, tpu, rocm, neuron, hpu, xpu, npu in its name, tag or
        organisation; vLLM's own vllm-openai is its CUDA build), else "unknown" (a third party's
        build that does not say: nothing is assumed)."""
        asked = set(self.limits()) | set(self.requests())
        for resource in sorted(asked):
            for prefix, accelerator in ACCELERATOR_RESOURCES.items():
                if str(resource).startswith(prefix):
                    return accelerator
        repository = self.image.repository.lower()
        last = repository.rsplit("/", 1)[-1]
        tokens = set(re.split(r"[-_.:/]", f"{last}:{self.image.tag or ''}".lower()))
        tokens |= {repository.split("/")[-2]} if "/" in repository else set()
        for accelerator, words in ACCELERATOR_WORDS.items():
            if tokens & words:
                return accelerator
        return "cuda" if last == "vllm-openai" or "cuda" in tokens else "unknown"

    @property
    def vllm(self) -> VllmArgs:
        return VllmArgs.parse(self.command, self.args)

    @property
    def vllm_tokens(self) -> list[str]:
        return vllm_cli_tokens(self.command, self.args)

    @property
    def requests_gpu(self) -> bool:
        return GPU_RESOURCE in self.limits() or GPU_RESOURCE in self.requests()

    @property
    def gpu_limit(self) -> str | None:
        """The NVIDIA GPU resource its limits ask for (a whole GPU, else a MIG slice), or None."""
        limits = self.limits()
        if GPU_RESOURCE in limits:
            return GPU_RESOURCE
        return next((str(name) for name in sorted(limits) if str(name).startswith(MIG_RESOURCE_PREFIX)), None)

    @property
    def claims_devices(self) -> bool:
        """Devices from Dynamic Resource Allocation (resources.claims): GPUs without a count here."""
        return bool(as_list(self.resources.get("claims")))

    @property
    def is_cpu_build(self) -> bool:
        """vLLM's CPU images say so (vllm-openai-cpu, vllm-cpu-..., a cpu tag)."""
        return self.accelerator == "cpu"


def vllm_cli_tokens(command: Sequence[str], args: Sequence[str]) -> list[str]:
    """What vLLM's own parser sees: the tokens after `vllm serve` or the api_server module."""
    tokens = list(command) + list(args)
    for marker in ("serve", "vllm.entrypoints.openai.api_server"):
        if marker in tokens:
            return tokens[tokens.index(marker) + 1 :]
    return list(args)


@dataclass(frozen=True)
class VllmArgs:
    """A vLLM command line as options (in order) and an optional positional model."""

    options: tuple[tuple[str, str | None], ...]
    positional: tuple[str, ...]

    @classmethod
    def parse(cls, command: Sequence[str], args: Sequence[str]) -> VllmArgs:
        tokens = vllm_cli_tokens(command, args)
        options: list[tuple[str, str | None]] = []
        positional: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.startswith("--"):
                if "=" in token:
                    key, value = token.split("=", 1)
                    options.append((key, value))
                elif token in _VLLM_MANY_VALUES:
                    values = []
                    while i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                        values.append(tokens[i + 1])
                        i += 1
                    options.append((token, " ".join(values) or None))
                elif (
                    token not in _VLLM_BOOLEAN_FLAGS
                    and i + 1 < len(tokens)
                    and not tokens[i + 1].startswith("-")
                ):
                    options.append((token, tokens[i + 1]))
                    i += 1
                else:
                    options.append((token, None))
            else:
                positional.append(token)
            i += 1
        return cls(tuple(options), tuple(positional))

    def get(self, option: str) -> str | None:
        """Last value given for an option (vLLM's argparse keeps the last)."""
        value = None
        for key, given in self.options:
            if key == option:
                value = given
        return value

    def has(self, option: str) -> bool:
        return any(key == option for key, _ in self.options)

    @property
    def model(self) -> str | None:
        return self.get("--model") or (self.positional[0] if self.positional else None)

    @property
    def served_model_names(self) -> list[str]:
        """vLLM serves --served-model-name (space separated list), else the model path."""
        names = self.get("--served-model-name")
        if names:
            return names.split()
        model = self.model
        return [model] if model else []

    @property
    def port(self) -> int | None:
        value = self.get("--port")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None


@dataclass(frozen=True)
class Workload:
    """A pod template: a KServe component of an InferenceService, or a Deployment's template."""

    resource: Resource
    component: str
    pod: Mapping[str, Any] = field(repr=False)  # never the object's contents in a repr

    @property
    def is_kserve(self) -> bool:
        return self.resource.kind == "InferenceService"

    @property
    def label(self) -> str:
        return f"{self.resource.ident} {self.component}" if self.is_kserve else self.resource.ident

    @property
    def containers(self) -> list[Container]:
        return [Container(as_mapping(c)) for c in as_list(self.pod.get("containers"))]

    @property
    def init_containers(self) -> list[Container]:
        return [Container(as_mapping(c)) for c in as_list(self.pod.get("initContainers"))]

    @property
    def model_spec(self) -> Mapping[str, Any]:
        """`predictor.model` (the model + runtime form), empty for custom containers."""
        return as_mapping(self.pod.get("model")) if self.is_kserve else {}

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)

    @property
    def serving_container(self) -> Container | None:
        """The container that serves: kserve-container for KServe, else the first vLLM one."""
        if self.is_kserve:
            return self.container(KSERVE_CONTAINER) or (self.containers[0] if self.containers else None)
        return next((c for c in self.containers if c.is_vllm), None)

    @property
    def vllm_containers(self) -> list[Container]:
        return [c for c in self.containers if c.is_vllm]

    @property
    def strategy(self) -> Mapping[str, Any]:
        if self.is_kserve:
            return as_mapping(self.pod.get("deploymentStrategy"))
        return as_mapping(self.resource.spec.get("strategy"))

    @property
    def strategy_type(self) -> str:
        return str(self.strategy.get("type") or "RollingUpdate")

    @property
    def replicas(self) -> int:
        """Pods in steady state: a Deployment's replicas, a KServe component's minReplicas (KServe
        raises anything below 1 to 1); 1 where neither is written."""
        value = self.pod.get("minReplicas") if self.is_kserve else self.resource.spec.get("replicas")
        try:
            return max(1, int(str(value))) if value is not None else 1
        except ValueError:
            return 1

    def rollout_bounds(self) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) in pods for a RollingUpdate, as the Deployment controller
        resolves them: percentages of the replicas, surge rounded up, unavailable rounded down;
        both default to 25% (Kubernetes' and KServe's default)."""
        rolling = as_mapping(self.strategy.get("rollingUpdate"))
        return (_resolve(rolling.get("maxSurge", "25%"), self.replicas, up=True),
                _resolve(rolling.get("maxUnavailable", "25%"), self.replicas, up=False))

    @property
    def gpus(self) -> int:
        total = 0
        for container in self.containers:
            value = container.limits().get(GPU_RESOURCE, container.requests().get(GPU_RESOURCE))
            try:
                total += int(str(value)) if value is not None else 0
            except ValueError:
                pass
        return total

    @property
    def storage_uri(self) -> str | None:
        """Where KServe's storage logic finds the model URI for this component."""
        serving = self.serving_container
        if serving is not None and serving.env.get("STORAGE_URI"):
            return serving.env["STORAGE_URI"]
        uri = self.model_spec.get("storageUri") or self.pod.get("storageUri")
        return str(uri) if uri else None


def _resolve(value: object, replicas: int, up: bool) -> int:
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) * replicas / 100
            return int(-(-share // 1)) if up else int(share // 1)
        return int(text)
    except ValueError:
        return 0


# Templates KServe turns into containers: a runtime's spec is pod-like; an LLMInferenceService
# carries pod specs under template and worker, and under prefill.
RUNTIME_KINDS = ("ServingRuntime", "ClusterServingRuntime")
LLM_ISVC_TEMPLATES = (("template",), ("worker",), ("prefill", "template"), ("prefill", "worker"))


def workloads_of(resource: Resource) -> list[Workload]:
    if resource.kind in RUNTIME_KINDS:
        return [Workload(resource, "runtime", resource.spec)]
    if resource.kind == "LLMInferenceService":
        found = []
        for path in LLM_ISVC_TEMPLATES:
            node: Any = resource.spec
            for key in path:
                node = as_mapping(node).get(key)
            if isinstance(node, Mapping):
                found.append(Workload(resource, ".".join(path), node))
        return found
    if resource.kind == "InferenceService":
        return [
            Workload(resource, component, as_mapping(resource.spec.get(component)))
            for component in KSERVE_COMPONENTS
            if isinstance(resource.spec.get(component), Mapping)
        ]
    if resource.kind in POD_TEMPLATE_KINDS:
        pod = as_mapping(as_mapping(resource.spec.get("template")).get("spec"))
        return [Workload(resource, "pod", pod)]
    return []


def all_workloads(manifests: ManifestSet) -> list[Workload]:
    return [w for r in manifests.resources for w in workloads_of(r)]


def serves_vllm(resource: Resource) -> bool:
    return any(w.vllm_containers for w in workloads_of(resource))


def needs_gpu(resource: Resource) -> bool:
    return any(c.requests_gpu for w in workloads_of(resource) for c in w.containers)


def runs_vllm(workload: Workload) -> bool:
    container = workload.serving_container
    return container is not None and container.is_vllm


def takes_api_key(workload: Workload) -> bool:
    container = workload.serving_container
    return runs_vllm(workload) and container is not None and "VLLM_API_KEY" in container.env


def served_name_of(workload: Workload) -> str | None:
    """The first model name the workload's vLLM serves."""
    container = workload.serving_container
    names = container.vllm.served_model_names if container is not None else []
    return names[0] if names else None


@dataclass(frozen=True)
class ResourceSelector:
    """Which resources a test is parametrized by, and which resources each one brings along
    (whose hardware needs decide its cpu or gpu marker)."""

    description: str
    matches: Callable[[Resource, ManifestSet], bool]
    involves: Callable[[Resource, ManifestSet], list[Resource]]

    def __call__(self, resource: Resource, manifests: ManifestSet) -> bool:
        return self.matches(resource, manifests)


def split_backends(route: Resource, manifests: ManifestSet) -> list[tuple[Resource | None, str, int]]:
    """(InferenceService or None, Service name, weight) of each backend of a split route's first split rule."""
    for rule in as_list(route.spec.get("rules")):
        backends = [as_mapping(b) for b in as_list(as_mapping(rule).get("backendRefs"))]
        if len(backends) > 1:
            result = []
            for backend in backends:
                service = str(backend.get("name", ""))
                isvc = manifests.find("InferenceService", service.removesuffix("-predictor"))
                result.append((isvc, service, int(backend.get("weight", 1))))
            return result
    return []
