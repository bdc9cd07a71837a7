"""A server that accepts connections and never answers holds nothing for long: Kubernetes client
calls, teardown and HTTP checks all end within their named timeouts.

The stand-in is a thread that accepts TCP connections and keeps them open without a byte, the way
a wedged API server or a half-dead load balancer behaves (the TLS handshake never completes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from serving_conformance.base.data import SUITE
from serving_conformance.base.timeouts import Timeouts
from serving_conformance.cluster.base import Cluster
from serving_conformance.cluster.kube import WATCH_READ_MARGIN_S, Kube, Ref, _bound_requests
from serving_conformance.manifests.load import ManifestSet
from serving_conformance.openai_api import CheckFailed, Endpoint, stream_fingerprints
from serving_conformance.platform.session import ClusterSession

from .conftest import base_settings

CLUSTER_TEST = "cluster/test_isvc_ready.py"


class SilentServer:
    """Accepts every connection, holds it, never writes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ci",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_every_kube_call_ends_within_the_request_timeout(silent, tmp_path, scheme):
    kube = Kube(kubeconfig(tmp_path, f"{scheme}://127.0.0.1:{silent.port}"), request_timeout=1)
    calls = {
        "list": lambda: kube.list("v1", "Namespace"),
        "get": lambda: kube.get(Ref("v1", "Namespace", "x")),
        "delete": lambda: kube.delete(Ref("v1", "Namespace", "x")),
        "wait": lambda: kube.wait_for(Ref("v1", "Namespace", "x"), lambda o: o is None, 30, "deletion"),
        "apply": lambda: kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - urllib3's, whichever the client wraps it in
            call()
        assert time.monotonic() - started < 5, name


def test_a_watch_may_be_silent_for_its_own_length_plus_a_margin():
    seen: dict[str, object] = {}

    class Rest:
        def request(self, method, url, *args, _request_timeout=None, **kwargs):
            seen[url] = _request_timeout

    client = type("Client", (), {"rest_client": Rest()})()
    _bound_requests(client, 7)
    client.rest_client.request("GET", "https://api/api/v1/namespaces?watch=true&timeoutSeconds=60")
    client.rest_client.request("GET", "https://api/api/v1/namespaces?labelSelector=a")
    client.rest_client.request("GET", "https://api/version", _request_timeout=3)
    assert seen == {
        "https://api/api/v1/namespaces?watch=true&timeoutSeconds=60": (7, 60 + WATCH_READ_MARGIN_S),
        "https://api/api/v1/namespaces?labelSelector=a": (7, 7),
        "https://api/version": 3,
    }


def test_teardown_against_a_silent_api_server_ends_within_its_grace(silent, tmp_path):
    timeouts = Timeouts().overridden(["api_request=2", "api_reachable=2", "teardown=20"])
    settings = base_settings(cluster="existing", timeouts=timeouts)
    run_dir = tmp_path / "serving-conformance-silent01"
    run_dir.mkdir()
    cluster = Cluster(provider="existing", name="ci", kubeconfig=kubeconfig(tmp_path, f"https://127.0.0.1:{silent.port}"),
                      context="ci", created=False)
    (run_dir / "cluster.json").write_text(cluster.to_json())
    said: list[str] = []
    started = time.monotonic()
    local_left = not ClusterSession(settings, ManifestSet(roots=()), run_dir, "silent01", said.append).teardown()
    elapsed = time.monotonic() - started
    assert not local_left  # nothing runs here: the run directory may go, the namespaces are said
    assert elapsed < 10, (elapsed, said)
    assert any("could not remove this run's objects" in line and "serving-conformance.dev/run=silent01" in line
               for line in said), said
    assert any(line.startswith("teardown took") and "incomplete" in line for line in said), said


def test_the_plugin_against_a_silent_api_server_gives_one_error_in_bounded_time(pytester, silent, tmp_path,
                                                                               monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))  # where the subprocess makes its run directory
    started = time.monotonic()
    result = pytester.runpytest_subprocess(  # a subprocess: progress lines go past pytest's capture
        str(SUITE / CLUSTER_TEST), "-m", "cpu", "--cluster", "existing", "-p", "no:cacheprovider",
        "--kubeconfig", str(kubeconfig(tmp_path, f"https://127.0.0.1:{silent.port}")), "--allow-context", "ci",
        "--timeout", "api_reachable=2", "--timeout", "api_request=2", "--timeout", "teardown=20",
    )
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0 and "INTERNALERROR" not in output
    assert output.count("cannot provide the cluster") == 1, output
    assert "teardown took" in output, output
    assert elapsed < 60, elapsed
    # Nothing of the run is left on this machine: its run directory went, though teardown failed.
    assert list(private_tmp.glob("serving-conformance-*")) == []


def test_http_checks_against_a_silent_server_end_within_their_timeout(silent):
    endpoint = Endpoint(f"http://127.0.0.1:{silent.port}", timeout=1)
    for call in (lambda: endpoint.request("GET", "/v1/models"), lambda: stream_fingerprints(endpoint, "m")):
        started = time.monotonic()
        with pytest.raises(CheckFailed):
            call()
        assert time.monotonic() - started < 5


def test_a_trickling_or_huge_answer_is_cut(monkeypatch):
    from serving_conformance import openai_api

    def trickle(request: httpx.Request) -> httpx.Response:
        def body():
            while True:
                time.sleep(0.2)
                yield b"x"
        return httpx.Response(200, content=body())

    endpoint = Endpoint("http://example.invalid", timeout=1)
    transport = httpx.MockTransport(trickle)
    with httpx.Client(transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(CheckFailed, match="longer than 1s"):
            openai_api.send(client, endpoint, "GET", "/v1/models", None)
        assert time.monotonic() - started < 3
    monkeypatch.setattr(openai_api, "MAX_HTTP_RESPONSE_BYTES", 1000)
    huge = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 5000))
    with httpx.Client(transport=huge) as client, pytest.raises(CheckFailed, match="larger than 1,000 bytes"):
        openai_api.send(client, endpoint, "GET", "/v1/models", None)
    fine = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": [{"id": "m"}]}))
    with httpx.Client(transport=fine) as client:
        assert openai_api.send(client, endpoint, "GET", "/v1/models", None).json() == {"data": [{"id": "m"}]}
