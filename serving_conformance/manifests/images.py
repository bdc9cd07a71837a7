"""The image map: images (and oci:// model URIs) the manifests name, replaced by others that are
reachable where the suite runs (a mirror for an air-gapped platform, images built here for the
offline kind cluster). Applied to what is deployed and installed, never to what is judged
statically; every replacement made is a stand-in the report lists.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.manifests.workloads import workloads_of

OCI = "oci://"


class ImageMapError(ValueError):
    pass


@dataclass
class ImageMap:
    """FROM=TO pairs; FROM is a whole image reference (tag and/or digest), or an oci:// URI."""

    pairs: dict[str, str] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str], base: Path | None = None) -> ImageMap:
        """From `FROM=TO` strings; `@FILE` reads one pair per line (# comments, blank lines)."""
        pairs: dict[str, str] = {}
        for entry in entries:
            lines = [entry]
            if entry.startswith("@"):
                path = Path(entry[1:])
                path = path if path.is_absolute() or base is None else base / path
                try:
                    lines = path.read_text().splitlines()
                except OSError as exc:
                    raise ImageMapError(f"--image-map {entry}: cannot read {path}: {exc}") from exc
            for line in lines:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                source, sep, target = line.partition("=")
                if not sep or not source.strip() or not target.strip():
                    raise ImageMapError(f"--image-map {line!r}: write FROM=TO (an image or oci:// URI each side)")
                pairs[source.strip()] = target.strip()
        return cls(pairs)

    def merged(self, other: Mapping[str, str]) -> ImageMap:
        """This map with `other`'s pairs added where this one has none (the user's map wins)."""
        return ImageMap({**dict(other), **self.pairs})

    def image(self, reference: str) -> str:
        target = self.pairs.get(reference)
        if target is None:
            return reference
        self.used[reference] = target
        return target

    def uri(self, value: str) -> str:
        if not value.startswith(OCI):
            return value
        mapped = self.pairs.get(value) or self.pairs.get(value[len(OCI):])
        if mapped is None:
            return value
        target = mapped if mapped.startswith(OCI) else OCI + mapped
        self.used[value] = target
        return target

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of an object with every container image, init container image and oci://
        STORAGE_URI / storageUri replaced as mapped."""
        result = copy.deepcopy(dict(body))
        if self.pairs:
            self._walk(result)
        return result

    def _walk(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item)
            return
        if not isinstance(node, MutableMapping):
            return
        for key, value in list(node.items()):
            if key == "image" and isinstance(value, str):
                node[key] = self.image(value)
            elif key == "storageUri" and isinstance(value, str):
                node[key] = self.uri(value)
            elif key == "value" and node.get("name") == "STORAGE_URI" and isinstance(value, str):
                node[key] = self.uri(value)
            else:
                self._walk(value)


def engine_references(resources: Iterable[Any]) -> tuple[list[str], list[str]]:
    """(vLLM container images, oci:// model URIs) the manifests' workloads name: what a cluster
    that reaches no registry needs a stand-in for."""
    images: set[str] = set()
    uris: set[str] = set()
    for resource in resources:
        for workload in workloads_of(resource):
            images.update(c.image.reference for c in workload.vllm_containers if c.image.reference)
            uri = workload.storage_uri
            if uri and uri.startswith(OCI):
                uris.add(uri)
    return sorted(images), sorted(uris)


def stand_in_pairs(resources: Iterable[Any], engine_image: str, model_image: str) -> dict[str, str]:
    """Every vLLM image and oci:// model of the manifests mapped to the images built here."""
    images, uris = engine_references(resources)
    return {**{image: engine_image for image in images}, **{uri: OCI + model_image for uri in uris}}
