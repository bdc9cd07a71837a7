"""The behaviour registry: every documented behaviour the suite proves, declared once.

A behaviour has an id (its key in the report), a title in the design's words, a layer (which
decides its profile: STATIC, ENGINE, or SERVING-CPU/SERVING-GPU by the hardware each workload
needs), the features a place must offer for it to run there, and, for static behaviours, its
rule. Conformance tests name their behaviour with `@pytest.mark.behaviour(...)`; the plugin
refuses a conformance test without a registered one, and the README's table is this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from serving_conformance.base.features import Feature, StandIn
from serving_conformance.rules import autoscaling, gpu, images, kserve, ports, resources, rollout, wiring
from serving_conformance.rules.findings import Rule
from serving_conformance.rules.schema import SCHEMA_VALID


class Layer(StrEnum):
    STATIC = "static"
    ENGINE = "engine"
    CLUSTER = "cluster"


# The report profiles of each layer (a cluster test is SERVING-GPU when its workload needs GPUs).
LAYER_PROFILES = {
    Layer.STATIC: ("STATIC",),
    Layer.ENGINE: ("ENGINE",),
    Layer.CLUSTER: ("SERVING-CPU", "SERVING-GPU"),
}


@dataclass(frozen=True)
class Behaviour:
    id: str
    title: str
    layer: Layer
    requires: frozenset[Feature] = field(default_factory=frozenset)
    rule: Rule | None = None
    # The components its result rests on: a stand-in for any of them qualifies the result.
    rests_on: frozenset[StandIn] = field(default_factory=frozenset)
    # What its check compares with an expected value; where the place made both sides (an engine
    # installed from --engine-version reporting that version), the result is circular.
    compares: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> tuple[str, str]:
        return (self.layer.value, self.id)

    @property
    def profiles(self) -> tuple[str, ...]:
        return LAYER_PROFILES[self.layer]


def _static(rule: Rule) -> Behaviour:
    return Behaviour(rule.id, rule.title, Layer.STATIC, rule=rule)


def _engine(id: str, title: str, *requires: Feature, rests_on: frozenset[StandIn] = frozenset(),
            compares: frozenset[str] = frozenset()) -> Behaviour:
    return Behaviour(id, title, Layer.ENGINE, frozenset(requires), rests_on=rests_on or LOCAL_ENGINE, compares=compares)


def _cluster(id: str, title: str, *requires: Feature, rests_on: frozenset[StandIn],
             compares: frozenset[str] = frozenset()) -> Behaviour:
    return Behaviour(id, title, Layer.CLUSTER, frozenset(requires), rests_on=rests_on, compares=compares)


S, G, V = Feature.SERVING, Feature.GATEWAY, Feature.ENGINE_VERSION
# What results rest on: the local engine; a workload's pods coming up; and through the gateway.
LOCAL_ENGINE = frozenset({StandIn.ENGINE, StandIn.MODEL})
PODS = frozenset({StandIn.KUBELET, StandIn.ENGINE, StandIn.MODEL, StandIn.IMAGE, StandIn.GPU, StandIn.REQUESTS,
                  StandIn.REPLICAS, StandIn.SECRETS, StandIn.POD_NETWORK})
KSERVE_PODS = PODS | {StandIn.KSERVE_MANAGER}
THROUGH_GATEWAY = KSERVE_PODS | {StandIn.GATEWAY}
# The compared quantities a place can make both sides of.
ENGINE_VERSION_COMPARED = frozenset({"engine-version"})

# --- static: judged from the manifests alone -----------------------------------------------------
MANIFESTS_PARSE = Behaviour("manifests-parse", "every manifest file under test is readable, valid YAML", Layer.STATIC)
LIMITS_COVER_REQUESTS = _static(resources.LIMITS_COVER_REQUESTS)
CUSTOM_CONTAINER = _static(kserve.CUSTOM_CONTAINER)
MODELCAR = _static(kserve.MODELCAR)
IMAGES_PINNED = _static(images.IMAGES_PINNED)
ENGINE_IDENTICAL = _static(images.ENGINE_IDENTICAL)
PLATFORM_CONFIG = _static(kserve.PLATFORM_CONFIG)
VLLM_CPU = _static(resources.VLLM_CPU)
VLLM_PORT = _static(ports.VLLM_PORT)
GPU_WORKLOADS = _static(gpu.GPU_WORKLOADS)
CANARY = _static(kserve.CANARY)
NO_SCALE_TO_ZERO = _static(autoscaling.STANDARD_NO_SCALE_TO_ZERO)
STRATEGY_VALID = _static(rollout.STRATEGY_VALID)
CONTAINERS_COMPLETE = _static(rollout.CONTAINERS_COMPLETE)
VLLM_READINESS = _static(rollout.VLLM_READINESS)
POD_WEBHOOK_REACH = _static(wiring.POD_WEBHOOK_REACH)
GATEWAY_ACCEPTS_ROUTES = _static(wiring.GATEWAY_ACCEPTS_ROUTES)
SECRET_REFS_RESOLVE = _static(wiring.SECRET_REFS_RESOLVE)
SCHEMA = _static(SCHEMA_VALID)

# --- engine: the manifests' vLLM command lines on a real local vLLM --------------------------------
VLLM_ARGS_PARSE = _engine("vllm-args-parse", "vLLM's own parser accepts every vLLM container's args",
                          rests_on=frozenset({StandIn.ENGINE}))
ENGINE_SERVED_MODEL_NAME = _engine("served-model-name", "GET /v1/models lists the served model name", S)
ENGINE_CHAT = _engine("chat-completion", "POST /v1/chat/completions answers 200 with choices and usage", S)
ENGINE_VERSION = _engine("engine-version", "system_fingerprint names the expected vLLM version", S, V,
                         compares=ENGINE_VERSION_COMPARED)
STREAM_FINGERPRINT = _engine(
    "stream-fingerprint", "in a stream, the final chunk names the same vLLM version as a plain answer", S, V,
    compares=ENGINE_VERSION_COMPARED,
)
UNKNOWN_MODEL_404 = _engine("unknown-model-404", "a chat completion for an unknown model answers 404", S)
ENGINE_API_KEY = _engine("api-key", "/v1/* answers 401 without the API key and 200 with it", S)

# --- cluster: on a real control plane with the real KServe ------------------------------------------
ISVC_READY = _cluster("isvc-ready", "the InferenceService is Ready in Standard mode at its templated URL", G,
                      rests_on=THROUGH_GATEWAY)
SERVED_MODEL_NAME = _cluster("served-model-name", "GET /v1/models lists the served model name", S, G,
                             rests_on=THROUGH_GATEWAY)
CLUSTER_ENGINE_VERSION = _cluster(
    "engine-version", "a chat completion answers 200 naming the expected vLLM version", S, G, V,
    rests_on=THROUGH_GATEWAY, compares=ENGINE_VERSION_COMPARED,
)
CPU_LIMIT_OVERRIDE = _cluster(
    "cpu-limit-override", "the predictor Deployment carries the manifest's limits, not KServe's default",
    rests_on=frozenset({StandIn.KSERVE_MANAGER}),
)
NO_ISTIO = _cluster(
    "no-istio-virtualservice", "no VirtualService is created or looked for; the HTTPRoute is accepted by the gateway",
    rests_on=frozenset({StandIn.KSERVE_MANAGER, StandIn.GATEWAY}),
)
MODELCAR_AT_MNT_MODELS = _cluster("modelcar", "the OCI modelcar is injected into the Pod and read at /mnt/models",
                                  rests_on=KSERVE_PODS)
CANARY_SPLIT = _cluster("canary-split", "a canary split sends each revision its declared share of requests", S, G,
                        rests_on=THROUGH_GATEWAY)
RAW_VLLM = _cluster("raw-vllm", "the raw-vLLM control is available, serves the model and names the same engine", S, V,
                    rests_on=PODS, compares=ENGINE_VERSION_COMPARED)
API_KEY = _cluster("api-key", "/v1/* answers 401 without the API key and 200 with it", S, rests_on=PODS)

REGISTRY: dict[tuple[str, str], Behaviour] = {
    b.key: b for b in globals().values() if isinstance(b, Behaviour)
}


def registered(behaviour: object) -> bool:
    return isinstance(behaviour, Behaviour) and REGISTRY.get(behaviour.key) is behaviour


def static_rules() -> list[Rule]:
    return [b.rule for b in REGISTRY.values() if b.rule is not None]


README_BEGIN = "<!-- behaviours: generated by `python -m serving_conformance.behaviours --readme README.md` -->"
README_END = "<!-- end of behaviours -->"


def markdown_table() -> str:
    """The README's table of behaviours, from this registry."""
    rows = ["| Layer | Id | Behaviour | Needs | Rests on |", "|---|---|---|---|---|"]
    for behaviour in REGISTRY.values():
        needs = ", ".join(sorted(f.value for f in behaviour.requires)) or "-"
        rests = ", ".join(sorted(s.value for s in behaviour.rests_on)) or "the manifests"
        rows.append(f"| {behaviour.layer.value} | `{behaviour.id}` | {behaviour.title} | {needs} | {rests} |")
    return "\n".join(rows)


def write_readme(path: Path) -> bool:
    """Replace the table between the README's markers with this registry's; True if it changed."""
    text = path.read_text()
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    new = text[:start] + "\n" + markdown_table() + "\n" + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="print the behaviour table, or write it into a README")
    parser.add_argument("--readme", type=Path, help="rewrite the table between the markers of this file")
    args = parser.parse_args()
    if args.readme:
        print("updated" if write_readme(args.readme) else "unchanged", args.readme)
    else:
        print(markdown_table())
