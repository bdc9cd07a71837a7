"""Secrets never reach artifacts, kept logs, reprs, tracebacks or JUnit."""

from __future__ import annotations

import json
import shutil

import pytest

from serving_conformance import diagnostics
from serving_conformance.base.redact import LAST_APPLIED, REDACTED, Secret, copy_redacted, redact, redact_text
from serving_conformance.openai_api import Endpoint

KEY = "sk-d0n0tl34k"

TEXTS = {
    # text: what must survive next to the secret
    f"vllm serve /mnt/models --api-key={KEY} --port 8000": "--port 8000",
    f"vllm serve /mnt/models --api-key {KEY} --max-tokens 16 --tokenizer t": "--max-tokens 16 --tokenizer t",
    f"--hf-token={KEY}": "--hf-token=",
    f"Authorization: Bearer {KEY}": "Authorization: Bearer ",
    f"curl -H 'authorization: bearer {KEY}' http://x": "http://x",
    f"Basic {KEY}": "Basic ",
    f"pulling https://robot:{KEY}@registry.example/org/model": "@registry.example/org/model",
    f"git clone https://{KEY}@github.com/org/repo": "@github.com/org/repo",
    f"postgres://user:{KEY}@db:5432/x": "@db:5432/x",
    f"VLLM_API_KEY={KEY} HF_TOKEN={KEY} MAX_TOKENS=16": "MAX_TOKENS=16",
    f"INFO non-default args: {{'model': '/m', 'api_key': ['{KEY}'], 'port': 8000}}": "'port': 8000",
    f'{{"token": "{KEY}", "max_tokens": 5}}': '"max_tokens": 5',
    f"password: {KEY}\nname: x": "name: x",
    f"secret: {KEY}\nname: x": "name: x",
    f"ClientSecret: {KEY} and more": " and more",
    f"SECRET: {KEY} and more": " and more",
}
KEPT = ["oci://registry.example/model@sha256:" + "a" * 64, "--served-model-name qwen --port 8000", "secretName: vllm",
        "external-secrets.io/v1 ExternalSecret: no schema known here", "Secret: hf-token lacks key api-key",
        "bitnami.com/v1alpha1 SealedSecret: no schema known here"]


@pytest.mark.parametrize("text", sorted(TEXTS))
def test_secrets_in_text_are_redacted(text):
    redacted = redact_text(text)
    assert KEY not in redacted and REDACTED in redacted
    assert TEXTS[text] in redacted


@pytest.mark.parametrize("text", KEPT)
def test_text_without_secrets_is_left_alone(text):
    assert redact_text(text) == text


def pod_with_secrets() -> dict:
    container = {
        "name": "kserve-container",
        "command": ["sh", "-c", f"vllm serve /mnt/models --api-key {KEY}"],
        "args": ["--port", "8000", "--api-key", KEY, f"--hf-token={KEY}"],
        "env": [{"name": "VLLM_API_KEY", "value": KEY}, {"name": "STORAGE_URI", "value": f"s3://id:{KEY}@bucket/m"},
                {"name": "PORT", "value": "8000"}],
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "n", "managedFields": [{"manager": "x"}],
                     "annotations": {LAST_APPLIED: json.dumps({"spec": {"containers": [container]}}), "team": "a"}},
        "spec": {"containers": [container]},
    }


def test_objects_are_redacted_everywhere_a_secret_hides():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"key": "c2stc2VjcmV0"},
              "stringData": {"other": KEY}}
    redacted = redact([pod_with_secrets(), secret])
    text = json.dumps(redacted)
    assert KEY not in text and "c2stc2VjcmV0" not in text
    pod = redacted[0]
    container = pod["spec"]["containers"][0]
    assert container["args"][:4] == ["--port", "8000", "--api-key", REDACTED]
    assert {"name": "PORT", "value": "8000"} in container["env"]
    assert pod["metadata"]["annotations"] == {LAST_APPLIED: REDACTED, "team": "a"}
    assert "managedFields" not in pod["metadata"]
    assert redacted[1]["data"] == {"key": REDACTED} and redacted[1]["stringData"] == {"other": REDACTED}


class FakeKube:
    """What diagnostics.collect reads: events, objects, pod logs (through CoreV1Api)."""

    api_client = None

    def list(self, api_version: str, kind: str, namespace: str | None = None, **_: object) -> list[dict]:
        if kind == "Event":
            return [{"type": "Warning", "reason": "Failed", "lastTimestamp": "t", "involvedObject": {"kind": "Pod", "name": "p"},
                     "message": f"Error: container started with --api-key={KEY}; Authorization: Bearer {KEY}"}]
        return [pod_with_secrets()] if kind == "Pod" else []


class FakeCore:
    def __init__(self, api_client: object) -> None:
        pass

    def read_namespaced_pod_log(self, name: str, namespace: str, **_: object) -> str:
        return f"INFO non-default args: {{'api_key': ['{KEY}']}}\nINFO curl -H 'Authorization: Bearer {KEY}'\n"


def test_artifacts_events_and_pod_logs_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setattr(diagnostics.k8s_client, "CoreV1Api", FakeCore)
    destination = diagnostics.collect(FakeKube(), ["n"], tmp_path / "artifacts", extra={"note": f"token: {KEY}"})
    written = [p for p in destination.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"events.txt", "Pod.yaml", "p.kserve-container.log", "note"}
    for path in written:
        assert KEY not in path.read_text(), path
    assert "Failed" in (destination / "n" / "events.txt").read_text()


def test_kept_testbed_logs_are_redacted(tmp_path):
    logs = tmp_path / "logs"
    (logs / "pods").mkdir(parents=True)
    (logs / "pods" / "ns_p.kserve-container.log").write_text(f"INFO non-default args: {{'api_key': ['{KEY}']}}\n")
    (logs / "node-agent.log").write_text(f"env VLLM_API_KEY={KEY}\n")
    (logs / "binary.bin").write_bytes(b"\xff\x00")
    target = tmp_path / "testbed-logs"
    shutil.copytree(logs, target, copy_function=copy_redacted)
    assert (target / "binary.bin").read_bytes() == b"\xff\x00"
    for path in target.rglob("*.log"):
        assert KEY not in path.read_text() and REDACTED in path.read_text()


def test_reprs_never_carry_the_key():
    from serving_conformance.engine.fleet import LocalServer

    assert KEY not in repr(Endpoint("http://x", api_key=KEY))
    assert KEY not in repr(Endpoint("http://x").with_key(Secret(KEY)))
    assert repr(Secret(KEY)) == repr(REDACTED) and str(Secret(KEY)) == KEY and f"{Secret(KEY)}" == KEY
    server = LocalServer(server=None, secret_values={"VLLM_API_KEY": KEY})
    assert KEY not in repr(server) and KEY not in repr(server.api_key) and server.api_key == KEY


def test_a_failing_check_shows_no_key_with_long_tracebacks_locals_and_junit(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("SC_TEST_KEY", KEY)  # read at run time: the source shown in tracebacks holds no key
    pytester.makepyfile(test_leak="""
        import os
        from serving_conformance.base.redact import Secret
        from serving_conformance.openai_api import Endpoint

        def check(endpoint, api_key):
            assert api_key == "something else", endpoint

        def test_leak():
            api_key = Secret(os.environ["SC_TEST_KEY"])
            endpoint = Endpoint("http://127.0.0.1:1", api_key=api_key)
            check(endpoint, api_key)
    """)
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=long", "--showlocals", f"--junitxml={junit}")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "Endpoint(base_url='http://127.0.0.1:1'" in output and "(the value of a secret is not shown)" in output
    assert KEY not in output and KEY not in junit.read_text()
