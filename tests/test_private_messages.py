"""Credentials a manifest quotes never reach stdout, the report or JUnit: one redactor, where
every failure message is rendered (the test report all of them read), and over the report."""

from __future__ import annotations

import shutil

from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE

SECRETS = ("hunter2", "s3cr3t-token", "pw-in-uri", "apikey-value")
ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: leaky}
spec:
  predictor:
    minReplicas: "https://robot:pw-in-uri@example.com/"
    containers:
      - name: kserve-container
        image: vllm/vllm-openai:v0.23.0
        args: ["--model=https://user:hunter2@models.example.com/qwen", "--served-model-name=qwen2.5-0.5b",
               "--api-key=apikey-value"]
        env:
          - {name: STORAGE_URI, value: "oci://robot:s3cr3t-token@registry.example.com/models/qwen:latest"}
"""


def test_no_credential_reaches_stdout_the_report_or_junit(pytester, tmp_path):
    manifests = tmp_path / "m"
    shutil.copytree(DEFAULT_MANIFESTS, manifests)
    (manifests / "serving" / "kserve" / "leaky.yaml").write_text(ISVC)
    result = pytester.runpytest_subprocess(str(SUITE), "-m", "static", "-p", "no:cacheprovider", "-rA",
                                           f"--manifests-dir={manifests}", "--conformance-report=r.yaml",
                                           "--junitxml=j.xml", "--tb=long")
    assert result.ret == 1
    out = result.stdout.str() + result.stderr.str()
    report = (pytester.path / "r.yaml").read_text()
    junit = (pytester.path / "j.xml").read_text()
    # The failures are there, quoting what they judge: only the credentials are gone.
    assert "is not pinned by digest" in out and "<redacted>" in out and "<redacted>" in report
    for secret in SECRETS:
        assert secret not in out, secret
        assert secret not in report, secret
        assert secret not in junit, secret
