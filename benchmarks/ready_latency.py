"""How soon the suite observes an InferenceService turning Ready, against when it turned Ready.

Starts the local testbed (simulated pods, so Ready follows quickly), applies N InferenceServices
one after the other, waits for each with the suite's own watch-based wait, and compares the moment
the wait returned with the Ready condition's lastTransitionTime (which has one-second resolution,
so each sample carries up to 1 s of truncation; the median is what to read).

    python benchmarks/ready_latency.py --runs 10
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import yaml

from serving_conformance.base.progress import progress
from serving_conformance.cluster.kube import Kube, Ref
from serving_conformance.platform.deploy import is_true
from serving_conformance.platform.session import new_run
from serving_conformance.providers.local.provider import LocalProvider

REPO = Path(__file__).resolve().parent.parent


def settings():
    import sys

    sys.path.insert(0, str(REPO))
    from tests.conftest import base_settings

    return replace(base_settings(cluster="local"), local_pods="simulated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    run_dir, _ = new_run()
    run_dir.mkdir(exist_ok=True)
    provider = LocalProvider(settings(), run_dir, progress)
    started = time.monotonic()
    cluster = provider.start()
    print(f"testbed warm start: {time.monotonic() - started:.1f}s")
    try:
        kube = Kube(cluster.kubeconfig, None)
        from serving_conformance.platform.installer import Installer

        Installer(settings(), cluster, run_dir, progress).install()
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        body = yaml.safe_load((REPO / "manifests/serving/kserve/qwen-cpu.yaml").read_text())
        to_ready, lag = [], []
        for index in range(args.runs):
            isvc = copy.deepcopy(body)
            isvc["metadata"]["name"] = f"bench-{index}"
            applied = time.time()
            kube.apply(isvc, namespace="bench")
            obj = kube.wait_for(Ref("serving.kserve.io/v1beta1", "InferenceService", f"bench-{index}", "bench"),
                                lambda o: is_true(o, "Ready"), 120, "Ready")
            observed = time.time()
            flipped = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
            flipped_at = dt.datetime.fromisoformat(flipped.replace("Z", "+00:00")).timestamp()
            to_ready.append(observed - applied)
            lag.append(observed - flipped_at)
        print(f"applied -> Ready observed: median {statistics.median(to_ready):.2f}s (min {min(to_ready):.2f}, max {max(to_ready):.2f})")
        print(f"Ready lastTransitionTime -> observed: median {statistics.median(lag):.2f}s "
              f"(min {min(lag):.2f}, max {max(lag):.2f}; includes up to 1s of timestamp truncation)")
    finally:
        provider.stop(cluster)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
