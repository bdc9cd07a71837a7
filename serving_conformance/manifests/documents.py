"""What a YAML document (or file) is, before it is judged: Helm values of KServe's chart, a Helm
or envsubst template, and the names a template gives its objects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def is_values_file(path: Path) -> bool:
    """A file named as Helm values are (values.yaml, values-prod.yaml, kserve.values.yaml, or any
    file in a values/ directory); other charts' (llmisvc, crd) excluded by name."""
    name = path.name.lower()
    if any(other in name for other in ("llmisvc", "crd", "localmodel")):
        return False
    return "values" in name or path.parent.name.lower() == "values"


def is_kserve_helm_values(data: Any, path: Path | None = None) -> bool:
    """Values of the kserve-resources chart: a top-level `kserve` mapping, no `kind`, in a file
    named as values are."""
    if not isinstance(data, Mapping) or "kind" in data or "apiVersion" in data:
        return False
    if path is not None and not is_values_file(path):
        return False
    kserve = data.get("kserve")
    return isinstance(kserve, Mapping) and bool({"controller", "storage"} & set(kserve))


# Helm's own template expressions: a file holding them is a chart template (other Go templates,
# such as KServe's domainTemplate "{{ .Name }}-{{ .Namespace }}", are data, not Helm's).
HELM_EXPRESSION = re.compile(r"\{\{-?\s*(?:[^}]*?\.(?:Values|Release|Chart|Capabilities|Files|Template)\b|"
                              r"(?:include|template|tpl|toYaml|required|define|end)\b)")
# A placeholder for envsubst or a shell: such a file is a template too.
PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=?+][^}]*)?\}")


def templated_name(data: Mapping[str, Any]) -> bool:
    meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
    texts = [str(meta.get(k) or "") for k in ("name", "namespace", "generateName")]
    return any("{{" in t or PLACEHOLDER.search(t) for t in texts)
