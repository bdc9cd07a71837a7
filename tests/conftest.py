import os
from pathlib import Path

import pytest

from serving_conformance.base.cache import cache_root

pytest_plugins = ["pytester"]

# pytester points HOME at a temporary directory; keep the suite's cache where it is.
os.environ.setdefault("SERVING_CONFORMANCE_CACHE", str(cache_root()))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def base_settings(**changes):
    """Settings as the plugin builds them from default options, with `changes` applied."""
    from dataclasses import replace

    from serving_conformance.base import versions
    from serving_conformance.base.data import DEFAULT_MANIFESTS
    from serving_conformance.base.settings import Expectations, Settings
    from serving_conformance.base.timeouts import Timeouts

    settings = Settings(
        manifests_dir=DEFAULT_MANIFESTS, manifests_dirs=(DEFAULT_MANIFESTS,),
        expect=Expectations(versions.SERVED_MODEL_NAME, versions.VLLM_EXPECTED, versions.KSERVE, versions.KUBERNETES, 1),
        kserve_namespace="kserve", namespace_prefix="sc", timeouts=Timeouts(), report_path=None,
        required_profiles=(), cluster="auto", cluster_name="serving-conformance", kubeconfig=None,
        kube_context=None, allowed_contexts=(), keep_cluster=False, install_platform=False, require_gpu=False,
        artifacts_dir=Path("conformance-artifacts").resolve(), local_engine_version=None, local_pods="vllm", image_map=(), keep_logs=False,
        testbed_istio_crd="installed",
    )
    return replace(settings, **changes)


def pytest_configure(config):
    config.addinivalue_line("markers", "testbed: runs the suite against the local testbed (minutes)")
    config.addinivalue_line("markers", "kind: boots a real kind cluster from the node image built here "
                            "(minutes; root, a container engine)")
