"""Counting answers through a gateway: a transient 502/503/504 (a request that reached no model) is
sent again, up to a small share of the samples; more fails the count with its own message."""

import http.server
import json
import threading

import pytest

from serving_conformance.openai_api import CheckFailed, Endpoint, count_fingerprints


def serve(failures: int):
    """A local server answering `failures` 502s first, then fingerprints."""
    state = {"left": failures}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                fail = state["left"] > 0
                state["left"] -= fail
            status, body = (502, b"Bad Gateway") if fail else (200, json.dumps({"system_fingerprint": "fp"}).encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_few_bad_gateways_are_sent_again_and_said_so():
    server = serve(failures=2)
    lines = []
    try:
        counts = count_fingerprints(Endpoint(f"http://127.0.0.1:{server.server_port}"), "m", 400, log=lines.append)
    finally:
        server.shutdown()
    assert counts == {"fp": 400}
    assert lines and "2 of 400 answers were HTTP [502] and sent again" in lines[0]


def test_more_bad_gateways_than_the_allowed_share_fail_the_count():
    server = serve(failures=50)
    try:
        with pytest.raises(CheckFailed, match=r"more than 2 of 400 answers were HTTP 502/503/504"):
            count_fingerprints(Endpoint(f"http://127.0.0.1:{server.server_port}"), "m", 400)
    finally:
        server.shutdown()
