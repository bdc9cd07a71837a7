"""A workload that never comes up fails with why: the pod's state and the engine's own last words,
so a CI log is enough to see what happened."""

from __future__ import annotations

import pytest

from serving_conformance.cluster.conditions import describe_pod
from serving_conformance.cluster.kube import WaitTimeout
from serving_conformance.engine.server import ServerStartError
from serving_conformance.platform.deploy import Deployer
from serving_conformance.providers.local.agent import failure_reason


def test_an_unready_pod_is_described_by_what_keeps_it_from_ready():
    pod = {
        "metadata": {"name": "raw-vllm-6d5465b57-cfj89"},
        "spec": {"nodeName": "sim-gpu-0"},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "EngineStart",
                 "message": "vLLM server gave no /health 200 within 300 s; last log line: compiling"},
            ],
            "containerStatuses": [
                {"name": "vllm", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}},
            ],
        },
    }
    line = describe_pod(pod)
    assert line.startswith("pod raw-vllm-6d5465b57-cfj89: Running; on sim-gpu-0")
    assert "Ready=False (EngineStart: vLLM server gave no /health 200 within 300 s; last log line: compiling)" in line
    assert "container vllm waiting: CrashLoopBackOff back-off" in line
    assert "PodScheduled" not in line


def test_a_pending_pod_says_it_is_not_scheduled():
    pod = {"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes: Insufficient nvidia.com/gpu"},
    ]}}
    assert describe_pod(pod) == (
        "pod p: Pending; not scheduled; PodScheduled=False (Unschedulable: 0/2 nodes: Insufficient nvidia.com/gpu)"
    )


def test_the_agent_reports_the_engine_failure_without_the_command_line():
    what = "vLLM server exited with code 1 before /health answered"
    exc = ServerStartError(
        f"{what}; command: ['python', '-m', 'x', '--api-key=s3cret']; log: /tmp/x.log\n--- last 60 lines ---\n...",
        summary=what,
    )
    reason = failure_reason(exc, "INFO starting\n\nValueError: max_model_len 4096 exceeds the model's 2048\n\n")
    assert reason == (
        "vLLM server exited with code 1 before /health answered; "
        "last log line: ValueError: max_model_len 4096 exceeds the model's 2048"
    )
    assert "s3cret" not in reason
    assert failure_reason(exc, "") == "vLLM server exited with code 1 before /health answered"


class OneDeployment:
    """Stands in for the API server in front of one Deployment that never becomes available."""

    def __init__(self) -> None:
        self.obj = {"metadata": {"name": "raw-vllm", "uid": "u1", "generation": 1},
                    "spec": {"selector": {"matchLabels": {"app": "raw-vllm"}}}, "status": {}}
        self.waits = 0

    def get(self, ref):
        return self.obj

    def list(self, *args, **kwargs):
        return []

    def wait_for(self, ref, condition, timeout, what, progress=None, doomed=None):
        self.waits += 1
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} ({ref})")


def deployer_for(kube) -> Deployer:
    return Deployer(kube=kube, namespace="sc-main-1", manifests=None, kserve_namespace="kserve", run_id="1",
                    progress=lambda message: None)


def test_a_wait_that_timed_out_is_not_repeated_while_the_object_is_unchanged():
    kube = OneDeployment()
    deployer = deployer_for(kube)
    with pytest.raises(WaitTimeout) as first:
        deployer.available_deployment("raw-vllm", 600)
    assert "pods (app=raw-vllm): none" in str(first.value)
    with pytest.raises(WaitTimeout) as second:
        deployer.available_deployment("raw-vllm", 600)
    assert kube.waits == 1, "the second test waited again on the same broken Deployment"
    assert str(first.value) in str(second.value) and "not waited on again" in str(second.value)
    # Changed (a new generation): waited on again.
    kube.obj["metadata"]["generation"] = 2
    with pytest.raises(WaitTimeout):
        deployer.available_deployment("raw-vllm", 600)
    assert kube.waits == 2
