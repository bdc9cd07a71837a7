"""The vLLM port, the containerPort, the probes and the Service agree."""

from __future__ import annotations

from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import (
    KSERVE_DEFAULT_PORT,
    VLLM_DEFAULT_PORT,
    Container,
    Workload,
    as_list,
    as_mapping,
)
from serving_conformance.rules.common import serves_vllm, vllm_containers
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# --- Ports ------------------------------------------------------------------------------------


def _resolve_port(container: Container, port: object) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        return int(port) if port.isdigit() else container.named_port(port)
    return None


def _selecting_services(workload: Workload, ctx: RuleContext) -> list[Resource]:
    """The Services in the workload's namespace whose selector picks its pods."""
    labels = as_mapping(as_mapping(workload.resource.spec.get("template")).get("metadata")).get("labels")
    labels = as_mapping(labels)
    services = []
    for service in ctx.manifests.of_kind("Service"):
        selector = as_mapping(service.spec.get("selector"))
        if service.namespace == workload.resource.namespace and selector \
                and all(labels.get(k) == v for k, v in selector.items()):
            services.append(service)
    return services


def _check_ports(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload, container in vllm_containers(resource):
        port = container.vllm.port or VLLM_DEFAULT_PORT
        declared = container.container_ports
        where = f"{workload.label} container {container.name!r}"
        if declared and port not in declared:
            findings.append(
                Finding(
                    found=f"{where} runs vLLM on port {port} but declares containerPort(s) {declared}",
                    effect="traffic and probes go to a port nothing listens on",
                    fix=f"declare containerPort {port} (or pass --port={declared[0]})",
                )
            )
        if workload.is_kserve and not declared and port != KSERVE_DEFAULT_PORT:
            findings.append(
                Finding(
                    found=f"{where} runs vLLM on port {port} and declares no containerPort",
                    effect=f"KServe points the predictor Service and probes at {KSERVE_DEFAULT_PORT}",
                    fix=f"pass --port={KSERVE_DEFAULT_PORT} or declare containerPort {port}",
                )
            )
        for probe, probe_port in container.probe_ports().items():
            if probe_port is None:
                continue  # no handler here: a template the controller completes (LLMInferenceService)
            resolved = _resolve_port(container, probe_port)
            if resolved != port:
                findings.append(
                    Finding(
                        found=f"{where} {probe} targets port {probe_port!r} while vLLM listens on {port}",
                        effect="the probe fails: the pod never becomes Ready, or is restarted in a loop",
                        fix=f"point the {probe} at port {port}",
                    )
                )
        if not workload.is_kserve:
            # A Service may also expose a sidecar's or a metrics port: one of its ports must reach vLLM.
            for service in _selecting_services(workload, ctx):
                sent = [(as_mapping(p).get("port"), as_mapping(p).get("targetPort", as_mapping(p).get("port")))
                        for p in as_list(service.spec.get("ports"))]
                if sent and not any(_resolve_port(container, target) == port for _, target in sent):
                    described = ", ".join(f"port {number} to {target!r}" for number, target in sent)
                    findings.append(
                        Finding(
                            found=f"{service.ident} sends {described}, vLLM listens on {port}",
                            effect="requests through the Service are refused",
                            fix=f"set targetPort to {port}",
                        )
                    )
    return findings


VLLM_PORT = Rule(
    id="vllm-port-matches",
    title="the vLLM --port matches the declared containerPort, the probes and the Service",
    applies=serves_vllm,
    check=_check_ports,
    nothing_to_check="no vLLM container in the manifests",
)
