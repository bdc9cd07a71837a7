"""Reaching what the cluster serves: through the Gateway (its status address, with the Host of
the InferenceService's URL), and through a Service (a ready endpoint directly where pod addresses
are reachable, else `kubectl port-forward`)."""

from __future__ import annotations

import collections
import datetime as dt
import re
import subprocess
import threading
from dataclasses import dataclass, field

from serving_conformance.base import proc
from serving_conformance.base.features import Feature
from serving_conformance.base.progress import progress
from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Cluster
from serving_conformance.cluster.kube import Kube, Ref, WaitTimeout
from serving_conformance.cluster.releases import GATEWAY_SERVICE_LABEL
from serving_conformance.manifests.platform_config import KServeConfig
from serving_conformance.openai_api import Endpoint, wait_until_routed

PORT_FORWARD_TAIL = 50


@dataclass
class PortForward:
    """A `kubectl port-forward` child: its address, and its output drained into a short tail (an
    undrained pipe would block it once full)."""

    process: subprocess.Popen[str]
    base_url: str
    output: collections.deque[str]

    @classmethod
    def start(cls, args: list[str], what: str) -> PortForward:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", first)
        if not match:
            proc.terminate_group(process.pid, 2.0, process)
            rest = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"kubectl port-forward to {what} failed: {(first + rest).strip()[-1000:]}")
        output: collections.deque[str] = collections.deque([first.rstrip()], maxlen=PORT_FORWARD_TAIL)

        def drain() -> None:
            for line in process.stdout or ():
                output.append(line.rstrip())

        threading.Thread(target=drain, name=f"port-forward {what}", daemon=True).start()
        return cls(process, f"http://127.0.0.1:{match.group(1)}", output)

    def stop(self) -> None:
        proc.terminate_group(self.process.pid, 2.0, self.process)


# Labels Envoy Gateway puts on the Service it makes for a Gateway.
ENVOY_OWNER_NAME = "gateway.envoyproxy.io/owning-gateway-name"
ENVOY_OWNER_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"
# How long a Gateway may stay programmed with no address before none is expected: an
# implementation may write the condition and the address in two updates.
PROGRAMMED_WITHOUT_ADDRESS_S = 10.0


def programmed_without_address(gateway: dict | None, now: dt.datetime | None = None) -> str | None:
    """Why no address will come: the controller programmed this generation of the Gateway, a while
    ago, and gave it none (Traefik without a status address does; an implementation waiting for a
    load balancer says Programmed=False instead, and is waited for)."""
    if not gateway or (gateway.get("status") or {}).get("addresses"):
        return None
    generation = (gateway.get("metadata") or {}).get("generation")
    for condition in (gateway.get("status") or {}).get("conditions") or []:
        if condition.get("type") != "Programmed" or condition.get("status") != "True":
            continue
        if generation is not None and condition.get("observedGeneration") not in (None, generation):
            return None
        try:
            since = dt.datetime.fromisoformat(str(condition.get("lastTransitionTime")).replace("Z", "+00:00"))
        except ValueError:
            return None
        if ((now or dt.datetime.now(dt.timezone.utc)) - since).total_seconds() >= PROGRAMMED_WITHOUT_ADDRESS_S:
            return f"its controller programmed it {PROGRAMMED_WITHOUT_ADDRESS_S:.0f}s or more ago and gave it no address"
    return None


def gateway_diagnosis(gateway: dict) -> str:
    """Why a Gateway has no address, from its conditions."""
    conditions = {c.get("type"): c for c in (gateway.get("status") or {}).get("conditions") or []}
    accepted, programmed = conditions.get("Accepted"), conditions.get("Programmed")
    class_name = (gateway.get("spec") or {}).get("gatewayClassName")
    if accepted is None or accepted.get("status") != "True":
        if accepted is None or accepted.get("reason") in (None, "Pending"):
            return (f"no gateway controller has accepted it: is a Gateway API implementation serving "
                    f"GatewayClass {class_name!r} installed?")
        return f"its controller did not accept it ({accepted.get('reason')}: {accepted.get('message')})"
    if programmed is not None and programmed.get("status") != "True":
        return (f"accepted, but not programmed ({programmed.get('reason')}: {programmed.get('message')}); "
                "a LoadBalancer Service with no address needs a load-balancer provider "
                "(on kind: cloud-provider-kind or MetalLB)")
    return "accepted, but its controller reported no address"


@dataclass
class Endpoints:
    kube: Kube
    cluster: Cluster
    settings: Settings
    config: KServeConfig | None
    port_forwards: list[PortForward] = field(default_factory=list)
    routed: set[str] = field(default_factory=set)
    gateway_base: str | None = None

    def gateway_ref(self) -> Ref:
        gateway = (self.config.kserve_ingress_gateway if self.config else None) or "kserve/kserve-ingress-gateway"
        namespace, _, name = gateway.partition("/")
        return Ref("gateway.networking.k8s.io/v1", "Gateway", name, namespace)

    def gateway(self, url: str, converge: bool = False) -> Endpoint:
        """Through the Gateway: its status address, with the Host of `url` (e.g. status.url).
        The first use of a host (or any use with `converge`) waits until the gateway routes it."""
        if self.gateway_base is None:
            self.gateway_base = self._gateway_base()
        host = re.sub(r"^https?://", "", url).split("/")[0]
        endpoint = Endpoint(self.gateway_base, host=host, timeout=self.settings.timeouts.http_request)
        if converge or host not in self.routed:
            wait_until_routed(endpoint, self.settings.timeouts.route_converge)
            self.routed.add(host)
        return endpoint

    def _gateway_base(self) -> str:
        """The Gateway's status address; where it has none but its implementation made a Service
        for it (Envoy Gateway's LoadBalancer Service on kind without a load-balancer provider), a
        port-forward to that Service, said so."""
        ref = self.gateway_ref()
        try:
            gateway = self.kube.wait_for(
                ref, lambda o: bool(((o or {}).get("status") or {}).get("addresses")),
                self.settings.timeouts.gateway_programmed, "an address in Gateway status",
                doomed=programmed_without_address,
            )
        except WaitTimeout as exc:
            gateway = self.kube.get(ref)
            if gateway is None:
                raise AssertionError(f"{ref} does not exist: the platform manifests define the Gateway KServe's routes attach to") from None
            port = self._listener_port(gateway)
            service = None if self.cluster.offers(Feature.POD_NETWORK) else self._gateway_service(ref)
            if service is None:
                raise AssertionError(f"{exc}\n{gateway_diagnosis(gateway)}") from None
            progress(f"{ref} has no address ({gateway_diagnosis(gateway)}); "
                     f"reaching it through kubectl port-forward to Service {service[0]}/{service[1]}")
            return self._port_forward(service[0], service[1], port)
        address = gateway["status"]["addresses"][0]["value"]
        port = self._listener_port(gateway)
        return f"http://{address}" + ("" if port == 80 else f":{port}")

    @staticmethod
    def _listener_port(gateway: dict) -> int:
        listeners = [l for l in (gateway.get("spec") or {}).get("listeners") or [] if l.get("protocol") == "HTTP"]
        return int(listeners[0].get("port", 80)) if listeners else 80

    def _gateway_service(self, ref: Ref) -> tuple[str, str] | None:
        """The Service in front of the Gateway's data plane: Envoy Gateway's per-Gateway Service,
        or the one the suite installed with its own gateway implementation."""
        selector = f"{ENVOY_OWNER_NAME}={ref.name},{ENVOY_OWNER_NAMESPACE}={ref.namespace}"
        services = self.kube.list("v1", "Service", label_selector=selector)
        if not services:
            services = self.kube.list("v1", "Service", label_selector=f"{GATEWAY_SERVICE_LABEL}=true")
        if not services:
            return None
        meta = services[0]["metadata"]
        return meta["namespace"], meta["name"]

    def service(self, namespace: str, name: str, port: int) -> Endpoint:
        """Through a Service: a ready endpoint of it directly where pod addresses are reachable
        (the testbed), else `kubectl port-forward` to it."""
        if self.cluster.offers(Feature.POD_NETWORK):
            return Endpoint(self._ready_endpoint(namespace, name, port), timeout=self.settings.timeouts.http_request)
        return Endpoint(self._port_forward(namespace, name, port), timeout=self.settings.timeouts.http_request)

    def _ready_endpoint(self, namespace: str, name: str, port: int) -> str:
        service = self.kube.get(Ref("v1", "Service", name, namespace))
        if service is None:
            raise AssertionError(f"Service {namespace}/{name} does not exist")
        target = next((p.get("targetPort", port) for p in service["spec"]["ports"] if p.get("port") == port), port)
        selector = f"kubernetes.io/service-name={name}"
        for endpoint_slice in self.kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, label_selector=selector):
            ports = {p.get("name"): p.get("port") for p in endpoint_slice.get("ports") or []}
            resolved = target if isinstance(target, int) else ports.get(target)
            resolved = resolved or next(iter(ports.values()), None)
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready"):
                    return f"http://{endpoint['addresses'][0]}:{resolved}"
        raise AssertionError(f"Service {namespace}/{name} has no ready endpoint")

    def _port_forward(self, namespace: str, name: str, port: int) -> str:
        args = ["kubectl", "--kubeconfig", str(self.cluster.kubeconfig)]
        if self.cluster.context:
            args += ["--context", self.cluster.context]
        args += ["-n", namespace, "port-forward", f"svc/{name}", f":{port}", "--address", "127.0.0.1"]
        forward = PortForward.start(args, f"svc/{namespace}/{name}")
        self.port_forwards.append(forward)
        return forward.base_url

    def close(self) -> None:
        for forward in self.port_forwards:
            forward.stop()
        self.port_forwards.clear()
