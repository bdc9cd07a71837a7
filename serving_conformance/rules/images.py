"""What runs: images pinned by digest, the same engine and served name on every path."""

from __future__ import annotations

from serving_conformance.manifests.load import Resource
from serving_conformance.manifests.workloads import workloads_of
from serving_conformance.rules.common import has_workload, serves_vllm, vllm_containers
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# --- Images -----------------------------------------------------------------------------------


def _check_images(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for workload in workloads_of(resource):
        for container in workload.init_containers + workload.containers:
            image = container.image
            if not image.reference:
                continue
            if not image.digest_pinned:
                findings.append(
                    Finding(
                        found=f"{workload.label} container {container.name!r} image {image.reference!r} has no @sha256 digest",
                        effect="a tag can be moved: the cluster may run another build than the one that was verified",
                        fix=f"pin it: {image.reference.split('@')[0]}@sha256:<digest>",
                    )
                )
    return findings


IMAGES_PINNED = Rule(
    id="images-digest-pinned",
    title="every image is pinned by digest",
    applies=has_workload,
    check=_check_images,
    nothing_to_check="no workload (InferenceService or Deployment) in the manifests",
)


# --- Same engine, same model on every path ----------------------------------------------------



def _check_engine(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    expect = ctx.expect
    for workload, container in vllm_containers(resource):
        version = container.image.version
        if version != expect.engine_version:
            findings.append(
                Finding(
                    found=f"{workload.label} runs vLLM image {container.image.reference!r} (version {version or 'unknown'})",
                    effect=(
                        f"the raw-vLLM control and the KServe path would not run the same engine "
                        f"(expected vLLM {expect.engine_version}), so comparing them measures the engine, not the serving layer"
                    ),
                    fix=f"use the vLLM {expect.engine_version} image on every path, or pass --engine-version",
                )
            )
        names = container.vllm.served_model_names
        if expect.served_model_name not in names:
            findings.append(
                Finding(
                    found=f"{workload.label} serves model name(s) {names}",
                    effect=(
                        f"clients asking for {expect.served_model_name!r} get 404 from this path; "
                        "the two paths are not serving the same model name"
                    ),
                    fix=f"pass --served-model-name={expect.served_model_name}",
                )
            )
    return findings


ENGINE_IDENTICAL = Rule(
    id="engine-identical",
    title="the raw and KServe paths run the same vLLM version and serve the same model name",
    applies=serves_vllm,
    check=_check_engine,
    nothing_to_check="no vLLM container in the manifests",
)
