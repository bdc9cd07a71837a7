"""KServe on the testbed: the real v0.19 manager, run on this machine against the testbed API.

The installer puts the release's CRDs and the shipped `inferenceservice-config` overlaid with the
platform configuration in place; here: a locally generated CA and serving certificate, the manager
as a local process, and the release's webhook configurations pointing at it on loopback, so the
real defaulting, validating and pod-mutating webhooks run.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serving_conformance.base import proc
from serving_conformance.base.upstream import kserve_webhook_configurations

WEBHOOK_HOST = "127.0.0.1"
NAME = "kserve-manager"


class KServeStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ports:
    metrics: int
    health: int
    webhook: int


# --- TLS ------------------------------------------------------------------------------------


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_certificates(directory: Path) -> bytes:
    """A CA and a serving certificate for 127.0.0.1; returns the CA bundle (PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serving-conformance testbed webhook CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, WEBHOOK_HOST)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(WEBHOOK_HOST)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(_pem_cert(cert))
    (directory / "tls.key").write_bytes(_pem_key(key))
    (directory / "ca.crt").write_bytes(_pem_cert(ca))
    return _pem_cert(ca)


# --- the manager ----------------------------------------------------------------------------


def start_manager(binary: Path, kubeconfig: Path, run_dir: Path, namespace: str, timeout: float) -> tuple[Ports, bytes]:
    """Start the manager detached; return its ports and the webhook CA once it is ready."""
    tmp = run_dir / "kserve-tmp"
    # controller-runtime reads the webhook certificate from $TMPDIR/k8s-webhook-server/serving-certs.
    ca_bundle = make_certificates(tmp / "k8s-webhook-server" / "serving-certs")
    ports = Ports(*proc.free_ports(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update({"TMPDIR": str(tmp), "POD_NAMESPACE": namespace, "CLUSTER_DOMAIN": "cluster.local"})
    args = [
        str(binary),
        f"-kubeconfig={kubeconfig}",
        f"-metrics-addr=127.0.0.1:{ports.metrics}",
        f"-health-probe-addr=127.0.0.1:{ports.health}",
        f"-webhook-port={ports.webhook}",
    ]
    process = proc.spawn(NAME, args, run_dir, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KServeStartError(
                f"the KServe manager exited ({process.returncode}) at start:\n{proc.log_tail(run_dir, NAME)}"
            )
        if _ready(ports, ca_bundle):
            return ports, ca_bundle
        time.sleep(0.2)  # the manager exposes no event to wait on before its probes answer
    proc.stop(run_dir, NAME)
    raise KServeStartError(f"the KServe manager was not ready in {timeout:.0f}s:\n{proc.log_tail(run_dir, NAME)}")


def _ready(ports: Ports, ca_bundle: bytes) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.health}/readyz", timeout=2) as response:
            if response.status != 200:
                return False
        context = ssl.create_default_context(cadata=ca_bundle.decode())
        with socket.create_connection((WEBHOOK_HOST, ports.webhook), timeout=2) as sock:
            with context.wrap_socket(sock, server_hostname=WEBHOOK_HOST):
                return True
    except (OSError, urllib.error.URLError):
        return False


def webhook_configurations(version: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The release's webhook configurations, each pointed at the manager on loopback."""
    bundle = base64.b64encode(ca_bundle).decode()
    documents = kserve_webhook_configurations(version)
    for document in documents:
        document["metadata"].pop("creationTimestamp", None)
        for webhook in document.get("webhooks") or []:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": f"https://{WEBHOOK_HOST}:{port}{path}", "caBundle": bundle}
    return documents
