"""The OpenAI-API checks, the same for a local vLLM, a predictor Service and a Gateway.

Each check takes an `Endpoint` (base URL, optional Host header and API key) and fails with what
was observed. The engine version is read from `system_fingerprint`, which vLLM (0.21 and later)
formats as `vllm-<version>[-tpN/ppN/dpN[/ep]]-<8 hex config hash>`.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from serving_conformance.base.limits import MAX_HTTP_RESPONSE_BYTES

_FINGERPRINT = re.compile(
    r"^vllm-(?P<version>\d+\.\d+\.\d+(?:\.post\d+|rc\d+|\.dev\d+[^-]*)?(?:\+[0-9A-Za-z.]+)?)"
    r"(?:-(?P<parallel>tp\d+/pp\d+(?:/dp\d+)?(?:/ep)?))?"
    r"-(?P<hash>[0-9a-f]{8})$"
)
SNIPPET = 600


class CheckFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    host: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a traceback or JUnit
    timeout: float = 60.0

    def describe(self) -> str:
        via = f" (Host: {self.host})" if self.host else ""
        return f"{self.base_url}{via}"

    def with_key(self, api_key: str | None) -> Endpoint:
        return replace(self, api_key=api_key)

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.host:
            headers["Host"] = self.host
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            return send(client, self, method, path, body)


def send(client: httpx.Client, endpoint: Endpoint, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
    """One request, bounded as a whole: its answer must arrive within the endpoint's timeout and
    hold at most MAX_HTTP_RESPONSE_BYTES (httpx's own timeouts bound each read, not the total, so a
    server trickling bytes would hold a test forever)."""
    what = f"{method} {path} at {endpoint.describe()}"
    deadline = time.monotonic() + endpoint.timeout
    try:
        request = client.build_request(method, endpoint.base_url.rstrip("/") + path, headers=endpoint.headers(), json=body)
        response = client.send(request, stream=True)
        try:
            content = bytearray()
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > MAX_HTTP_RESPONSE_BYTES:
                    raise CheckFailed(f"{what}: the answer is larger than {MAX_HTTP_RESPONSE_BYTES:,} bytes")
                if time.monotonic() > deadline:
                    raise CheckFailed(f"{what}: the answer took longer than {endpoint.timeout:.0f}s")
        finally:
            response.close()
    except httpx.HTTPError as exc:
        raise CheckFailed(f"{what} failed: {exc!r}") from exc
    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]  # decoded above
    return httpx.Response(response.status_code, headers=headers, content=bytes(content), request=request)


@dataclass(frozen=True)
class Fingerprint:
    raw: str
    version: str
    parallel: str | None
    config_hash: str


def parse_fingerprint(value: object) -> Fingerprint:
    if value is None:
        raise CheckFailed(
            "system_fingerprint is null: vLLM before 0.21 leaves it empty, and --fingerprint-mode none "
            "disables it, so the engine version cannot be read from the response"
        )
    match = _FINGERPRINT.match(str(value))
    if not match:
        raise CheckFailed(
            f"system_fingerprint {value!r} is not vLLM's vllm-<version>[-tpN/ppN...]-<hash> form "
            "(a custom --fingerprint-mode, or not vLLM): the engine version cannot be read from it"
        )
    return Fingerprint(str(value), match["version"], match["parallel"], match["hash"])


def wait_until_routed(endpoint: Endpoint, timeout: float, path: str = "/v1/models") -> float:
    """Seconds until the gateway routes `path` to a backend (any answer but 404/502/503 of its own).

    A route shows Accepted in its status before the gateway's data plane serves it; an HTTP answer
    is the only thing to wait on, so this polls, briefly, with a deadline.
    """
    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            response = endpoint.request("GET", path)
            if response.status_code not in (404, 502, 503):
                return time.monotonic() - started
            last = f"HTTP {response.status_code} {response.text[:200]!r}"
        except CheckFailed as exc:
            last = str(exc)
        if time.monotonic() - started > timeout:
            raise CheckFailed(f"{endpoint.describe()} did not route {path} within {timeout:.0f}s; last: {last}")
        time.sleep(0.2)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except json.JSONDecodeError as exc:
        raise CheckFailed(f"{what}: answered {response.status_code} with non-JSON {response.text[:SNIPPET]!r}") from exc
    if not isinstance(data, dict):
        raise CheckFailed(f"{what}: answered {response.status_code} with {data!r}")
    return data


def _expect_status(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise CheckFailed(f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:SNIPPET]!r}")


def list_models(endpoint: Endpoint) -> list[dict[str, Any]]:
    what = f"GET /v1/models at {endpoint.describe()}"
    response = endpoint.request("GET", "/v1/models")
    _expect_status(response, 200, what)
    return list(_json(response, what).get("data") or [])


def assert_serves_model(endpoint: Endpoint, name: str) -> dict[str, Any]:
    models = list_models(endpoint)
    for model in models:
        if model.get("id") == name:
            return model
    served = [m.get("id") for m in models]
    raise CheckFailed(
        f"GET /v1/models at {endpoint.describe()} lists {served}, not {name!r}: clients asking for "
        f"{name!r} get 404 (check --served-model-name)"
    )


def chat(endpoint: Endpoint, model: str, max_tokens: int = 16, prompt: str = "Say hello.") -> dict[str, Any]:
    what = f"POST /v1/chat/completions at {endpoint.describe()}"
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    response = endpoint.request("POST", "/v1/chat/completions", body)
    _expect_status(response, 200, what)
    data = _json(response, what)
    if not data.get("choices"):
        raise CheckFailed(f"{what}: 200 without choices: {str(data)[:SNIPPET]}")
    usage = data.get("usage") or {}
    if not usage.get("completion_tokens"):
        raise CheckFailed(f"{what}: 200 without usage.completion_tokens: {str(data)[:SNIPPET]}")
    return data


def assert_engine_version(response: dict[str, Any], expected: str, where: str) -> Fingerprint:
    fingerprint = parse_fingerprint(response.get("system_fingerprint"))
    if fingerprint.version != expected:
        raise CheckFailed(
            f"{where} is served by vLLM {fingerprint.version} (system_fingerprint {fingerprint.raw!r}), "
            f"not the expected {expected}: the path does not run the engine the design names"
        )
    return fingerprint


def stream_fingerprints(endpoint: Endpoint, model: str, max_tokens: int = 8) -> list[object]:
    """The system_fingerprint of each chunk of a streamed chat completion, in order."""
    what = f"streamed POST /v1/chat/completions at {endpoint.describe()}"
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Count to three."}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    response = endpoint.request("POST", "/v1/chat/completions", body)  # the whole stream, bounded
    _expect_status(response, 200, what)
    fingerprints: list[object] = []
    for line in response.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        try:
            fingerprints.append(json.loads(line[len("data: "):]).get("system_fingerprint"))
        except (json.JSONDecodeError, AttributeError) as exc:
            raise CheckFailed(f"{what}: a chunk is not a JSON object: {line[:SNIPPET]!r}") from exc
    if not fingerprints:
        raise CheckFailed(f"{what}: no chunks")
    return fingerprints


# A gateway may answer 502/503/504 now and then (an idle upstream connection closed under it):
# such a request reached no model, so it is sent again, up to this share of the samples; more
# (a dead backend, a broken route) fails the count.
TRANSIENT_STATUSES = (502, 503, 504)
TRANSIENT_SHARE = 0.005


def count_fingerprints(endpoint: Endpoint, model: str, samples: int, workers: int = 4,
                       log: Callable[[str], None] | None = None) -> Counter[str]:
    """The system_fingerprint of `samples` one-token chat completions, counted (kept-alive
    connections, a few requests in flight: a few thousand answers take seconds, not minutes)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    what = f"POST /v1/chat/completions at {endpoint.describe()}"
    allowed = int(samples * TRANSIENT_SHARE)
    retried: list[int] = []
    lock = threading.Lock()

    def one(client: httpx.Client) -> str:
        response = send(client, endpoint, "POST", "/v1/chat/completions", body)
        while response.status_code in TRANSIENT_STATUSES:
            with lock:
                if len(retried) >= allowed:
                    raise CheckFailed(f"{what}: more than {allowed} of {samples} answers were HTTP 502/503/504 "
                                      f"(the last: {response.status_code} {response.text[:SNIPPET]!r})")
                retried.append(response.status_code)
            response = send(client, endpoint, "POST", "/v1/chat/completions", body)
        _expect_status(response, 200, what)
        return str(_json(response, what).get("system_fingerprint"))

    counts: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(timeout=endpoint.timeout, trust_env=False, limits=limits) as client:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for fingerprint in pool.map(lambda _: one(client), range(samples)):
                counts[fingerprint] += 1
    if retried and log is not None:
        log(f"{what}: {len(retried)} of {samples} answers were HTTP {sorted(set(retried))} and sent again")
    return counts


def assert_unknown_model_is_404(endpoint: Endpoint, served: str) -> None:
    missing = f"{served}-does-not-exist"
    response = endpoint.request(
        "POST", "/v1/chat/completions", {"model": missing, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    )
    _expect_status(response, 404, f"chat completion for unknown model {missing!r} at {endpoint.describe()}")


def assert_api_key_enforced(endpoint: Endpoint, api_key: str) -> None:
    """No key and a wrong key answer 401 on /v1/*; the right key answers 200."""
    for label, key in (("without a key", None), ("with a wrong key", "wrong-" + secrets.token_hex(8))):
        response = endpoint.with_key(key).request("GET", "/v1/models")
        if response.status_code != 401:
            raise CheckFailed(
                f"GET /v1/models {label} at {endpoint.describe()} answered {response.status_code}, not 401: "
                "the API key is not enforced (is VLLM_API_KEY set from the Secret?)"
            )
    response = endpoint.with_key(api_key).request("GET", "/v1/models")
    _expect_status(response, 200, f"GET /v1/models with the right key at {endpoint.describe()}")
