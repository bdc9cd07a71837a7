"""`--cluster existing`: any kubeconfig context the user explicitly allowed (GKE and others).

Never created, never deleted; the run's labelled namespaces are all the session removes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base import yamlsafe
from serving_conformance.base.settings import Settings
from serving_conformance.cluster.base import Cluster, Feature, ProviderError
from serving_conformance.manifests import files


class ExistingProvider:
    name = "existing"

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir

    def kubeconfig_path(self) -> Path:
        if self.settings.kubeconfig is not None:
            return self.settings.kubeconfig
        env = os.environ.get("KUBECONFIG", "")
        if env:
            paths = [p for p in env.split(os.pathsep) if p]
            if len(paths) > 1:
                raise ProviderError("KUBECONFIG lists several files: pass the one to use with --kubeconfig")
            return Path(paths[0])
        return Path.home() / ".kube" / "config"

    def read_kubeconfig(self, kubeconfig: Path) -> Mapping[str, Any]:
        try:
            data = yamlsafe.load_single(files.read_text(kubeconfig))
        except (ValueError, yaml.YAMLError) as exc:  # files.read_text says why in a ValueError
            raise ProviderError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ProviderError(f"kubeconfig {kubeconfig} is not a kubeconfig (a mapping with contexts): got {type(data).__name__}")
        return data

    def choose_context(self, kubeconfig: Path) -> str:
        data = self.read_kubeconfig(kubeconfig)
        entries = data.get("contexts") if isinstance(data.get("contexts"), list) else []
        contexts = [str(c.get("name")) for c in entries if isinstance(c, Mapping)]
        context = self.settings.kube_context or data.get("current-context")
        if not context:
            raise ProviderError(f"{kubeconfig} has no current context: pass --kube-context")
        if context not in contexts:
            raise ProviderError(f"context {context!r} is not in {kubeconfig} (it has: {', '.join(contexts) or 'none'})")
        if context not in self.settings.allowed_contexts:
            raise ProviderError(
                f"refusing to touch context {context!r}: the suite creates and deletes namespaces and, with "
                f"--install-platform, cluster-wide objects. Allow it explicitly with --allow-context {context}"
            )
        return str(context)

    def start(self) -> Cluster:
        kubeconfig = self.kubeconfig_path()
        context = self.choose_context(kubeconfig)
        # What a real cluster offers; GPUs and Istio's API are discovered by the session.
        return Cluster(
            provider=self.name, name=context, kubeconfig=kubeconfig, context=context, created=False,
            features={Feature.SERVING, Feature.GATEWAY, Feature.KUBELET, Feature.ENGINE_VERSION},
        )

    def image_map_for(self, resources: object) -> dict[str, str]:
        """The manifests' images are what runs (pulled by the cluster, or stood in for by the
        local engine, said so in the substitutions)."""
        return {}

    def start_components(self, cluster: Cluster, kube: object, manifests: object) -> None:
        """Nothing of the platform is run by the suite on an existing cluster."""

    def stop(self, cluster: Cluster | None) -> None:
        """An existing cluster is never deleted; the run's namespaces are removed by the session."""
