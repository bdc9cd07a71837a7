"""A realistic GitOps platform repository (fixtures/platform-repo: kustomize overlays, InferenceServices
in KServe's namespace, PVCs, other models, an Inference Extension route on another gateway, Argo CD
applications, Helm charts and values): the static profile raises no false alarm on it, lists what
it does not follow, and catches each seeded fault of fixtures/platform-repo-faults, by its own rule, on
the objects the fault names, saying what the fault expects (a crash is no catch)."""

from pathlib import Path

import pytest

from serving_conformance.checks.static import Failure, control_problems
from serving_conformance.manifests.faults import load_faults, materialize
from serving_conformance.manifests.load import load_manifests

REPO = Path(__file__).resolve().parent.parent
PLATFORM_REPO = REPO / "fixtures" / "platform-repo"
FAULTS = load_faults(REPO / "fixtures" / "platform-repo-faults")
SUITE = REPO / "conformance"


def static(pytester: pytest.Pytester, manifests: Path, *options: str):
    return pytester.inline_run(str(SUITE), "-m", "static", "--manifests-dir", str(manifests), "-p", "no:cacheprovider",
                               *options)


def test_the_clean_repository_passes_with_nothing_skipped(pytester):
    passed, skipped, failed = static(pytester, PLATFORM_REPO).listoutcomes()
    assert not failed, [(r.nodeid, str(r.longrepr)[:400]) for r in failed]
    assert not skipped, [(r.nodeid, r.longrepr) for r in skipped]
    assert len(passed) > 100


def test_what_is_not_followed_is_listed_with_its_reason():
    manifests = load_manifests(PLATFORM_REPO)
    reasons = {manifests.relative(p.path): p.message for p in manifests.not_followed}
    assert "not fetched" in reasons["platform/gateway-api/kustomization.yaml"]
    assert "Helm chart" in reasons["charts/inference-epp"]
    assert any("Argo CD Application" in message for message in reasons.values())
    assert manifests.pins["gateway-api"] == ("1.5.0", "standard")
    # Rendered as kustomize renders it: the overlay's patch and the base's namespace are applied.
    qwen_oci = next(r for r in manifests.resources if r.kind == "InferenceService" and r.name == "qwen-oci")
    assert qwen_oci.namespace == "kserve" and qwen_oci.via is not None
    assert qwen_oci.spec["predictor"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    # A patch file is never read as an object of its own.
    assert not any(r.name == "gpu-predictor" for r in manifests.resources)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_fault_fails_exactly_its_rule(pytester, tmp_path, fault):
    variant = materialize(fault, PLATFORM_REPO, tmp_path / "repo")
    reprec = static(pytester, variant, *fault.options)
    failures = [
        Failure(dict(r.user_properties)["sc.behaviour"], r.nodeid.rsplit("[", 1)[-1].rstrip("]"), str(r.longrepr))
        for r in reprec.getfailures()
    ]
    problems = control_problems(fault, failures)
    assert not problems, "\n".join(problems)
    assert not reprec.listoutcomes()[1], "skipped"


def test_without_its_options_file_the_two_names_of_its_model_fail(pytester, tmp_path):
    """The repository serves the model as qwen2.5-0.5b (CPU) and qwen2.5-0.5b-instruct (GPU, raw
    control); serving-conformance.yaml says which path serves which. Without it, one run-wide
    name fails the paths that serve the other."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(PLATFORM_REPO, copy)
    (copy / "serving-conformance.yaml").unlink()
    reprec = static(pytester, copy, "-k", "engine_identical")
    failed = {r.nodeid.rsplit("[", 1)[-1].rstrip("]"): str(r.longrepr) for r in reprec.getfailures()}
    assert set(failed) == {"kserve/kserve/qwen-oci", "kserve/kserve/qwen-oci-next", "deployment/raw-vllm/raw-vllm"}
    assert all("serves model name(s) ['qwen2.5-0.5b-instruct']" in text for text in failed.values())
    assert all("(--served-model-name)" in text for text in failed.values())


def test_a_vllm_workload_that_left_the_designs_paths_is_a_notice_saying_why():
    """The coding models are other models: each is said to be judged by the generic rules only."""
    from serving_conformance.manifests.design import outside_design

    from .conftest import base_settings

    notices = outside_design(load_manifests(PLATFORM_REPO), base_settings().expect)
    assert len(notices) == 3 and all("not one of the design's paths" in n for n in notices)
    assert any("starcoder2" in n for n in notices)
