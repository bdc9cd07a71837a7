"""Which objects are the design's paths, as opposed to whatever else a platform repository holds.

The design serves one model two ways: KServe InferenceServices and a raw-vLLM control. A platform
repository also holds other vLLM workloads (other models), routes of other gateways, and so on:
those get the generic rules only. A vLLM workload is one of the design's paths when it serves the
name clients use, or loads the same model as one that does (its model's name contains that name,
e.g. Qwen/Qwen2.5-0.5B-Instruct for qwen2.5-0.5b). A weighted HTTPRoute is a KServe canary only
when it routes to InferenceServices' predictor Services or sits on KServe's gateway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from serving_conformance.base.settings import Expectations
from serving_conformance.manifests.model import ManifestSet, Resource
from serving_conformance.manifests.platform_config import find_config
from serving_conformance.manifests.workloads import (
    POD_TEMPLATE_KINDS,
    RUNTIME_KINDS,
    ResourceSelector,
    Workload,
    all_workloads,
    as_list,
    as_mapping,
    runs_vllm,
    split_backends,
    takes_api_key,
    workloads_of,
)

DEFAULT_KSERVE_GATEWAY = ("kserve", "kserve-ingress-gateway")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def model_names(workload: Workload) -> list[str]:
    """What the workload's model is called: its served names, the model path or hub name, and for
    a modelcar the image's repository name."""
    container = workload.serving_container
    if container is None:
        return []
    names = list(container.vllm.served_model_names)
    model = container.vllm.model or ""
    names.append(model.rstrip("/").rsplit("/", 1)[-1])
    names.append(model)
    uri = workload.storage_uri or ""
    if uri.startswith("oci://"):
        names.append(uri.split("@", 1)[0].split(":", 1)[0].rsplit("/", 1)[-1])
    return [n for n in names if n]


def is_design_path(workload: Workload, expect: Expectations) -> bool:
    """A vLLM workload serving the design's model (see the module's docstring); one the options
    file names as a path of the design always is, whatever it serves (so a wrong name fails)."""
    if not runs_vllm(workload):
        return False
    if expect.declared_path(workload.resource) is not None:
        return True
    wanted = _norm(expect.served_model_name)
    return any(wanted == _norm(n) or wanted in _norm(n) for n in model_names(workload))


def design_paths(manifests: ManifestSet, expect: Expectations) -> list[Workload]:
    return [w for w in all_workloads(manifests) if is_design_path(w, expect)]


def outside_design(manifests: ManifestSet, expect: Expectations) -> list[str]:
    """A notice for each vLLM workload that is not one of the design's paths, saying why: a path
    whose served name or model was changed would otherwise drop out of the design's checks
    without a word."""
    notices = []
    for workload in all_workloads(manifests):
        if not runs_vllm(workload) or is_design_path(workload, expect) or workload.resource.kind in RUNTIME_KINDS:
            continue  # a serving runtime is a template, not a path
        container = workload.serving_container
        assert container is not None  # runs vLLM
        notices.append(
            f"{workload.label} runs vLLM serving {container.vllm.served_model_names or '(no --served-model-name)'} "
            f"(model {container.vllm.model!r}): not one of the design's paths (it neither serves "
            f"{expect.served_model_name!r} nor loads that model), so only the generic rules judge it; name it in "
            "serving-conformance.yaml to judge it as one")
    return notices


def kserve_gateway(manifests: ManifestSet) -> tuple[str, str]:
    config = find_config(manifests)
    if config is not None and config.kserve_ingress_gateway and "/" in config.kserve_ingress_gateway:
        namespace, _, name = config.kserve_ingress_gateway.partition("/")
        return namespace, name
    return DEFAULT_KSERVE_GATEWAY


def split_rules(route: Resource) -> Iterable[list[dict]]:
    for rule in as_list(route.spec.get("rules")):
        backends = [dict(as_mapping(b)) for b in as_list(as_mapping(rule).get("backendRefs"))]
        if len(backends) > 1:
            yield backends


def is_kserve_canary_route(route: Resource, manifests: ManifestSet) -> bool:
    """A weighted split over InferenceServices' predictors, or one attached to KServe's gateway."""
    if route.kind != "HTTPRoute" or not any(True for _ in split_rules(route)):
        return False
    predictors = {f"{i.name}-predictor" for i in manifests.of_kind("InferenceService")}
    for backends in split_rules(route):
        if any(b.get("kind", "Service") == "Service" and b.get("name") in predictors for b in backends):
            return True
    gateway_ns, gateway_name = kserve_gateway(manifests)
    parents = [as_mapping(p) for p in as_list(route.spec.get("parentRefs"))]
    return any(p.get("name") == gateway_name and p.get("namespace", route.namespace) == gateway_ns for p in parents)


def _is_canary(resource: Resource, manifests: ManifestSet) -> bool:
    if resource.kind == "HTTPRoute":
        return is_kserve_canary_route(resource, manifests)
    return resource.kind == "InferenceService" and any("canaryTrafficPercent" in w.pod for w in workloads_of(resource))


def _canary_involves(resource: Resource, manifests: ManifestSet) -> list[Resource]:
    if resource.kind == "HTTPRoute":
        return [isvc for isvc, _, _ in split_backends(resource, manifests) if isvc is not None]
    return [resource]


CANARIES = ResourceSelector(
    "KServe canary (a weighted HTTPRoute over InferenceServices, or canaryTrafficPercent)", _is_canary, _canary_involves
)


# --- which workloads the engine and cluster tests take ------------------------------------------


@dataclass(frozen=True)
class Selector:
    """Which workloads a test is parametrized by, given what the run expects (an object, not a
    function: pytest would take a bare function passed to a marker for the decorated test)."""

    description: str
    matches: Callable[[Workload, Expectations], bool]

    def __call__(self, workload: Workload, expect: Expectations) -> bool:
        return self.matches(workload, expect)


def _predictor(workload: Workload) -> bool:
    return workload.is_kserve and workload.component == "predictor"


def mentions_modelcar(workload: Workload) -> bool:
    """An oci:// model anywhere on a predictor: env STORAGE_URI of any container, storageUri, an
    annotation (so a misplaced one is tested, and fails, rather than left out)."""
    values = [c.env.get("STORAGE_URI") or "" for c in workload.containers]
    values += [str(workload.pod.get("storageUri") or ""), str(workload.model_spec.get("storageUri") or "")]
    values += [str(v) for v in as_mapping(workload.resource.metadata.get("annotations")).values()]
    return any(v.startswith("oci://") for v in values)


def _design(test: Callable[[Workload], bool]) -> Callable[[Workload, Expectations], bool]:
    return lambda workload, expect: test(workload) and is_design_path(workload, expect)


DESIGN_VLLM = Selector("vLLM workload serving the design's model", _design(lambda w: True))
API_KEY_WORKLOADS = Selector("vLLM workload of the design's model that takes VLLM_API_KEY", _design(takes_api_key))
KSERVE_PREDICTORS = Selector("InferenceService predictor of the design's model", _design(_predictor))
LIMITED_PREDICTORS = Selector(
    "InferenceService predictor of the design's model with resource limits",
    _design(lambda w: _predictor(w) and w.serving_container is not None and bool(w.serving_container.limits())),
)
MODELCAR_PREDICTORS = Selector(
    "InferenceService predictor of the design's model with an oci:// modelcar", _design(lambda w: _predictor(w) and mentions_modelcar(w))
)
RAW_VLLM = Selector("raw vLLM Deployment of the design's model",
                    _design(lambda w: w.resource.kind in POD_TEMPLATE_KINDS))
