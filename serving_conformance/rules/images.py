"""What runs: images pinned by digest, the same engine and served name on every path."""

from __future__ import annotations

from serving_conformance.manifests.design import design_paths, is_design_path
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.workloads import workloads_of
from serving_conformance.rules.common import has_workload, serves_vllm
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



def _is_design_path(resource: Resource, ctx: RuleContext) -> bool:
    return any(is_design_path(w, ctx.expect) for w in workloads_of(resource))


def _others_serving(resource: Resource, ctx: RuleContext) -> str:
    """The other design paths and the names they serve, for a message."""
    others = [w for w in design_paths(ctx.manifests, ctx.expect) if w.resource is not resource]
    described = [f"{w.resource.ident} serves {w.serving_container.vllm.served_model_names}" for w in others
                 if w.serving_container is not None]
    return "; ".join(described[:4]) or "no other path serves this model"


def _check_engine(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    expect = ctx.expect
    for workload in workloads_of(resource):
        if not is_design_path(workload, expect):
            continue
        container = workload.serving_container
        assert container is not None  # a design path runs vLLM
        version = container.image.version
        engine, served = expect.engine_version_for(workload.resource), expect.served_name_for(workload.resource)
        declared = expect.declared_path(workload.resource)
        source = f"the options file's path {declared.describe()}" if declared else "--served-model-name"
        if version != engine:
            findings.append(Finding(
                found=f"{workload.label} runs vLLM image {container.image.reference!r} (version {version or 'unknown'})",
                effect=(
                    f"the paths serving this model would not run the same engine (expected vLLM "
                    f"{engine}), so comparing them measures the engine, not the serving layer"
                ),
                fix=f"use the vLLM {engine} image on every path of this model, or pass --engine-version",
            ))
        names = container.vllm.served_model_names
        if served not in names:
            findings.append(Finding(
                found=f"{workload.label} serves model name(s) {names} ({_others_serving(resource, ctx)})",
                effect=(
                    f"clients use the name {served!r} ({source}): asking this path "
                    "for it answers 404, so the paths serving this model do not serve the same name"
                ),
                fix=f"serve it as {served} (--served-model-name={served}), "
                    "or name what clients really use (--served-model-name, or a path in the options file)",
            ))
    return findings


ENGINE_IDENTICAL = Rule(
    id="engine-identical",
    title="the paths serving the design's model (KServe and raw vLLM) run the same vLLM version and serve the same name",
    applies=serves_vllm,
    in_context=_is_design_path,
    check=_check_engine,
    nothing_to_check="no vLLM workload serving the design's model in the manifests",
)
