"""Fixtures that hand a ready cluster to the cluster tests: one cluster per run, one namespace
per worker, workloads deployed once per namespace, and endpoints to reach them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from serving_conformance.base import versions
from serving_conformance.base.progress import progress
from serving_conformance.cluster.deploy import Deployer
from serving_conformance.cluster.kube import RUN_LABEL, Kube, Ref, WaitTimeout
from serving_conformance.cluster.providers import Cluster, ProviderError
from serving_conformance.cluster.session import CLUSTER_RESOURCES, DEPLOYER, RUN, ClusterSession, worker_id  # noqa: E402
from serving_conformance.manifests.load import ManifestSet
from serving_conformance.manifests.platform_config import KServeConfig, find_config
from serving_conformance.manifests.workloads import GPU_RESOURCE, as_mapping
from serving_conformance.openai_api import Endpoint, wait_until_routed
from serving_conformance.options import Settings
from serving_conformance.report import observe as report_observe


@pytest.fixture(scope="session")
def conformance_cluster(pytestconfig: pytest.Config, conformance_settings: Settings) -> Cluster:
    if conformance_settings.cluster == "none":
        pytest.skip("cluster tests need a cluster: --cluster is none")
    run_dir, run_id = pytestconfig.stash[RUN]
    try:
        return ClusterSession(conformance_settings, run_dir, run_id, progress).cluster()
    except ProviderError as exc:
        # One clear error for the whole run, not one per test; teardown still runs.
        pytest.exit(f"cannot provide the cluster: {exc}", returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(scope="session")
def kube(pytestconfig: pytest.Config, conformance_cluster: Cluster) -> Kube:
    run_dir, _ = pytestconfig.stash[RUN]
    return Kube(conformance_cluster.kubeconfig, conformance_cluster.context, run_dir / f"discovery-{worker_id()}.json")


@pytest.fixture(scope="session")
def cluster_namespace(pytestconfig: pytest.Config, kube: Kube, conformance_settings: Settings) -> Iterator[str]:
    """This worker's namespace, labelled with the run id so any teardown can find it."""
    _, run_id = pytestconfig.stash[RUN]
    name = f"{conformance_settings.namespace_prefix}-{worker_id()}-{run_id}".lower()
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {RUN_LABEL: run_id}}})
    yield name
    kube.delete(Ref("v1", "Namespace", name))


@pytest.fixture(scope="session")
def deployer(pytestconfig: pytest.Config, kube: Kube, cluster_namespace: str, manifests: ManifestSet,
             conformance_settings: Settings) -> Deployer:
    _, run_id = pytestconfig.stash[RUN]
    deployer = Deployer(kube, cluster_namespace, manifests, conformance_settings.kserve_namespace, run_id, progress)
    # Everything the selected tests will deploy, at once: the pods then start side by side. Not
    # under xdist, where each worker collects every test but runs only some.
    if not hasattr(pytestconfig, "workerinput"):
        for resource in pytestconfig.stash.get(CLUSTER_RESOURCES, []):
            deployer.deploy(resource)
    pytestconfig.stash[DEPLOYER] = deployer
    return deployer


@pytest.fixture(scope="session")
def kserve_config(manifests: ManifestSet) -> KServeConfig | None:
    return find_config(manifests)


@pytest.fixture(scope="session")
def served_engine_version(conformance_settings: Settings, conformance_cluster: Cluster) -> str:
    """What running servers must report: the option, else the local engine where the testbed runs
    vLLM itself (the image's vLLM cannot run here), else the version the design names."""
    if conformance_settings.served_engine_version:
        return conformance_settings.served_engine_version
    if conformance_cluster.provider == "local" and conformance_cluster.info.get("pods") == "vllm":
        return versions.VLLM_CPU_LOCAL
    return conformance_settings.expect.engine_version


@pytest.fixture
def observe(request: pytest.FixtureRequest):
    """Record a fact read from the running system in the conformance report."""
    return lambda key, value: report_observe(request.node, key, str(value))


@pytest.fixture(autouse=True)
def _cluster_facts(request: pytest.FixtureRequest) -> None:
    """Every cluster test carries what it ran against into the report (the controller merges them)."""
    if "conformance_cluster" not in request.fixturenames:
        return
    cluster: Cluster = request.getfixturevalue("conformance_cluster")
    facts = {"cluster.provider": cluster.provider, "cluster.name": cluster.name,
             "cluster.simulatedNodes": cluster.simulated}
    facts.update({f"cluster.{key}": value for key, value in cluster.info.items() if value is not None})
    for key, value in facts.items():
        report_observe(request.node, key, str(value))


@pytest.fixture(autouse=True)
def _hardware_gate(request: pytest.FixtureRequest) -> None:
    """gpu tests run only where some node has nvidia.com/gpu allocatable."""
    if request.node.get_closest_marker("gpu") is None or "conformance_cluster" not in request.fixturenames:
        return
    kube: Kube = request.getfixturevalue("kube")
    settings: Settings = request.getfixturevalue("conformance_settings")
    gpus = sum(int(str(as_mapping(n.get("status", {}).get("allocatable")).get(GPU_RESOURCE, 0)) or 0)
               for n in kube.list("v1", "Node"))
    if gpus == 0:
        message = f"no node of this cluster has {GPU_RESOURCE} allocatable"
        if settings.require_gpu:
            pytest.fail(f"{message}, and --require-gpu was given")
        pytest.skip(message)


@pytest.fixture
def needs_traffic(conformance_cluster: Cluster) -> None:
    if conformance_cluster.info.get("pods") == "simulated":
        pytest.skip("pods are simulated on this testbed (--local-pods simulated): nothing serves requests")


# --- endpoints ------------------------------------------------------------------------------

# Labels Envoy Gateway puts on the Service it makes for a Gateway.
ENVOY_OWNER_NAME = "gateway.envoyproxy.io/owning-gateway-name"
ENVOY_OWNER_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"


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
    port_forwards: list[subprocess.Popen]
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
            )
        except WaitTimeout as exc:
            gateway = self.kube.get(ref)
            if gateway is None:
                raise AssertionError(f"{ref} does not exist: the platform manifests define the Gateway KServe's routes attach to") from None
            port = self._listener_port(gateway)
            service = None if self.cluster.simulated else self._gateway_service(ref)
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
        selector = f"{ENVOY_OWNER_NAME}={ref.name},{ENVOY_OWNER_NAMESPACE}={ref.namespace}"
        services = self.kube.list("v1", "Service", label_selector=selector)
        if not services:
            return None
        meta = services[0]["metadata"]
        return meta["namespace"], meta["name"]

    def service(self, namespace: str, name: str, port: int) -> Endpoint:
        """Through a Service: a ready endpoint of it directly where pod addresses are reachable
        (the testbed), else `kubectl port-forward` to it."""
        if self.cluster.simulated:
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
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = process.stdout.readline() if process.stdout else ""
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            process.terminate()
            raise AssertionError(f"kubectl port-forward to svc/{name} failed: {line or process.stderr.read()}")
        self.port_forwards.append(process)
        return f"http://127.0.0.1:{match.group(1)}"


@pytest.fixture(scope="session")
def endpoints(kube: Kube, conformance_cluster: Cluster, conformance_settings: Settings,
              kserve_config: KServeConfig | None) -> Iterator[Endpoints]:
    result = Endpoints(kube, conformance_cluster, conformance_settings, kserve_config, [])
    yield result
    for process in result.port_forwards:
        process.terminate()

