"""Bad cluster input ends the run with one clear error and a non-zero exit, touching nothing."""

import yaml

CLUSTER_TEST = "conformance/cluster/test_isvc_ready.py"


def kubeconfig(tmp_path, server: str, context: str = "ci") -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def test_an_unreachable_api_server_is_one_clear_error(pytester, repo, tmp_path):
    result = pytester.runpytest(
        str(repo / CLUSTER_TEST), "-m", "cpu", "--cluster", "existing",
        "--kubeconfig", kubeconfig(tmp_path, "https://127.0.0.1:1"), "--allow-context", "ci",
        "--timeout", "api_reachable=5",
    )
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert output.count("cannot provide the cluster") == 1, output
    assert "cannot reach the API server of context 'ci'" in output


def test_a_context_not_allowed_is_refused_before_any_request(pytester, repo, tmp_path):
    result = pytester.runpytest(
        str(repo / CLUSTER_TEST), "-m", "cpu", "--cluster", "existing",
        "--kubeconfig", kubeconfig(tmp_path, "https://127.0.0.1:1", context="prod"),
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*refusing to touch context 'prod'*--allow-context prod*"])
