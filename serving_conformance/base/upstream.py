"""Upstream files (CRDs, shipped ConfigMaps, chart values) read from published Go module zips.

KServe and Gateway API publish their repositories as Go modules, so the exact files of a release
are one HTTPS download from the Go module proxy (or already in the local Go module cache), with
no Go toolchain and no GitHub access needed. Extracted files are cached by module and version.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import yaml

from serving_conformance.base.cache import cache_dir

KSERVE_MODULE = "github.com/kserve/kserve"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
ISTIO_API_MODULE = "istio.io/api"
DOWNLOAD_TIMEOUT_S = 120.0
_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UpstreamUnavailable(RuntimeError):
    """The module could not be obtained here (offline, proxy refused, unknown version)."""


def _escape(module: str) -> str:
    # The module proxy protocol escapes capitals as "!" + lower case.
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)


def _proxies() -> list[str]:
    value = os.environ.get("GOPROXY") or "https://proxy.golang.org"
    urls = [p for p in value.replace("|", ",").split(",") if p.startswith(("http://", "https://"))]
    return urls or ["https://proxy.golang.org"]


def _module_cache_zip(module: str, version: str) -> Path | None:
    root = os.environ.get("GOMODCACHE") or str(Path(os.environ.get("GOPATH") or Path.home() / "go") / "pkg" / "mod")
    candidate = Path(root) / "cache" / "download" / _escape(module) / "@v" / f"{version}.zip"
    return candidate if candidate.is_file() else None


def _download_zip(module: str, version: str) -> bytes:
    errors = []
    for proxy in _proxies():
        url = f"{proxy.rstrip('/')}/{_escape(module)}/@v/{version}.zip"
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
    raise UpstreamUnavailable(f"cannot download {module}@{version}: " + "; ".join(errors))


def module_files(module: str, version: str, *subdirs: str) -> Path:
    """Directory holding the module's files under `subdirs` (relative to the module root).

    The result is `<cache>/upstream/<module>@<version>/...`, extracted once; later calls are a
    stat. Raises UpstreamUnavailable when the module cannot be had.
    """
    version = version if version.startswith("v") else f"v{version}"
    target = cache_dir("upstream") / f"{_escape(module).replace('/', '_')}@{version}"
    stamp = target / ".complete"
    wanted = tuple(s.strip("/") + "/" for s in subdirs)
    if stamp.is_file() and set(stamp.read_text().split()) >= set(wanted):
        return target
    local = _module_cache_zip(module, version)
    data = local.read_bytes() if local else _download_zip(module, version)
    prefix = f"{module}@{version}/"
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                relative = name[len(prefix):] if name.startswith(prefix) else None
                if relative and not relative.endswith("/") and relative.startswith(wanted):
                    destination = staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(archive.read(name))
        (staging / ".complete").write_text("\n".join(sorted(wanted)))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except zipfile.BadZipFile as exc:
        raise UpstreamUnavailable(f"{module}@{version}: not a module zip ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def kserve_files(version: str) -> Path:
    """KServe's release files the suite reads: CRDs, the shipped ConfigMap, webhooks, chart values."""
    return module_files(
        KSERVE_MODULE,
        version,
        "config/crd/full",
        "config/configmap",
        "config/webhook",
        "charts/kserve-resources",
    )


def gateway_api_files(version: str) -> Path:
    return module_files(GATEWAY_API_MODULE, version, "config/crd/standard", "config/crd/experimental")


def istio_crd_files(version: str) -> Path:
    return module_files(ISTIO_API_MODULE, version, "kubernetes")


# --- the files of a release, as documents ----------------------------------------------------


def yaml_documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text (upstream release files: trusted, not bounded)."""
    return [d for d in yaml.load_all(text, Loader=_LOADER) if isinstance(d, dict) and d.get("kind")]


def crd_documents(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        documents += [d for d in yaml_documents(path.read_text()) if d["kind"] == "CustomResourceDefinition"]
    return documents


def gateway_api_crds(version: str, channel: str = "standard") -> list[dict[str, Any]]:
    return crd_documents(gateway_api_files(version) / "config" / "crd" / channel)


def istio_virtualservice_crd(version: str) -> list[dict[str, Any]]:
    return [d for d in crd_documents(istio_crd_files(version) / "kubernetes")
            if d["spec"]["names"]["kind"] == "VirtualService"]


def kserve_crds(version: str) -> list[dict[str, Any]]:
    """The serving.kserve.io CRDs the manager needs (not LLMInferenceService's, another binary's)."""
    root = kserve_files(version) / "config" / "crd" / "full"
    return crd_documents(root) + crd_documents(root / "clusterstoragecontainer")


def kserve_shipped_configmap(version: str, namespace: str) -> dict[str, Any]:
    path = kserve_files(version) / "config" / "configmap" / "inferenceservice.yaml"
    document = yaml_documents(path.read_text())[0]
    document["metadata"]["namespace"] = namespace
    return document


def kserve_webhook_configurations(version: str) -> list[dict[str, Any]]:
    return yaml_documents((kserve_files(version) / "config" / "webhook" / "manifests.yaml").read_text())
