"""A workload that never comes up fails with why: the pod's state and the engine's own last words,
so a CI log is enough to see what happened."""

from __future__ import annotations

from serving_conformance.cluster.deploy import describe_pod
from serving_conformance.engine.server import ServerStartError
from serving_conformance.testbed.agent import failure_reason


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
    exc = ServerStartError(
        "vLLM server exited with code 1 before /health answered; command: ['python', '-m', 'x', '--api-key=s3cret']; "
        "log: /tmp/x.log\n--- last 60 lines ---\n..."
    )
    reason = failure_reason(exc, "INFO starting\n\nValueError: max_model_len 4096 exceeds the model's 2048\n\n")
    assert reason == (
        "vLLM server exited with code 1 before /health answered; "
        "last log line: ValueError: max_model_len 4096 exceeds the model's 2048"
    )
    assert "s3cret" not in reason
    assert failure_reason(exc, "") == "vLLM server exited with code 1 before /health answered"
