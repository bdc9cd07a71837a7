"""The static rules on small hand-written objects: the inputs the seeded faults do not reach (other
components, several containers, other kinds and forms, edge values), each rule's findings checked
exactly. With the in-process controls (test_rules_controls.py) these are what mutation testing of
the rules runs (benchmarks/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serving_conformance.base.settings import Expectations
from serving_conformance.manifests.model import HELM_VALUES_KIND, ManifestSet, Resource
from serving_conformance.manifests.platform_config import find_config
from serving_conformance.rules import autoscaling, gpu, images, kserve, ports, resources, rollout, wiring
from serving_conformance.rules.common import standard_mode
from serving_conformance.rules.findings import Rule, RuleContext
from serving_conformance.rules.schema import SCHEMA_VALID

IMAGE = "vllm/vllm-openai:v0.23.0@sha256:" + "6d" * 32
CPU_IMAGE = "vllm/vllm-openai-cpu:v0.23.0-x86_64@sha256:" + "62" * 32
OCI = "oci://registry.example.com/models/qwen2.5-0.5b-instruct@sha256:" + "cb" * 32


def objects(text: str, root: Path = Path(".")) -> list[Resource]:
    documents = [d for d in yaml.safe_load_all(text) if d]
    return [Resource(d, root / "objects.yaml", i + 1, pseudo_kind=HELM_VALUES_KIND if "kind" not in d else None)
            for i, d in enumerate(documents)]


def context(text: str = "", gpu_slots: int = 1, root: Path = Path(".")) -> RuleContext:
    manifests = ManifestSet((root,), resources=objects(text, root))
    expect = Expectations("qwen2.5-0.5b", "0.23.0", "0.19.0", "1.34.3", gpu_slots)
    return RuleContext(manifests, expect, find_config(manifests))


def found(rule: Rule, ctx: RuleContext, name: str | None = None) -> list[str]:
    """The `found` of each finding of `rule` on the object named `name` (or on every object it selects)."""
    chosen = [r for r in rule.select(ctx) if name is None or r.name == name]
    assert chosen, f"{rule.id} selects nothing named {name}"
    return [f.found for r in chosen for f in rule.check(r, ctx)]


def isvc(name: str, predictor: str, annotations: str = "{}", extra: str = "") -> str:
    return f"""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: {name}, annotations: {annotations}}}
spec:
  predictor: {predictor}
{extra}
---"""


def configmap(deploy: str = '{"defaultDeploymentMode": "Standard"}', ingress: str | None = None,
              storage: str = '{"enableModelcar": true}') -> str:
    ingress = ingress or ('{"enableGatewayApi": true, "kserveIngressGateway": "kserve/kserve-ingress-gateway", '
                          '"ingressGateway": "knative-serving/knative-ingress-gateway", "disableIstioVirtualHost": true}')
    data = {"deploy": deploy, "ingress": ingress, "storageInitializer": storage}
    data = {k: v for k, v in data.items() if v != "-"}
    return "\n" + yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "inferenceservice-config", "namespace": "kserve"}, "data": data}) + "---\n"


SERVERLESS = configmap(deploy='{"defaultDeploymentMode": "Serverless"}')


# --- common ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "config", "expected"),
    [
        (None, None, True), (None, "Standard", True), (None, "Serverless", False), (None, "RawDeployment", True),
        ("Serverless", "Standard", False), ("Standard", "Serverless", True), ("RawDeployment", "Serverless", True),
        ("Knative", None, False),
    ],
)
def test_standard_mode_is_the_annotation_else_the_platform_default(annotation, config, expected):
    annotations = f"{{serving.kserve.io/deploymentMode: {annotation}}}" if annotation else "{}"
    text = isvc("m", "{containers: []}", annotations)
    if config:
        text += configmap(deploy=f'{{"defaultDeploymentMode": "{config}"}}')
    ctx = context(text)
    assert standard_mode(ctx.manifests.resources[0], ctx.kserve_config) is expected


# --- autoscaling -----------------------------------------------------------------------------------


def test_scale_to_zero_applies_only_to_inferenceservices_that_set_min_replicas():
    rule = autoscaling.STANDARD_NO_SCALE_TO_ZERO
    without, with_zero = objects(isvc("a", "{containers: []}") + isvc("b", "{minReplicas: 0}"))
    assert not rule.applies(without) and rule.applies(with_zero)


def test_scale_to_zero_is_judged_on_every_component_and_only_in_standard_mode():
    text = isvc("m", "{minReplicas: 1}", extra="  transformer: {minReplicas: 0}")
    assert found(autoscaling.STANDARD_NO_SCALE_TO_ZERO, context(text)) == [
        "kserve/m transformer sets minReplicas: 0 in Standard mode with KServe's HPA"]
    assert found(autoscaling.STANDARD_NO_SCALE_TO_ZERO, context(text + SERVERLESS)) == []
    keda = isvc("m", "{minReplicas: 0}", "{serving.kserve.io/autoscalerClass: keda}")
    assert found(autoscaling.STANDARD_NO_SCALE_TO_ZERO, context(keda)) == []
    assert found(autoscaling.STANDARD_NO_SCALE_TO_ZERO, context(isvc("m", '{minReplicas: "0"}'))) != []


# --- gpu -------------------------------------------------------------------------------------------


def pod(*containers: str, name: str = "d", replicas: int = 1, strategy: str = "{type: Recreate}") -> str:
    listed = "\n".join(f"        - {c}" for c in containers)
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  strategy: {strategy}
  template:
    spec:
      containers:
{listed}
---"""


def vllm(name: str, image: str = IMAGE, gpus: int | None = 1, extra: str = "") -> str:
    limits = f", resources: {{limits: {{nvidia.com/gpu: {gpus}}}}}" if gpus is not None else ""
    return f"{{name: {name}, image: '{image}', args: [--served-model-name=other]{limits}{extra}}}"


def test_every_gpu_vllm_container_of_a_pod_requests_gpus_after_a_cpu_one():
    text = pod(vllm("cpu", CPU_IMAGE, None), vllm("first"), vllm("second", gpus=None))
    assert found(gpu.GPU_WORKLOADS, context(text)) == [
        "deployment/d container 'second' runs a GPU vLLM image without limits['nvidia.com/gpu']"]


def test_a_pod_with_two_gpu_vllm_containers_is_rolled_out_once():
    text = pod(vllm("first"), vllm("second"), strategy="{type: RollingUpdate}")
    assert found(gpu.GPU_WORKLOADS, context(text, gpu_slots=2)) == [
        "deployment/d rolls out with RollingUpdate (maxSurge 1, maxUnavailable 0): 1 replica(s) plus 1 surge pod(s) "
        "need 4 GPU(s) at once on 2 GPU slot(s)"]


def test_a_pod_needing_more_gpus_than_slots_is_pending():
    assert found(gpu.GPU_WORKLOADS, context(pod(vllm("v", gpus=2)))) == [
        "deployment/d runs 1 replica(s) with 2 GPU(s) each on 1 GPU slot(s)"]
    assert found(gpu.GPU_WORKLOADS, context(pod(vllm("v", gpus=2)), gpu_slots=2)) == []


@pytest.mark.parametrize(
    ("strategy", "slots", "stuck"),
    [
        ("{type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}", 1, False),
        ("{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}", 2, False),
        ("{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}", 1, True),
        ("{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}", 1, False),
        ("{}", 1, True),
        ("{type: Recreate}", 1, False),
    ],
)
def test_a_gpu_rollout_is_stuck_only_when_it_needs_more_gpus_than_slots_and_may_not_stop_a_pod(strategy, slots, stuck):
    assert bool(found(gpu.GPU_WORKLOADS, context(pod(vllm("v"), strategy=strategy), gpu_slots=slots))) is stuck


# --- images ----------------------------------------------------------------------------------------


def test_every_container_with_an_image_is_pinned_after_one_without():
    text = pod("{name: noimage}", "{name: tagged, image: 'busybox:1.36'}")
    assert found(images.IMAGES_PINNED, context(text)) == [
        "deployment/d container 'tagged' image 'busybox:1.36' has no @sha256 digest"]


# --- kserve: custom containers, modelcar ---------------------------------------------------------------


def test_custom_container_rules_apply_to_inferenceservices_with_containers_only():
    plain, model_form, custom = objects(pod("{name: c, image: x}") + isvc("a", "{model: {modelFormat: {name: x}}}")
                                        + isvc("b", "{containers: [{name: kserve-container}]}"))
    assert [kserve.CUSTOM_CONTAINER.applies(r) for r in (plain, model_form, custom)] == [False, False, True]


def test_custom_containers_are_judged_on_every_component():
    text = isvc("m", "{model: {modelFormat: {name: x}}}",
                extra="  transformer: {model: {modelFormat: {name: x}}, containers: [{name: t, image: x}]}")
    assert found(kserve.CUSTOM_CONTAINER, context(text)) == ["kserve/m transformer sets both `model` and `containers`"]
    several = isvc("m", "{containers: [{name: a, image: x}, {name: b, image: x}]}")
    assert found(kserve.CUSTOM_CONTAINER, context(several)) == [
        "kserve/m predictor containers are named 'a', 'b', none 'kserve-container'"]


def test_a_predictor_storage_uri_is_a_modelcar_mention():
    text = isvc("m", f"{{storageUri: '{OCI}', containers: [{{name: kserve-container, image: x}}]}}")
    assert kserve.MODELCAR.applies(objects(text)[0])
    assert found(kserve.MODELCAR, context(text)) == []
    assert not kserve.MODELCAR.applies(objects(isvc("m", "{storageUri: 'hf://a/b'}"))[0])


def modelcar_env(**env) -> str:
    pairs = {"STORAGE_URI": OCI, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "USER": "vllm", "HOME": "/tmp"}
    pairs.update(env)
    return ", ".join(f"{{name: {k}, value: '{v}'}}" if v is not None else f"{{name: {k}, valueFrom: {{secretKeyRef: "
                     f"{{name: s, key: k}}}}}}" for k, v in pairs.items() if v != "-")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"TRANSFORMERS_OFFLINE": "0"}, ["kserve/m predictor does not set TRANSFORMERS_OFFLINE=1"]),
        ({"HF_HUB_OFFLINE": "-", "TRANSFORMERS_OFFLINE": "-"},
         ["kserve/m predictor does not set HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1"]),
        ({"HOME": ""}, ["kserve/m predictor does not set HOME (or sets it empty)"]),
        ({"USER": None, "HOME": None}, []),
        ({"STORAGE_URI": "hf://Qwen/Qwen2.5-0.5B-Instruct"}, None),
    ],
    ids=["complete", "transformers-online", "both-online", "empty-home", "from-secret", "not-oci"],
)
def test_the_modelcar_predictor_env(env, expected):
    text = isvc("m", f"{{containers: [{{name: kserve-container, image: '{IMAGE}', args: [--model=/mnt/models], "
                     f"env: [{modelcar_env(**env)}]}}]}}", extra=f"  transformer: {{storageUri: '{OCI}'}}")
    if expected is None:  # judged (the transformer's URI), but nothing of the predictor is a modelcar
        assert found(kserve.MODELCAR, context(text)) == []
    else:
        assert found(kserve.MODELCAR, context(text)) == expected


def test_an_oci_uri_on_another_container_than_kserve_container_is_found():
    sidecar = "{name: sidecar, image: x, env: [{name: STORAGE_URI, value: 'oci://r/m:latest'}]}"
    text = isvc("m", f"{{containers: [{{name: kserve-container, image: x}}, {sidecar}]}}")
    assert found(kserve.MODELCAR, context(text)) == ["kserve/m predictor sets the oci:// STORAGE_URI on container 'sidecar'"]


# --- kserve: platform configuration ------------------------------------------------------------------


def platform(text: str) -> list[str]:
    return found(kserve.PLATFORM_CONFIG, context(text))


def test_the_platform_configmap_as_documented_passes():
    assert platform(configmap()) == []


def test_a_configmap_without_ingress_is_judged_for_the_gateway_api_only():
    assert platform(configmap(ingress="-")) == [
        "enableGatewayApi is None (not set; KServe's default is false)",
        "kserveIngressGateway is None",
        "disableIstioVirtualHost is None (not set; KServe's default is false)",
    ]


@pytest.mark.parametrize(
    ("gateway", "ok"),
    [("kserve/kserve-ingress-gateway", True), ("ns-1/gw-2", True), ("kserve/Gateway", False), ("gw", False),
     ("kserve/gw/x", False), ("/gw", False), ("", False)],
)
def test_the_kserve_gateway_is_named_namespace_slash_name(gateway, ok):
    ingress = ('{"enableGatewayApi": true, "kserveIngressGateway": "%s", "ingressGateway": "a/b", '
               '"disableIstioVirtualHost": true}' % gateway)
    assert (platform(configmap(ingress=ingress)) == []) is ok


def test_helm_values_are_judged_without_a_configmap_ingress():
    values = """
kserve:
  storage: {enableModelcar: true}
  controller:
    deploymentMode: RawDeployment
    gateway:
      disableIstioVirtualHost: true
      ingressGateway: {enableGatewayApi: true, kserveGateway: kserve/kserve-ingress-gateway}
---"""
    assert platform(values) == []
    assert platform(values.replace("enableModelcar: true", "enableModelcar: false")) == [
        "enableModelcar is false at kserve.storage.enableModelcar"]


def argo(sources: str, kind: str = "Application", api: str = "argoproj.io/v1alpha1") -> str:
    return f"""
apiVersion: {api}
kind: {kind}
metadata: {{name: kserve, namespace: argocd}}
spec:
{sources}
---"""


def test_argo_cd_kserve_values_files_must_exist(tmp_path):
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "values.yaml").write_text("kserve: {}\n")
    single = argo("  source: {chart: kserve-resources, helm: {valueFiles: [values.yaml, $values/platform/missing.yaml]}}")
    assert found(kserve.PLATFORM_CONFIG, context(single, root=tmp_path)) == [
        f"Argo CD Application kserve installs kserve-resources with values '$values/platform/missing.yaml', which is "
        f"not in the repository ({tmp_path})"]
    by_path = argo("  sources: [{path: charts/kserve-resources, helm: {valueFiles: "
                   "[$values/platform/values.yaml, $values/gone.yaml, $values]}}]")
    assert [f.split("with values ")[1].split(",")[0] for f in found(kserve.PLATFORM_CONFIG, context(by_path, root=tmp_path))] == [
        "'$values/gone.yaml'", "'$values'"]
    present = argo("  sources: [{chart: kserve-resources, helm: {valueFiles: [$values/platform/values.yaml]}}]")
    assert found(kserve.PLATFORM_CONFIG, context(present, root=tmp_path)) == []


@pytest.mark.parametrize(
    "text",
    [argo("  source: {chart: kserve-resources}", api="example.com/v1"),
     argo("  source: {chart: kserve-resources}", kind="ApplicationSet"),
     argo("  source: {chart: other-chart, path: charts/other}")],
    ids=["not-argo", "not-an-application", "another-chart"],
)
def test_only_argo_cd_applications_of_the_kserve_chart_are_judged(text):
    assert not kserve.PLATFORM_CONFIG.applies(objects(text)[0])


# --- kserve: canary ---------------------------------------------------------------------------------------


def route(backends: str, parent: str = "{name: kserve-ingress-gateway, namespace: kserve}", namespace: str = "",
          rules: str = "") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: split{ns}}}
spec:
  parentRefs: [{parent}]
  rules:{rules}
    - backendRefs: {backends}
---"""


REVISIONS = isvc("a", "{containers: []}") + isvc("b", "{containers: []}")


def canary(text: str) -> list[str]:
    return found(kserve.CANARY, context(REVISIONS + configmap() + text), "split")


def test_a_route_with_one_backend_is_no_split():
    assert not kserve.CANARY.applies(objects(route("[{name: a-predictor}]"))[0])


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        ("[{name: a-predictor}, {name: b-predictor}]", []),
        ("[{name: a-predictor, weight: 99}, {name: b-predictor, weight: 1}]", []),
        ("[{name: a-predictor, weight: 1}, {name: b-predictor, weight: 0}]",
         ["httproute/split rules[1] weights {'a-predictor': 1, 'b-predictor': 0}"]),
        ("[{name: a-predictor}, {name: pool, kind: InferencePool, group: inference.networking.k8s.io}]", []),
        ("[{name: a-predictor}, {name: svc}]", []),
    ],
    ids=["unweighted", "one-percent", "zero", "not-a-service", "declared-service"],
)
def test_canary_backends(backends, expected):
    service = "\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n---"
    assert found(kserve.CANARY, context(REVISIONS + configmap() + service + route(
        backends, rules="\n    - backendRefs: [{name: a-predictor}]")), "split") == expected


@pytest.mark.parametrize(
    ("parent", "namespace", "attached"),
    [
        ("{name: kserve-ingress-gateway, namespace: kserve}", "", True),
        ("{name: kserve-ingress-gateway}", "", True),
        ("{name: kserve-ingress-gateway}", "kserve", True),
        ("{name: kserve-ingress-gateway}", "serving", False),
        ("{name: kserve-ingress-gateway, namespace: other}", "", False),
        ("{name: other, namespace: kserve}", "", False),
    ],
)
def test_the_split_is_attached_to_the_kserve_gateway(parent, namespace, attached):
    assert (canary(route("[{name: a-predictor}, {name: b-predictor}]", parent, namespace)) == []) is attached


def test_canary_traffic_percent_is_ignored_only_in_standard_mode():
    text = isvc("c", "{canaryTrafficPercent: 10}")
    assert found(kserve.CANARY, context(text + configmap())) == [
        "kserve/c sets canaryTrafficPercent in Standard mode"]
    assert found(kserve.CANARY, context(text + SERVERLESS)) == []


# --- ports -----------------------------------------------------------------------------------------------


def raw(port_args: str = "--port=8000", ports: str = "[{name: http, containerPort: 8000}]", probe: str = "http") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: raw}}
spec:
  template:
    metadata: {{labels: {{app: raw, tier: serving}}}}
    spec:
      containers:
        - {{name: vllm, image: '{IMAGE}', args: [{port_args}], ports: {ports},
            readinessProbe: {{httpGet: {{path: /health, port: {probe}}}}}}}
---"""


def service(ports: str, selector: str = "{app: raw}") -> str:
    return f"\napiVersion: v1\nkind: Service\nmetadata: {{name: svc}}\nspec: {{selector: {selector}, ports: {ports}}}\n---"


@pytest.mark.parametrize(
    ("service_ports", "selector", "expected"),
    [
        ("[{port: 8000}]", "{app: raw}", []),
        ("[{port: 80, targetPort: '8000'}]", "{app: raw}", []),
        ("[{port: 80, targetPort: http}]", "{app: raw}", []),
        ("[{port: 80, targetPort: metrics}]", "{app: raw}", ["service/svc sends port 80 to 'metrics', vLLM listens on 8000"]),
        ("[{port: 80}]", "{app: raw}", ["service/svc sends port 80 to 80, vLLM listens on 8000"]),
        ("[{port: 80}]", "{app: other}", []),
        ("[{port: 80}]", "{}", []),
        ("[{port: 8000}, {port: 8080}]", "{app: raw}", []),  # a sidecar's port beside vLLM's
        ("[{port: 80}, {port: 8080}]", "{app: raw}", ["service/svc sends port 80 to 80, port 8080 to 8080, vLLM listens on 8000"]),
    ],
    ids=["port-is-target", "digit-string", "named", "unknown-name", "port-80", "other-selector", "no-selector",
         "another-port-beside", "none-reaches-vllm"],
)
def test_services_selecting_raw_vllm_send_traffic_to_its_port(service_ports, selector, expected):
    assert found(ports.VLLM_PORT, context(raw() + service(service_ports, selector))) == expected


def test_a_service_in_another_namespace_selects_nothing_here():
    other = "\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: elsewhere}\nspec: {selector: {app: raw}, ports: [{port: 80}]}\n---"
    assert found(ports.VLLM_PORT, context(raw() + other)) == []


def test_probe_ports_resolve_names_and_digit_strings():
    assert found(ports.VLLM_PORT, context(raw(probe="'8000'"))) == []
    assert found(ports.VLLM_PORT, context(raw(probe="metrics"))) == [
        "deployment/raw container 'vllm' readinessProbe targets port 'metrics' while vLLM listens on 8000"]


def test_vllm_without_port_listens_on_8000():
    assert found(ports.VLLM_PORT, context(raw(port_args="--max-model-len=4096"))) == []


# --- rollout ---------------------------------------------------------------------------------------------


def test_strategies_are_judged_on_every_component():
    text = isvc("m", "{containers: []}", extra="  transformer: {deploymentStrategy: {type: Rolling}}")
    assert found(rollout.STRATEGY_VALID, context(text)) == ["kserve/m transformer deploymentStrategy.type is 'Rolling'"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("{rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}", []),
        ("{rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}", ["deployment/d spec.strategy has maxSurge and maxUnavailable both 0"]),
        ("{type: Recreate}", []),
        ("{type: RollingUpdate}", []),
    ],
)
def test_a_strategy_without_a_type_rolls(strategy, expected):
    assert found(rollout.STRATEGY_VALID, context(pod("{name: c, image: x}", strategy=strategy))) == expected


def test_rendered_images_are_required_of_every_workload_but_llm_inference_services():
    llm, svc, deployment = objects("""
apiVersion: serving.kserve.io/v1alpha1
kind: LLMInferenceService
metadata: {name: llm}
spec: {template: {containers: [{name: main}]}}
---""" + service("[{port: 80}]") + pod("{name: c}"))
    assert [rollout.CONTAINERS_COMPLETE.applies(r) for r in (llm, svc, deployment)] == [False, False, True]


def test_a_model_predictor_init_container_needs_its_image():
    text = isvc("m", "{model: {modelFormat: {name: x}}, initContainers: [{name: fetch}]}")
    assert found(rollout.CONTAINERS_COMPLETE, context(text)) == [
        "kserve/m predictor container 'fetch' names no image (it has only ['name'])"]
    assert found(rollout.CONTAINERS_COMPLETE, context(isvc("m", "{model: {modelFormat: {name: x}}}"))) == []


# --- wiring: the pod webhook -------------------------------------------------------------------------------


def namespace(name: str, labels: str = "{}") -> str:
    return f"\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n---"


def test_the_pod_webhook_is_needed_for_any_model_to_fetch_or_mount():
    hub, modelcar, nothing, deployment = objects(
        isvc("a", "{model: {modelFormat: {name: x}, storageUri: 'hf://Qwen/Qwen2.5-0.5B-Instruct'}}")
        + isvc("b", f"{{containers: [{{name: kserve-container, env: [{{name: STORAGE_URI, value: '{OCI}'}}]}}]}}")
        + isvc("c", "{containers: [{name: kserve-container}]}") + pod("{name: c, image: x}"))
    assert [wiring.POD_WEBHOOK_REACH.applies(r) for r in (hub, modelcar, nothing, deployment)] == [True, True, False, False]


@pytest.mark.parametrize(
    ("isvc_namespace", "labels", "expected"),
    [
        ("serving", "{control-plane: kserve-controller-manager}",
         ["kserve/serving/a is in namespace serving, labelled control-plane=kserve-controller-manager "
          "(objects.yaml:2)"]),
        ("serving", "{team: ml}", []),
        ("", "{control-plane: kserve-controller-manager}", []),
    ],
)
def test_the_pod_webhook_skips_control_plane_namespaces(isvc_namespace, labels, expected):
    metadata = f"{{name: a, namespace: {isvc_namespace}}}" if isvc_namespace else "{name: a}"
    text = f"""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {metadata}
spec: {{predictor: {{model: {{modelFormat: {{name: x}}, storageUri: 'hf://a/b'}}}}}}
---""" + namespace("serving", labels)
    assert found(wiring.POD_WEBHOOK_REACH, context(text)) == expected


# --- wiring: the gateway listener ----------------------------------------------------------------------------


def gateway(listeners: str, name: str = "kserve-ingress-gateway", ns: str = "kserve") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec: {{gatewayClassName: x, listeners: {listeners}}}
---"""


def listener(hostname: str = "", protocol: str = "HTTP", allowed: str = "{namespaces: {from: All}}") -> str:
    host = f", hostname: '{hostname}'" if hostname else ""
    routes = f", allowedRoutes: {allowed}" if allowed else ""
    return f"{{name: l, port: 80, protocol: {protocol}{host}{routes}}}"


def served(name: str = "m", ns: str = "serving") -> str:
    metadata = f"{{name: {name}, namespace: {ns}}}" if ns else f"{{name: {name}}}"
    return f"\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {metadata}\nspec: {{predictor: {{}}}}\n---"


def accepts(text: str, ingress_extra: str = "") -> list[str]:
    ingress = ('{"enableGatewayApi": true, "kserveIngressGateway": "kserve/kserve-ingress-gateway", '
               '"ingressGateway": "a/b", "disableIstioVirtualHost": true' + ingress_extra + "}")
    return found(wiring.GATEWAY_ACCEPTS_ROUTES, context(configmap(ingress=ingress) + text))


@pytest.mark.parametrize(
    ("listeners", "isvc_ns", "ingress", "ok"),
    [
        (f"[{listener('*.example.com')}]", "serving", "", True),
        (f"[{listener('*.example.com', protocol='HTTPS')}]", "serving", "", True),
        (f"[{listener('*.example.com', protocol='TCP')}]", "serving", "", False),
        (f"[{listener('m-serving.example.com')}]", "serving", "", True),
        (f"[{listener('other.example.com')}]", "serving", "", False),
        (f"[{listener('*.serving.example.com')}]", "serving", "", False),
        (f"[{listener('*.ml.acme.dev')}]", "serving", ', "ingressDomain": "ml.acme.dev"', True),
        (f"[{listener('m.ml.acme.dev')}]", "serving",
         ', "ingressDomain": "ml.acme.dev", "domainTemplate": "{{ .Name }}.{{ .IngressDomain }}"', True),
        (f"[{listener('*.kserve.example.com')}]", "",
         ', "domainTemplate": "{{ .Name }}.{{ .Namespace }}.{{ .IngressDomain }}"', True),
        (f"[{listener('m-x.example.com')}]", "", "", False),
        (f"[{listener('x.example.com')}]", "serving", ', "domainTemplate": "{{ .Name }}.{{ .Unknown }}"', True),
        (f"[{listener('*.example.com', allowed='')}]", "serving", "", False),
        (f"[{listener('*.example.com', allowed='')}]", "kserve", "", True),
        (f"[{listener('*.example.com', allowed='{namespaces: {from: Same}}')}]", "", "", False),
    ],
    ids=["wildcard", "https", "tcp-only", "exact", "other-host", "other-namespace-wildcard", "ingress-domain",
         "domain-template", "unknown-namespace-any-wildcard", "unknown-namespace-exact", "unrenderable-template",
         "default-same-elsewhere", "default-same-here", "same-unknown-namespace"],
)
def test_the_kserve_gateway_accepts_inference_service_routes(listeners, isvc_ns, ingress, ok):
    assert (accepts(gateway(listeners) + served(ns=isvc_ns), ingress) == []) is ok


def test_the_kserve_gateway_is_the_one_in_its_configured_namespace():
    text = gateway(f"[{listener('nothing.example.com')}]", ns="other") + gateway(f"[{listener('*.example.com')}]")
    assert accepts(text + served()) == []
    text = gateway(f"[{listener('*.example.com')}]", ns="other") + gateway(f"[{listener('nothing.example.com')}]")
    assert accepts(text + served()) == [
        "kserve/serving/m's host m-serving.example.com matches no listener hostname of gateway/kserve/"
        "kserve-ingress-gateway (['nothing.example.com'])"]


def test_without_the_kserve_gateway_no_route_is_judged():
    ctx = context(configmap() + gateway(f"[{listener()}]", name="another") + served())
    assert wiring.GATEWAY_ACCEPTS_ROUTES.select(ctx) == []


def test_split_routes_are_judged_by_their_hostnames_other_routes_not():
    on = route("[{name: m-predictor}, {name: n-predictor}]").replace("spec:\n", "spec:\n  hostnames: [qwen.other.com]\n")
    other = route("[{name: x}]", parent="{name: elsewhere}").replace("name: split", "name: single")
    ctx = context(configmap() + gateway(f"[{listener('*.example.com')}]") + served() + on + other)
    assert [r.name for r in wiring.GATEWAY_ACCEPTS_ROUTES.select(ctx)] == ["m", "split"]
    assert found(wiring.GATEWAY_ACCEPTS_ROUTES, ctx, "split") == [
        "httproute/split's host qwen.other.com matches no listener hostname of gateway/kserve/kserve-ingress-gateway "
        "(['*.example.com'])"]
    assert found(wiring.GATEWAY_ACCEPTS_ROUTES, context(configmap() + gateway(f"[{listener('*.example.com')}]")
                                                        + on.replace("qwen.other.com", "qwen.example.com")), "split") == []


# --- wiring: Secrets ---------------------------------------------------------------------------------------------


def reader(*refs: str, ns: str = "serving") -> str:
    env = ", ".join(f"{{name: E{i}, valueFrom: {{secretKeyRef: {r}}}}}" for i, r in enumerate(refs))
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reader, namespace: {ns}}}
spec: {{template: {{spec: {{initContainers: [{{name: init, image: x, env: [{env}]}}], containers: [{{name: c, image: x}}]}}}}}}
---"""


def secret(name: str = "s", ns: str = "serving", data: str = "{}", string_data: str = "{}") -> str:
    return f"\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {data}\nstringData: {string_data}\n---"


def external(spec: str, name: str = "es", ns: str = "serving") -> str:
    return f"\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n---"


@pytest.mark.parametrize(
    ("declared", "ref", "expected"),
    [
        (secret(data="{token: eA==}"), "{name: s, key: token}", []),
        (secret(string_data="{token: x}"), "{name: s, key: token}", []),
        (secret(data="{other: eA==}"), "{name: s, key: token}", ["other"]),
        (secret(data="{other: eA==}"), "{name: s, key: token, optional: true}", []),
        (secret(data="{token: eA==}", ns="elsewhere") + secret(data="{other: eA==}"), "{name: s, key: token}", ["other"]),
        (secret(data="{other: eA==}", ns="elsewhere"), "{name: s, key: token}", []),
        (external("{target: {name: s}, data: [{secretKey: token}]}"), "{name: s, key: token}", []),
        (external("{target: {name: s}, data: [{secretKey: other}]}"), "{name: s, key: token}", ["other"]),
        (external("{data: [{secretKey: other}]}", name="s"), "{name: s, key: token}", ["other"]),
        (external("{target: {name: s}, dataFrom: [{extract: {key: k}}]}"), "{name: s, key: token}", []),
        (external("{target: {name: s, template: {data: {token: x}}}, data: [{secretKey: raw}]}"),
         "{name: s, key: token}", []),
        ("", "{name: s, key: token}", []),
    ],
    ids=["data", "string-data", "missing", "optional", "its-own-namespace", "other-namespace-only",
         "external", "external-missing", "external-named-by-itself", "data-from", "template", "undeclared"],
)
def test_secret_keys_read_exist(declared, ref, expected):
    result = found(wiring.SECRET_REFS_RESOLVE, context(declared + reader(ref)))
    assert [f.rsplit("fills with ", 1)[1] for f in result] == [f"['{k}']" for k in expected]


def test_every_secret_reference_is_judged():
    text = secret(data="{a: eA==}") + reader("{name: undeclared, key: x}", "{name: s, key: b}")
    assert found(wiring.SECRET_REFS_RESOLVE, context(text)) == [
        "deployment/serving/reader container 'init' reads key 'b' of Secret s, which secret/serving/s fills with ['a']"]


# --- schema: closing CRD schemas, inlining core references -------------------------------------------------------


def test_crd_schemas_are_closed_where_they_list_properties():
    from serving_conformance.rules.published import _closed

    schema = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "string", "nullable": True}}},
        "open": {"type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": True},
        "given": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
        "list": {"type": "array", "items": [{"type": "object", "properties": {}}]},
        "map": {"type": "object"},
    }}
    assert _closed(schema) == {"type": "object", "additionalProperties": False, "properties": {
        "a": {"type": "object", "additionalProperties": False,
              "properties": {"b": {"type": ["string", "null"], "nullable": True}}},
        "open": {"type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": True},
        "given": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
        "list": {"type": "array", "items": [{"type": "object", "properties": {}, "additionalProperties": False}]},
        "map": {"type": "object"},
    }}
    assert _closed({"nullable": True, "type": ["string"]}) == {"nullable": True, "type": ["string"]}


def test_core_schema_references_are_inlined_and_recursion_left_open():
    from serving_conformance.rules.published import _inline_refs

    definitions = {
        "io.k8s.Pod": {"type": "object", "properties": {"spec": {"$ref": "#/$defs/io.k8s.PodSpec"}}},
        "io.k8s.PodSpec": {"type": "object", "properties": {"containers": {"type": "array", "items": {
            "$ref": "#/$defs/io.k8s.Container"}}, "self": {"$ref": "#/$defs/io.k8s.PodSpec", "description": "d"}}},
        "io.k8s.Container": {"type": "object"},
    }
    schema = {"oneOf": [{"$ref": "#/$defs/io.k8s.Pod"}, {"$ref": "#/$defs/io.k8s.Unknown", "type": "null"}]}
    assert _inline_refs(schema, definitions) == {"oneOf": [
        {"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "containers": {"type": "array", "items": {"type": "object"}}, "self": {"description": "d"}}}}},
        {"type": "null"},
    ]}
    assert _inline_refs("text", definitions) == "text"


def test_inlining_carries_the_recursion_guard_into_lists_and_a_references_siblings():
    from serving_conformance.rules.published import _inline_refs

    definitions = {"R": {"type": "object", "properties": {"child": {"$ref": "#/$defs/R"}}}, "X": {"type": "integer"}}
    # R already being inlined: below it, R is left open wherever it appears
    assert _inline_refs([{"$ref": "#/$defs/R"}], definitions, ("R",)) == [{}]
    assert _inline_refs({"$ref": "#/$defs/X", "items": {"$ref": "#/$defs/R"}}, definitions, ("R",)) == {
        "type": "integer", "items": {}}
    # a reference's sibling keys are inlined too
    assert _inline_refs({"$ref": "#/$defs/X", "items": {"$ref": "#/$defs/X"}}, definitions) == {
        "type": "integer", "items": {"type": "integer"}}


def test_crd_schemas_are_read_from_every_crd_closed_and_cached(tmp_path):
    from serving_conformance.rules.published import CLOSING, _crd_schemas

    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "crds.yaml").write_text("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: example.com
  names: {kind: Thing}
  versions:
    - name: v1
      schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {a: {type: string}}}}}}
    - name: v0
---
kind: ConfigMap
---
- not a mapping
""")
    (tmp_path / "other.yaml").write_text("""
kind: Namespace
---
kind: CustomResourceDefinition
spec: {group: example.com, names: {kind: Other}, versions: [{name: v2, schema: {openAPIV3Schema: {type: object}}}]}
---
kind: CustomResourceDefinition
spec: {group: example.com, names: {kind: Old}, version: v1}
""")  # a CRD after another kind in its file; an old one with no versions (nothing to read)
    expected = {
        "example.com/v1/Thing": {"type": "object", "additionalProperties": False, "properties": {
            "spec": {"type": "object", "additionalProperties": False, "properties": {"a": {"type": "string"}}},
            "metadata": {"type": "object"}}},
        "example.com/v2/Other": {"type": "object", "properties": {"metadata": {"type": "object"}}},
    }
    assert _crd_schemas(tmp_path) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".closed-schemas-{CLOSING}.json", "nested", "other.yaml"]
    (tmp_path / "other.yaml").unlink()
    assert _crd_schemas(tmp_path) == expected  # read back from the cache


# --- images, vLLM on CPU: every container judged --------------------------------------------------------------


def test_the_engine_is_judged_on_every_design_component():
    text = isvc("m", "{containers: [{name: kserve-container, image: x, args: [--model=other]}]}",
                extra="  transformer: {containers: [{name: t, image: 'vllm/vllm-openai:v0.22.0', "
                      "args: [--served-model-name=qwen2.5-0.5b]}]}")
    assert found(images.ENGINE_IDENTICAL, context(text)) == [
        "kserve/m transformer runs vLLM image 'vllm/vllm-openai:v0.22.0' (version 0.22.0)"]


def test_every_vllm_cpu_container_of_a_pod_is_judged():
    text = pod(vllm("gpu"), f"{{name: cpu, image: '{CPU_IMAGE}', resources: {{requests: {{cpu: '1'}}}}}}",
               f"{{name: cpu2, image: '{CPU_IMAGE}'}}")
    assert found(resources.VLLM_CPU, context(text)) == [
        "deployment/d container 'cpu' requests cpu='1'", "deployment/d container 'cpu2' requests cpu=None"]


# --- schema: which objects, which schema, what is reported -------------------------------------------------------


def schema_ctx(text: str, kubernetes: str = "1.34.3") -> RuleContext:
    manifests = ManifestSet((Path("."),), resources=objects(text))
    return RuleContext(manifests, Expectations("qwen2.5-0.5b", "0.23.0", "0.19.0", kubernetes, 1), None)


@pytest.mark.parametrize(
    ("api", "kind", "known"),
    [
        ("serving.kserve.io/v1beta1", "InferenceService", True),
        ("serving.kserve.io/v1beta1", "Nothing", True),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", True),
        ("v1", "Service", True),
        ("apps/v1", "Deployment", True),
        ("networking.k8s.io/v1", "Ingress", True),
        ("v1", "Nothing", True),  # judged: it fails, naming what the core group serves
        ("inference.networking.k8s.io/v1", "InferencePool", False),  # not Kubernetes' own
        ("argoproj.io/v1alpha1", "Application", False),
        ("external-secrets.io/v1", "ExternalSecret", False),
        ("monitoring.coreos.com/v1", "ServiceMonitor", False),
    ],
)
def test_schemas_are_known_for_kserve_gateway_api_and_core_kinds(api, kind, known):
    from serving_conformance.rules.schema import SCHEMA_VALID

    ctx = schema_ctx(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n")
    assert SCHEMA_VALID.in_context(ctx.manifests.resources[0], ctx) is known


def test_helm_values_have_a_known_schema_and_an_unpublished_kubernetes_release_is_judged_to_say_so():
    from serving_conformance.rules.findings import CannotCheck
    from serving_conformance.rules.schema import SCHEMA_VALID

    ctx = schema_ctx("kserve: {}\n")
    assert SCHEMA_VALID.in_context(ctx.manifests.resources[0], ctx)
    old = schema_ctx("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", kubernetes="1.2.0")
    assert SCHEMA_VALID.in_context(old.manifests.resources[0], old)
    with pytest.raises(CannotCheck, match="no schemas for Kubernetes 1.2"):
        SCHEMA_VALID.check(old.manifests.resources[0], old)


@pytest.mark.parametrize(
    ("api", "kind", "words"),
    [
        ("serving.kserve.io/v1beta1", "Nothing", "serve no kind 'Nothing' in group 'serving.kserve.io'"),
        ("serving.kserve.io/v1beta2", "InferenceService", "serve InferenceService at serving.kserve.io/v1beta1 only"),
        ("gateway.networking.k8s.io/v1", "Nothing", "serve no kind 'Nothing' in group 'gateway.networking.k8s.io'"),
        ("v1", "Nothing", "serve no kind 'Nothing' in group 'core'"),
        ("apps/v9", "Deployment", "serve Deployment at apps/v1 only"),
        ("extensions/v1beta1", "Ingress", "serve no kind 'Ingress' in group 'extensions'"),  # a group no longer served
    ],
)
def test_a_kind_or_version_a_known_group_does_not_serve_fails_naming_what_it_serves(api, kind, words):
    from serving_conformance.rules.schema import SCHEMA_VALID

    ctx = schema_ctx(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n")
    resource = ctx.manifests.resources[0]
    assert SCHEMA_VALID.in_context(resource, ctx)
    (finding,) = SCHEMA_VALID.check(resource, ctx)
    assert words in finding.found


def test_schemas_that_cannot_be_obtained_are_not_judged(monkeypatch):
    from serving_conformance.base.upstream import UpstreamUnavailable
    from serving_conformance.rules import published, schema
    from serving_conformance.rules.findings import CannotCheck

    def unavailable(*args):
        raise UpstreamUnavailable("offline")

    monkeypatch.setattr(schema, "kserve_files", unavailable)
    monkeypatch.setattr(published, "kserve_files", unavailable)
    monkeypatch.setattr(published, "gateway_api_files", unavailable)
    for text in ("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: x}\n",
                 "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\n"):
        ctx = RuleContext(schema_ctx(text).manifests, Expectations("m", "0.23.0", "0.0.7", "1.34.3", 1, "0.0.7"), None)
        with pytest.raises(CannotCheck, match="schema not obtainable on this machine: offline"):
            schema.SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)
    ctx = RuleContext(schema_ctx("kserve: {}\n").manifests, Expectations("m", "0.23.0", "0.0.7", "1.34.3", 1), None)
    with pytest.raises(CannotCheck, match="chart values not obtainable on this machine: offline"):
        schema.SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)


@pytest.mark.parametrize(
    ("api", "kind", "filename"),
    [("v1", "Service", "service-v1.json"), ("apps/v1", "Deployment", "deployment-apps-v1.json"),
     ("networking.k8s.io/v1", "Ingress", "ingress-networking-v1.json"),
     ("policy/v1", "PodDisruptionBudget", "poddisruptionbudget-policy-v1.json")],
)
def test_core_schema_files_are_named_by_kind_group_and_version(api, kind, filename):
    from serving_conformance.rules.published import core_filename

    assert core_filename(objects(f"apiVersion: {api}\nkind: {kind}\n")[0]) == filename


def test_schema_errors_are_reported_in_field_order_at_most_eight():
    from serving_conformance.rules.schema import SCHEMA_VALID

    ports = ", ".join(f"{{port: p{i}}}" for i in reversed(range(10)))
    ctx = schema_ctx(f"apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: {{ports: [{ports}], z: 1}}\n")
    result = [f.found for f in SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)]
    assert result == [
        "spec: Additional properties are not allowed ('z' was unexpected)",
        *(f"spec.ports.{i}.port: 'p{9 - i}' is not of type 'integer'" for i in range(7)),
        "... and 3 more errors",
    ]
    clean = schema_ctx("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    assert SCHEMA_VALID.check(clean.manifests.resources[0], clean) == []


def test_top_level_schema_errors_say_so():
    from serving_conformance.rules.schema import SCHEMA_VALID

    ctx = schema_ctx("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nextra: 1\n")
    assert [f.found for f in SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)] == [
        "(top level): Additional properties are not allowed ('extra' was unexpected)"]


def test_helm_values_unknown_keys_are_found_below_known_maps_only():
    from serving_conformance.rules.schema import SCHEMA_VALID

    values = """
kserve:
  version: v0.19.0
  controller:
    deploymentMod: Standard
    nodeSelector: {any: thing}
    gateway: {domain: example.com, typo: 1}
  storage: not-a-map
unknownTop: 1
"""
    ctx = schema_ctx(values)
    assert [f.found.split(" is not")[0] for f in SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)] == [
        "kserve.controller.deploymentMod", "kserve.controller.gateway.typo", "unknownTop"]


# --- what counts as vLLM, and on what it runs (the field trial's false alarms) ----------------------

from serving_conformance.manifests.workloads import Container  # noqa: E402


@pytest.mark.parametrize("image, command, expected", [
    ("vllm/vllm-openai:v0.23.0", [], True),
    ("docker.io/vllm/vllm-openai-cpu:v0.23.0-x86_64", [], True),
    ("vllm/vllm-tpu:latest", [], True),
    ("us-docker.pkg.dev/acme/ml/vllm-qwen:1", [], True),
    ("ghcr.io/llm-d/llm-d-cuda:v0.3", ["vllm", "serve"], True),
    ("python:3.11", ["python3", "-m", "vllm.entrypoints.openai.api_server"], True),
    ("busybox", ["/bin/sh", "-c", "exec vllm serve /mnt/models"], True),
    ("quay.io/rh-aiservices-bu/gradio-rag-milvus-vllm-openai:latest", [], False),  # a UI that calls vLLM
    ("aibrix/vllm-mock:nightly", ["python3", "app.py"], False),  # imitates its API
    ("aibrix/vllm-simulator:nightly", [], False),
    ("python:3.11", ["python3", "app.py", "--vllm-url=http://x"], False),
])
def test_what_runs_vllm(image, command, expected):
    assert Container({"name": "c", "image": image, "command": command}).is_vllm is expected


@pytest.mark.parametrize("body, accelerator", [
    ({"image": "vllm/vllm-openai:v0.23.0"}, "cuda"),
    ({"image": "vllm/vllm-openai-cpu:v0.23.0-x86_64"}, "cpu"),
    ({"image": "quay.io/x/vllm:cpu-0.9"}, "cpu"),
    ({"image": "vllm/vllm-tpu:latest"}, "tpu"),
    ({"image": "vllm/vllm-openai:v0.23.0", "resources": {"limits": {"google.com/tpu": 8}}}, "tpu"),
    ({"image": "rocm/vllm:latest"}, "rocm"),
    ({"image": "x/vllm:1", "resources": {"limits": {"amd.com/gpu": 1}}}, "rocm"),
    ({"image": "vllm/vllm-rocm:v0.9"}, "rocm"),
    ({"image": "repo.rebellions.ai/rebellions/vllm-rbln-rhel9:3.3"}, "npu"),
    ({"image": "x/vllm:1", "resources": {"limits": {"rebellions.ai/ATOM": 1}}}, "npu"),
    ({"image": "x/vllm:1", "resources": {"limits": {"nvidia.com/mig-1g.10gb": 1}}}, "cuda"),
    ({"image": "ghcr.io/llm-d/llm-d-cuda:v0.3"}, "cuda"),
    ({"image": "opea/vllm:latest"}, "unknown"),  # a third party's build that does not say
    ({"image": "us-docker.pkg.dev/acme/ml/vllm-qwen:1"}, "unknown"),
])
def test_what_vllm_runs_on(body, accelerator):
    assert Container({"name": "c", **body}).accelerator == accelerator


def _vllm_deployment(name: str, image: str, limits: str) -> str:
    return pod(f'{{name: vllm, image: "{image}", resources: {{limits: {limits}}}}}', name=name)


def test_a_tpu_vllm_or_a_runtime_template_needs_no_nvidia_gpu_limit():
    ctx = context(_vllm_deployment("tpu", "vllm/vllm-tpu:latest", "{google.com/tpu: 8}")
                  + _vllm_deployment("cuda", IMAGE, "{cpu: 4}") + """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: runtime}
spec:
  containers: [{name: kserve-container, image: "vllm/vllm-openai:v0.23.0"}]
""")
    assert "tpu" not in {r.name for r in gpu.GPU_WORKLOADS.select(ctx)}  # not a GPU workload at all
    assert found(gpu.GPU_WORKLOADS, ctx, "runtime") == []
    assert found(gpu.GPU_WORKLOADS, ctx, "cuda") == [
        "deployment/cuda container 'vllm' runs a GPU vLLM image without limits['nvidia.com/gpu']"]


def test_a_runtime_template_may_leave_the_cpu_request_to_its_inferenceservices():
    ctx = context("""
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: runtime}
spec:
  containers: [{name: kserve-container, image: "vllm/vllm-openai-cpu:v0.23.0"}]
---
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: one-core}
spec:
  containers: [{name: kserve-container, image: "vllm/vllm-openai-cpu:v0.23.0", resources: {requests: {cpu: "1"}}}]
""")
    assert found(resources.VLLM_CPU, ctx, "runtime") == []
    assert found(resources.VLLM_CPU, ctx, "one-core") == ["servingruntime/one-core container 'kserve-container' requests cpu='1'"]


def test_a_probe_without_a_handler_is_left_to_the_controller_that_completes_it():
    ctx = context("""
apiVersion: serving.kserve.io/v1alpha1
kind: LLMInferenceService
metadata: {name: opt}
spec:
  template:
    containers:
      - name: main
        image: vllm/vllm-openai-cpu:v0.23.0
        livenessProbe: {initialDelaySeconds: 30, periodSeconds: 30}
""")
    chosen = [r for r in ports.VLLM_PORT.select(ctx) if r.name == "opt"]
    assert all(ports.VLLM_PORT.check(r, ctx) == [] for r in chosen)


# --- schemas as the API server applies them (false alarms of the field trial, checked on a real one) -


@pytest.mark.parametrize("text", [
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n"
    "roleRef: {kind: ClusterRole, name: r}\nsubjects: [{kind: ServiceAccount, name: s, namespace: d}]\n",
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\n",
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n"
    "  listeners: [{name: http, port: 80, protocol: HTTP}]\n"
    "  addresses: [{type: Hostname, value: example.com}, {type: example.com/custom, value: anything}]\n",
])
def test_what_the_api_server_accepts_passes(text):
    ctx = context(text)
    assert [f.found for r in ctx.manifests.resources for f in SCHEMA_VALID.check(r, ctx)] == []


@pytest.mark.parametrize("text, words", [
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template: {spec: {containers: [{name: c, image: i}]}}\n",
     "'selector' is a required property"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {apiGroup: x}\n",
     "'kind' is a required property"),
    ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n"
     "  listeners: [{name: http, port: 80, protocol: HTTP}]\n  addresses: [{type: IPAddress, value: x, extra: 1}]\n",
     "addresses.0"),
])
def test_what_the_api_server_refuses_fails(text, words):
    ctx = context(text)
    assert any(words in f.found for r in ctx.manifests.resources for f in SCHEMA_VALID.check(r, ctx))


def test_gpus_from_a_resource_claim_need_no_nvidia_limit():
    ctx = context("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: dra}
spec:
  strategy: {type: Recreate}
  template:
    spec:
      resourceClaims: [{name: gpus, resourceClaimTemplateName: t}]
      containers: [{name: vllm, image: "vllm/vllm-openai:v0.23.0", resources: {claims: [{name: gpus}]}}]
""")
    assert found(gpu.GPU_WORKLOADS, ctx, "dra") == []



@pytest.mark.parametrize(("resources", "stuck"), [
    ("{limits: {nvidia.com/mig-2g.48gb: 1}}", False),  # a MIG slice is a GPU
    ("{limits: {nvidia.com/mig-4g.96gb: 2}}", False),
    ("{requests: {nvidia.com/mig-2g.48gb: 1}}", True),  # extended resources are asked for through limits
    ("{limits: {nvidia.com/gpu.shared: 1}}", True),  # not a MIG slice: the check still asks for nvidia.com/gpu
])
def test_a_mig_slice_in_the_limits_is_a_gpu(resources, stuck):
    ctx = context(pod(f'{{name: vllm, image: "{IMAGE}", resources: {resources}}}', name="mig", strategy="{type: Recreate}"))
    assert found(gpu.GPU_WORKLOADS, ctx, "mig") == (
        ["deployment/mig container 'vllm' runs a GPU vLLM image without limits['nvidia.com/gpu']"] if stuck else [])

# --- the survivors of mutation testing, each killed by the input it missed ---------------------------


def test_a_memory_only_request_is_checked():
    ctx = context(isvc("mem", """
    containers:
      - {name: kserve-container, image: x, resources: {requests: {memory: 4Gi}}}"""))
    assert found(resources.LIMITS_COVER_REQUESTS, ctx, "mem") == [
        "kserve/mem predictor container 'kserve-container' requests memory=4Gi with no limits.memory"]


def test_a_missing_cpu_limit_does_not_hide_a_memory_limit_below_its_request():
    ctx = context(isvc("both", """
    containers:
      - {name: kserve-container, image: x, resources: {requests: {cpu: "2", memory: 4Gi}, limits: {memory: 1Gi}}}"""))
    assert found(resources.LIMITS_COVER_REQUESTS, ctx, "both") == [
        "kserve/both predictor container 'kserve-container' requests cpu=2 with no limits.cpu",
        "kserve/both predictor container 'kserve-container' limits.memory=1Gi is below requests.memory=4Gi"]


def test_a_cpu_vllm_container_does_not_hide_a_gpu_one_beside_it():
    ctx = context(pod(f'{{name: cpu, image: "{CPU_IMAGE}", resources: {{requests: {{cpu: "2"}}}}}}',
                      f'{{name: gpu, image: "{IMAGE}"}}', name="two"))
    assert found(gpu.GPU_WORKLOADS, ctx, "two") == [
        "deployment/two container 'gpu' runs a GPU vLLM image without limits['nvidia.com/gpu']"]


def test_two_external_secrets_in_one_namespace_are_told_apart():
    ctx = context("""
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: other, namespace: n}
spec: {target: {name: other}, data: [{secretKey: unrelated, remoteRef: {key: x}}]}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: keys, namespace: n}
spec: {target: {name: keys}, data: [{secretKey: api-key, remoteRef: {key: y}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: raw, namespace: n}
spec:
  template:
    spec:
      containers:
        - name: vllm
          image: x
          env: [{name: VLLM_API_KEY, valueFrom: {secretKeyRef: {name: keys, key: api-key}}}]
""")
    assert found(wiring.SECRET_REFS_RESOLVE, ctx, "raw") == []


def test_a_schema_property_named_ref_is_a_property_not_a_reference():
    """Kubernetes' CustomResourceDefinition schema describes JSON schemas: it has a property named
    "$ref". Taken for a reference, any CRD in a repository crashed the run (the field trial)."""
    from serving_conformance.rules.published import _inline_refs

    schema = {"properties": {"$ref": {"type": "string"}, "x": {"$ref": "#/$defs/X"}}}
    assert _inline_refs(schema, {"X": {"type": "integer"}}) == {
        "properties": {"$ref": {"type": "string"}, "x": {"type": "integer"}}}
    ctx = schema_ctx("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                     "metadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n"
                     "  names: {kind: Widget, plural: widgets}\n  versions: [{name: v1, served: true, storage: true}]\n")
    assert SCHEMA_VALID.check(ctx.manifests.resources[0], ctx) == []


def test_argo_values_may_start_above_the_manifests_directory_within_its_repository(tmp_path):
    """A platform engineer points the suite at argocd/ of a repository whose values are in
    platform/: the values exist in the repository (up to its git top), so nothing is wrong."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "platform" / "kserve").mkdir(parents=True)
    (tmp_path / "platform" / "kserve" / "values.yaml").write_text("kserve: {}\n")
    argocd = tmp_path / "argocd"
    argocd.mkdir()
    app = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: kserve}
spec:
  sources:
    - {repoURL: https://example.invalid/charts, chart: kserve-resources, helm: {valueFiles: [$values/platform/kserve/values.yaml]}}
    - {repoURL: https://example.invalid/platform.git, ref: values}
"""
    ctx = context(app, root=argocd)
    assert found(kserve.PLATFORM_CONFIG, ctx) == []
    ctx = context(app.replace("platform/kserve/values.yaml", "platform/kserve/gone.yaml"), root=argocd)
    assert "which is not in the repository" in found(kserve.PLATFORM_CONFIG, ctx)[0]


def test_crd_defaults_are_applied_before_validation_as_the_api_server_does():
    ctx = context("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n"
                  "  gatewayClassName: c\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n"
                  "  addresses: [{value: 10.0.0.1}]\n")
    assert [f.found for r in ctx.manifests.resources for f in SCHEMA_VALID.check(r, ctx)] == []


def test_documents_without_a_name_are_sorted_by_whether_the_api_server_serves_their_kind():
    from serving_conformance.manifests.model import LoadProblem
    from serving_conformance.rules.published import kind_served
    from serving_conformance.rules.schema import classify_nameless

    manifests = ManifestSet((Path("."),))
    documents = [{"apiVersion": "v1", "kind": "Service"}, {"apiVersion": "skaffold/v2", "kind": "Config"},
                 {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ConformanceReport"},
                 {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService"}]
    for i, data in enumerate(documents):
        manifests.nameless.append(LoadProblem(Path(f"f{i}.yaml"), i + 1, f"{data['kind']} has no metadata.name"))
        manifests.nameless_documents.append(data)
    ctx = RuleContext(manifests, Expectations("qwen2.5-0.5b", "0.23.0", "0.19.0", "1.34.3", 1), None)
    classify_nameless(ctx)
    assert [(p.path.name, p.line, p.message) for p in manifests.problems] == [
        ("f0.yaml", 1, "Service has no metadata.name"), ("f3.yaml", 4, "InferenceService has no metadata.name")]
    assert [(p.path.name, p.line, p.message) for p in manifests.not_followed] == [
        ("f1.yaml", 2, "skaffold/v2 Config without metadata.name: not an object an API server would hold (a tool's "
                       "configuration or report): not judged"),
        ("f2.yaml", 3, "gateway.networking.k8s.io/v1 ConformanceReport without metadata.name: not an object an API "
                       "server would hold (a tool's configuration or report): not judged")]
    assert manifests.nameless == [] and manifests.nameless_documents == []
    assert kind_served("apps/v1", "Deployment", ctx) is True
    assert kind_served("apps/v9", "Deployment", ctx) is False
    assert kind_served("argoproj.io/v1alpha1", "Application", ctx) is None
