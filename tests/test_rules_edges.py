"""The rules at the edges mutation testing found unwatched (benchmarks/mutation-survivors.md): each
test is an input some mutant of a rule judged differently and no other test held it to, with the
finding compared word for word."""

from __future__ import annotations

import pytest

from serving_conformance.manifests.load import load_manifests
from serving_conformance.rules import gpu, images, kserve, ports, resources, wiring
from serving_conformance.rules.findings import Finding, Rule
from serving_conformance.rules.published import _closed
from serving_conformance.rules.schema import SCHEMA_VALID, with_defaults

from .test_rules_units import IMAGE, OCI, configmap, context, found, isvc, pod, schema_ctx


def effects(rule: Rule, ctx, name: str) -> list[str]:
    return [f.effect for r in rule.select(ctx) if r.name == name for f in rule.check(r, ctx)]


# --- limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpu, lower", [("500m", False), ("1", False), ("2", True)])
def test_a_missing_limit_is_said_to_reject_only_when_kserves_default_is_below_the_request(cpu, lower):
    ctx = context(isvc("q", f"""
    containers:
      - {{name: kserve-container, image: x, resources: {{requests: {{cpu: "{cpu}"}}}}}}"""))
    (effect,) = effects(resources.LIMITS_COVER_REQUESTS, ctx, "q")
    assert ("lower than the request" in effect) is lower
    assert ("silently capping the container at 1" in effect) is not lower


def test_a_runtime_leaving_the_request_to_its_services_does_not_hide_its_next_container():
    ctx = context("""
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: two}
spec:
  containers:
    - {name: kserve-container, image: "vllm/vllm-openai-cpu:v0.23.0"}
    - {name: second, image: "vllm/vllm-openai-cpu:v0.23.0", resources: {requests: {cpu: "1"}}}
""")
    assert found(resources.VLLM_CPU, ctx, "two") == ["servingruntime/two container 'second' requests cpu='1'"]


# --- GPUs ------------------------------------------------------------------------------------------


def test_a_claimed_or_checked_container_does_not_hide_the_next_one():
    ctx = context(pod(f'{{name: claimed, image: "{IMAGE}", resources: {{claims: [{{name: g}}]}}}}',
                      f'{{name: limited, image: "{IMAGE}", resources: {{limits: {{nvidia.com/gpu: 1}}}}}}',
                      f'{{name: bare, image: "{IMAGE}"}}', name="pod"))
    assert found(gpu.GPU_WORKLOADS, ctx, "pod") == [
        "deployment/pod container 'bare' runs a GPU vLLM image without limits['nvidia.com/gpu']"]


# --- ports -----------------------------------------------------------------------------------------


def test_a_probe_without_a_handler_does_not_hide_the_next_probe():
    ctx = context(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: raw}}
spec:
  template:
    spec:
      containers:
        - name: vllm
          image: "{IMAGE}"
          args: [--port=8000]
          ports: [{{containerPort: 8000}}]
          readinessProbe: {{periodSeconds: 5}}
          livenessProbe: {{httpGet: {{path: /health, port: 9000}}}}
""")
    assert found(ports.VLLM_PORT, ctx, "raw") == [
        "deployment/raw container 'vllm' livenessProbe targets port 9000 while vLLM listens on 8000"]


# --- images ----------------------------------------------------------------------------------------


def test_a_design_path_alone_says_no_other_path_serves_the_model_and_a_version_it_cannot_read():
    ctx = context(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: raw}}
spec:
  template:
    spec:
      containers:
        - {{name: vllm, image: "vllm/vllm-openai@sha256:{'a' * 64}", args: [--model=Qwen/Qwen2.5-0.5B-Instruct, --served-model-name=other]}}
""")
    assert found(images.ENGINE_IDENTICAL, ctx, "raw") == [
        f"deployment/raw runs vLLM image 'vllm/vllm-openai@sha256:{'a' * 64}' (version unknown)",
        "deployment/raw serves model name(s) ['other'] (no other path serves this model)"]


def test_at_most_four_other_paths_are_named():
    deployments = "".join(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: p{i}}}
spec:
  template:
    spec:
      containers: [{{name: vllm, image: "{IMAGE}", args: [--model=Qwen/Qwen2.5-0.5B-Instruct, --served-model-name=n{i}]}}]
---""" for i in range(6))
    (first, *_) = found(images.ENGINE_IDENTICAL, context(deployments), "p0")
    assert first.count(" serves ") == 1 + 4 and "deployment/p4" in first and "deployment/p5" not in first


# --- kserve ----------------------------------------------------------------------------------------


def test_several_containers_none_named_kserve_container_are_said_to_break_the_controller():
    ctx = context(isvc("two", """
    containers:
      - {name: a, image: x}
      - {name: b, image: y}"""))
    (effect,) = effects(kserve.CUSTOM_CONTAINER, ctx, "two")
    assert effect == ("KServe reads the storage URI and modelcar wiring from kserve-container; without it KServe "
                      "0.19's controller fails to reconcile (seen: a nil-pointer panic, nothing created) and its pod "
                      "webhook refuses modelcar pods")


def test_each_component_is_judged_for_its_modelcar():
    ctx = context(isvc("q", f"""
    containers:
      - name: kserve-container
        image: "{IMAGE}"
        args: [--model=/mnt/models]
        env: [{{name: HF_HUB_OFFLINE, value: "1"}}]""", extra=f"""  transformer:
    containers:
      - name: kserve-container
        image: "{IMAGE}"
        env: [{{name: STORAGE_URI, value: "oci://registry.example.com/models/m:latest"}}]"""))
    assert "kserve/q transformer STORAGE_URI='oci://registry.example.com/models/m:latest' is not pinned by digest" \
        in found(kserve.MODELCAR, ctx, "q")


def test_several_annotations_are_named():
    ctx = context(isvc("q", f"""
    containers: [{{name: kserve-container, image: "{IMAGE}"}}]""",
                       annotations=f'{{a.io/x: "{OCI}", b.io/y: "{OCI}"}}'))
    assert "an oci:// URI is set as an annotation a.io/x, annotation b.io/y" in found(kserve.MODELCAR, ctx, "q")[0]


@pytest.mark.parametrize("config, words", [
    (configmap(deploy='{}'), "deployment mode None at (not set; KServe's default is Serverless/Knative)"),
    (configmap(storage='{"enableModelcar": false}'), "enableModelcar is false at data.storageInitializer.enableModelcar"),
])
def test_what_is_not_set_is_said_with_kserves_default(config, words):
    assert words in found(kserve.PLATFORM_CONFIG, context(config))


def test_a_canary_weight_left_out_counts_as_one_and_names_who_receives():
    route = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{name: kserve-ingress-gateway, namespace: kserve}]
  rules:
    - backendRefs: [{name: a-predictor, port: 80}, {name: b-predictor, port: 80, weight: 0}]
---"""
    predictors = isvc("a", f"{{containers: [{{name: kserve-container, image: '{IMAGE}'}}]}}") + \
        isvc("b", f"{{containers: [{{name: kserve-container, image: '{IMAGE}'}}]}}")
    (finding,) = found(kserve.CANARY, context(route + predictors), "split")
    assert finding == "httproute/split rules[0] weights {'a-predictor': 1, 'b-predictor': 0}"


ARGO = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: kserve}
spec:
  sources:
    - {repoURL: r, chart: kserve-resources, helm: {valueFiles: [$values/gone.yaml]}}
"""


def test_a_missing_values_file_without_ignore_breaks_the_sync_and_names_every_root(tmp_path):
    ctx = context(ARGO, root=tmp_path)
    ctx.manifests.roots = (tmp_path, tmp_path / "other")
    (finding,) = kserve.PLATFORM_CONFIG.check(ctx.manifests.resources[0], ctx)
    assert finding.effect == "Argo CD cannot render the chart: KServe is not synced"
    assert f"({tmp_path}, {tmp_path / 'other'})" in finding.found


def test_values_are_looked_for_above_the_manifests_directory_only_inside_a_repository(tmp_path):
    (tmp_path / "gone.yaml").write_text("kserve: {}\n")
    inner = tmp_path / "argocd"
    inner.mkdir()
    ctx = context(ARGO, root=inner)
    assert found(kserve.PLATFORM_CONFIG, ctx)  # no git repository: only the manifests directory counts


# --- wiring ----------------------------------------------------------------------------------------


def test_a_route_from_another_namespace_names_it():
    ctx = context("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: kserve-ingress-gateway, namespace: kserve}
spec:
  gatewayClassName: c
  listeners: [{name: http, port: 80, protocol: HTTP}]
---""" + configmap() + isvc("q", "{containers: [{name: kserve-container, image: x}]}").replace(
        "metadata: {name: q,", "metadata: {name: q, namespace: team-a,"))
    assert any("and kserve/team-a/q is in team-a" in f for f in found(wiring.GATEWAY_ACCEPTS_ROUTES, ctx))


# --- schema ----------------------------------------------------------------------------------------


def test_junctors_are_never_closed():
    schema = {"type": "object", "properties": {"a": {"type": "string"}},
              "oneOf": [{"properties": {"type": {"enum": ["x"]}}}]}
    closed = _closed(schema)
    assert closed["additionalProperties"] is False and "additionalProperties" not in closed["oneOf"][0]


def test_defaults_follow_the_schema_and_leave_what_it_does_not_describe():
    schema = {"properties": {"items": {"items": {"properties": {"type": {"default": "IPAddress"}}}}}}
    assert with_defaults({"items": [{"value": 1}]}, schema) == {"items": [{"value": 1, "type": "IPAddress"}]}
    assert with_defaults({"a": 1}, {"items": {"properties": {}}}) == {"a": 1}  # not a list: no items applied
    assert with_defaults([{"a": 1}], {"properties": {}}) == [{"a": 1}]  # a list, the schema has no items


@pytest.mark.parametrize("api, kind, words", [
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler", "serve HorizontalPodAutoscaler at autoscaling/v1, autoscaling/v2 only"),
    ("v2", "Service", "serve Service at v1 only"),
    ("v1", "Zzzzzz", "serve no kind 'Zzzzzz' in group 'core'"),
])
def test_what_a_group_serves_is_named_exactly(api, kind, words):
    ctx = schema_ctx(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n")
    (finding,) = SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)
    assert finding.found.endswith(words)


def test_near_names_are_three_at_most():
    ctx = schema_ctx("apiVersion: v1\nkind: Servic\nmetadata: {name: x}\n")
    (finding,) = SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)
    assert finding.found.endswith("(did you mean Service, ServiceList, ServiceAccount?)")


STRING_FIELDS = ("clusterIP", "externalName", "loadBalancerIP", "sessionAffinity", "type", "externalTrafficPolicy",
                 "internalTrafficPolicy", "ipFamilyPolicy", "loadBalancerClass")


def test_more_errors_than_shown_are_counted():
    def service(count: int):
        fields = "".join(f"  {name}: 1\n" for name in STRING_FIELDS[:count])
        ctx = schema_ctx(f"apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec:\n{fields}")
        return SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)

    findings = service(9)
    assert len(findings) == 9 and findings[-1] == Finding("... and 1 more errors", "", "")
    assert len(service(8)) == 8 and not service(8)[-1].found.startswith("...")


def test_free_form_values_are_not_held_to_the_charts_keys():
    ctx = context("kserve:\n  controller:\n    labels: {team: ml}\n    deploymentMode: Standard\n")
    assert [f.found for r in ctx.manifests.resources for f in SCHEMA_VALID.check(r, ctx)] == []


# --- findings and the context ---------------------------------------------------------------------


@pytest.mark.parametrize("count, tail", [(20, None), (21, "  ... and 1 more findings")])
def test_a_failure_shows_twenty_findings_and_counts_the_rest(count, tail):
    message = SCHEMA_VALID.failure_message(schema_ctx("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
                                           .manifests.resources[0], [Finding("f", "e", "x")] * count)
    lines = message.splitlines()
    assert (lines[-1] == tail) if tail else not lines[-1].startswith("  ...")


def test_the_rule_context_carries_what_is_expected_and_kserves_configuration():
    from serving_conformance.base.data import DEFAULT_MANIFESTS
    from serving_conformance.manifests.load import load_manifests
    from serving_conformance.rules.context import rule_context

    from .conftest import base_settings

    expect = base_settings().expect
    ctx = rule_context(load_manifests(DEFAULT_MANIFESTS), expect)
    assert ctx.expect is expect and ctx.kserve_config is not None and ctx.kserve_config.standard_mode


def test_a_component_without_kserve_container_does_not_hide_the_next_ones_modelcar():
    ctx = context(isvc("q", "{containers: [{name: other, image: x}]}", extra="""  transformer:
    containers:
      - name: kserve-container
        image: x
        env: [{name: STORAGE_URI, value: "oci://registry.example.com/models/m:latest"}]"""))
    assert "kserve/q transformer STORAGE_URI='oci://registry.example.com/models/m:latest' is not pinned by digest" \
        in found(kserve.MODELCAR, ctx, "q")


def test_a_second_checked_container_does_not_hide_a_third():
    ctx = context(pod(f'{{name: one, image: "{IMAGE}", resources: {{limits: {{nvidia.com/gpu: 1}}}}}}',
                      f'{{name: two, image: "{IMAGE}", resources: {{limits: {{nvidia.com/gpu: 1}}}}}}',
                      f'{{name: bare, image: "{IMAGE}"}}', name="pod"))
    assert "deployment/pod container 'bare' runs a GPU vLLM image without limits['nvidia.com/gpu']" in \
        found(gpu.GPU_WORKLOADS, ctx, "pod")


def test_without_kserves_configuration_its_default_domain_is_used():
    ctx = context("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: kserve-ingress-gateway, namespace: kserve}
spec:
  gatewayClassName: c
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.internal.example", allowedRoutes: {namespaces: {from: All}}}]
---""" + isvc("q", "{containers: [{name: kserve-container, image: x}]}").replace(
        "metadata: {name: q,", "metadata: {name: q, namespace: team,"))
    (finding,) = found(wiring.GATEWAY_ACCEPTS_ROUTES, ctx)
    assert "host q-team.example.com matches no listener hostname" in finding


@pytest.mark.parametrize("api, kind, words", [
    ("networking.k8s.io/v9", "Ingress", "serve Ingress at networking.k8s.io/v1 only"),  # a group ending .k8s.io
    ("v1", "PersistentVolum", "(did you mean PersistentVolume, PersistentVolumeList, PersistentVolumeClaim?)"),
])
def test_kubernetes_groups_and_near_names(api, kind, words):
    ctx = schema_ctx(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n")
    (finding,) = SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)
    assert finding.found.endswith(words)


def test_a_third_party_group_is_not_judged_against_a_core_schema_of_the_same_name():
    ctx = schema_ctx("apiVersion: storage.example.io/v1\nkind: StorageClass\nmetadata: {name: x}\nprovisioner: p\n")
    assert not SCHEMA_VALID.in_context(ctx.manifests.resources[0], ctx)


def test_a_kind_kubernetes_defines_without_a_published_schema_is_not_judged():
    from serving_conformance.rules.findings import CannotCheck

    ctx = schema_ctx("apiVersion: v1\nkind: WatchEvent\nmetadata: {name: x}\n")
    with pytest.raises(CannotCheck, match="no schema for v1 WatchEvent in Kubernetes 1.34.3's published schemas"):
        SCHEMA_VALID.check(ctx.manifests.resources[0], ctx)


SOPS_SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: cluster-secrets, namespace: flux-system}
stringData: {token: "ENC[AES256_GCM,data:aGk=,iv:aXY=,tag:dGFn,type:str]"}
sops:
  age: [{recipient: age1x, enc: x}]
%s
"""


@pytest.mark.parametrize("metadata, refused", [
    ("  lastmodified: '2024-01-01T00:00:00Z'\n  mac: ENC[AES256_GCM,data:bWFj,type:str]\n  version: 3.8.1", False),
    ("  version: 3.8.1", True),  # no MAC: not what SOPS writes, so the field is judged as written
])
def test_a_sops_encrypted_file_is_judged_as_it_is_applied_decrypted(tmp_path, metadata, refused):
    (tmp_path / "secrets.sops.yaml").write_text(SOPS_SECRET % metadata)
    ctx = schema_ctx("")
    (secret,) = load_manifests(tmp_path).resources
    findings = [f.found for f in SCHEMA_VALID.check(secret, ctx)]
    assert ("sops" in secret.body) is refused
    assert any("'sops' was unexpected" in f for f in findings) is refused
