"""Reaching the Gateway when its status has no address: on kind without a load-balancer provider,
Envoy Gateway's LoadBalancer Service never gets one, so the suite port-forwards to that Service
(contract test of the exact kubectl command); elsewhere it fails saying why the Gateway has none."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from serving_conformance.base.features import Feature
from serving_conformance.cluster.base import Cluster
from serving_conformance.cluster.kube import WaitHopeless, WaitTimeout
from serving_conformance.platform.endpoints import (
    ENVOY_OWNER_NAME,
    ENVOY_OWNER_NAMESPACE,
    Endpoints,
    gateway_diagnosis,
    programmed_without_address,
)

from .conftest import base_settings

FAKE_KUBECTL = """#!{python}
import json, os, sys, time
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("Forwarding from 127.0.0.1:43210 -> 10080", flush=True)
time.sleep(30)
"""

PENDING_LB = {
    "metadata": {"name": "kserve-ingress-gateway", "namespace": "kserve"},
    "spec": {"gatewayClassName": "envoy", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    "status": {"conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
         "message": "No addresses have been assigned to the Gateway"},
    ]},
}


class GatewayWithoutAddress:
    def __init__(self, gateway: dict, services: list[dict]) -> None:
        self.gateway, self.services, self.selectors = gateway, services, []

    def wait_for(self, ref, condition, timeout, what, progress=None, doomed=None):
        assert not condition(self.gateway)
        if doomed is not None and doomed(self.gateway):
            self.ended = "hopeless"
            raise WaitHopeless(f"stopped waiting for {what} ({ref}): {doomed(self.gateway)}")
        self.ended = "timeout"
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} ({ref})")

    def get(self, ref):
        return self.gateway

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        self.selectors.append(label_selector)
        return self.services


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "kubectl.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def endpoints(kube, tmp_path: Path, simulated: bool) -> Endpoints:
    cluster = Cluster(provider="local" if simulated else "kind", name="c", kubeconfig=tmp_path / "kubeconfig",
                      context=None if simulated else "kind-serving-conformance", created=True,
                      features={Feature.POD_NETWORK} if simulated else set())
    return Endpoints(kube, cluster, base_settings(), None)


def test_on_kind_a_gateway_without_address_is_reached_through_its_envoy_service(fake_kubectl, tmp_path):
    service = {"metadata": {"name": "envoy-kserve-kserve-ingress-gateway-1a2b", "namespace": "envoy-gateway-system"}}
    kube = GatewayWithoutAddress(PENDING_LB, [service])
    reach = endpoints(kube, tmp_path, simulated=False)
    try:
        assert reach._gateway_base() == "http://127.0.0.1:43210"
    finally:
        reach.close()
    assert kube.selectors == [f"{ENVOY_OWNER_NAME}=kserve-ingress-gateway,{ENVOY_OWNER_NAMESPACE}=kserve"]
    sent = [json.loads(line) for line in fake_kubectl.read_text().splitlines()]
    assert sent == [[
        "--kubeconfig", str(tmp_path / "kubeconfig"), "--context", "kind-serving-conformance",
        "-n", "envoy-gateway-system", "port-forward", "svc/envoy-kserve-kserve-ingress-gateway-1a2b", ":80",
        "--address", "127.0.0.1",
    ]]


def test_without_a_service_to_forward_to_the_failure_says_why_there_is_no_address(fake_kubectl, tmp_path):
    reach = endpoints(GatewayWithoutAddress(PENDING_LB, []), tmp_path, simulated=False)
    with pytest.raises(AssertionError) as failure:
        reach._gateway_base()
    message = str(failure.value)
    assert "AddressNotAssigned" in message and "cloud-provider-kind" in message
    assert not fake_kubectl.exists(), "nothing to port-forward to, yet kubectl was run"


def test_a_gateway_no_controller_accepted_is_named_as_such():
    unaccepted = {"spec": {"gatewayClassName": "envoy"}, "status": {"conditions": [
        {"type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"},
    ]}}
    assert gateway_diagnosis(unaccepted).startswith("no gateway controller has accepted it")
    assert "'envoy'" in gateway_diagnosis(unaccepted)
    refused = {"spec": {}, "status": {"conditions": [
        {"type": "Accepted", "status": "False", "reason": "UnsupportedAddress", "message": "bad address"},
    ]}}
    assert gateway_diagnosis(refused) == "its controller did not accept it (UnsupportedAddress: bad address)"


def programmed(seconds_ago: float, observed: int = 2, generation: int = 2, addresses: list | None = None) -> dict:
    since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    return {"metadata": {"name": "kserve-ingress-gateway", "namespace": "kserve", "generation": generation},
            "spec": {"gatewayClassName": "agentgateway", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
            "status": {"addresses": addresses or [], "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted"},
                {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": observed,
                 "lastTransitionTime": since}]}}


def test_a_gateway_programmed_a_while_ago_without_an_address_is_not_waited_for():
    """Traefik programs the Gateway and reports no address: the wait for one ends at once (it
    waited its whole 120 s before), and the suite reaches the Gateway through its Service."""
    assert "gave it no address" in programmed_without_address(programmed(30))
    # Still worth waiting: just programmed (the address may follow), an older generation
    # programmed, an address already there, or a load balancer still pending.
    assert programmed_without_address(programmed(1)) is None
    assert programmed_without_address(programmed(30, observed=1)) is None
    assert programmed_without_address(programmed(30, addresses=[{"type": "IPAddress", "value": "198.19.32.9"}])) is None
    assert programmed_without_address(PENDING_LB) is None


def test_a_programmed_gateway_without_address_is_reached_through_its_service_at_once(fake_kubectl, tmp_path):
    service = {"metadata": {"name": "traefik", "namespace": "serving-conformance-gateway"}}
    kube = GatewayWithoutAddress(programmed(30), [service])
    reach = endpoints(kube, tmp_path, simulated=False)
    try:
        assert reach._gateway_base() == "http://127.0.0.1:43210"
    finally:
        reach.close()
    assert kube.ended == "hopeless", "waited for an address that will not come"
