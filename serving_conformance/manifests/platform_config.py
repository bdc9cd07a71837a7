"""KServe's platform configuration, read from either way platforms write it.

Platforms configure KServe with the `inferenceservice-config` ConfigMap (JSON documents under
`data`) or with values of the `kserve-resources` Helm chart. Both are reduced to `KServeConfig`,
the handful of settings the documented behaviours depend on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from serving_conformance.manifests.model import HELM_VALUES_KIND, ManifestSet, Resource
from serving_conformance.manifests.workloads import as_mapping

CONFIGMAP_NAME = "inferenceservice-config"
STANDARD_MODES = ("Standard", "RawDeployment")  # the defaulter rewrites the legacy name


@dataclass
class KServeConfig:
    source: Resource
    deployment_mode: str | None = None
    enable_gateway_api: bool | None = None
    kserve_ingress_gateway: str | None = None
    ingress_gateway: str | None = None
    disable_istio_virtual_host: bool | None = None
    enable_modelcar: bool | None = None
    ingress_domain: str | None = None
    domain_template: str | None = None
    # Where each setting was read, e.g. "data.ingress.enableGatewayApi", for messages.
    origins: dict[str, str] = field(default_factory=dict)
    # Problems reading the configuration itself (invalid JSON in a ConfigMap key).
    problems: list[str] = field(default_factory=list)

    @property
    def standard_mode(self) -> bool:
        return self.deployment_mode in STANDARD_MODES

    def host_for(self, name: str, namespace: str) -> str | None:
        """The host KServe's domain template gives an InferenceService; None for templates using
        more than .Name, .Namespace and .IngressDomain."""
        return render_host(self.domain_template, self.ingress_domain, name, namespace)


DEFAULT_DOMAIN_TEMPLATE = "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"


def render_host(template: str | None, domain: str | None, name: str, namespace: str) -> str | None:
    values = {"Name": name, "Namespace": namespace, "IngressDomain": domain or "example.com"}
    rendered = re.sub(
        r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)), template or DEFAULT_DOMAIN_TEMPLATE
    )
    return None if "{{" in rendered else rendered


def is_kserve_config(resource: Resource) -> bool:
    if resource.kind == HELM_VALUES_KIND:
        return True
    return resource.kind == "ConfigMap" and resource.name == CONFIGMAP_NAME


def read_config(resource: Resource) -> KServeConfig:
    if resource.kind == HELM_VALUES_KIND:
        return _from_helm_values(resource)
    return _from_configmap(resource)


def find_config(manifests: ManifestSet) -> KServeConfig | None:
    sources = [r for r in manifests.resources if is_kserve_config(r)]
    return read_config(sources[0]) if sources else None


def _json_key(resource: Resource, key: str, config: KServeConfig) -> Mapping[str, Any]:
    raw = as_mapping(resource.body.get("data")).get(key)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as exc:
        config.problems.append(f"data.{key} is not valid JSON ({exc}); the KServe manager exits at start")
        return {}
    return as_mapping(value)


def _set(config: KServeConfig, attribute: str, value: Any, origin: str) -> None:
    if value is not None:
        setattr(config, attribute, value)
        config.origins[attribute] = origin


# Where each setting lives in the ConfigMap: (data key holding a JSON document, field in it).
CONFIGMAP_FIELDS = {
    "deployment_mode": ("deploy", "defaultDeploymentMode"),
    "enable_gateway_api": ("ingress", "enableGatewayApi"),
    "kserve_ingress_gateway": ("ingress", "kserveIngressGateway"),
    "ingress_gateway": ("ingress", "ingressGateway"),
    "disable_istio_virtual_host": ("ingress", "disableIstioVirtualHost"),
    "ingress_domain": ("ingress", "ingressDomain"),
    "domain_template": ("ingress", "domainTemplate"),
    "enable_modelcar": ("storageInitializer", "enableModelcar"),
}


def _from_configmap(resource: Resource) -> KServeConfig:
    config = KServeConfig(source=resource)
    documents = {key: _json_key(resource, key, config) for key in sorted({k for k, _ in CONFIGMAP_FIELDS.values()})}
    for attribute, (key, name) in CONFIGMAP_FIELDS.items():
        _set(config, attribute, documents[key].get(name), f"data.{key}.{name}")
    return config


def configmap_for(config: KServeConfig, shipped: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `config` has (e.g. read from Helm values), written into KServe's shipped
    ConfigMap: only the data keys they touch, each complete, as the chart would render them."""
    shipped_data = as_mapping(shipped.get("data"))
    data: dict[str, Any] = {}
    for attribute, (key, name) in CONFIGMAP_FIELDS.items():
        value = getattr(config, attribute)
        if value is None:
            continue
        if key not in data:
            data[key] = json.loads(shipped_data.get(key) or "{}")
        data[key][name] = value
    meta = as_mapping(shipped.get("metadata"))
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": meta.get("name", CONFIGMAP_NAME), "namespace": meta.get("namespace")},
        "data": {key: json.dumps(document, indent=2) for key, document in data.items()},
    }


def _from_helm_values(resource: Resource) -> KServeConfig:
    config = KServeConfig(source=resource)
    kserve = as_mapping(resource.body.get("kserve"))
    controller = as_mapping(kserve.get("controller"))
    gateway = as_mapping(controller.get("gateway"))
    ingress = as_mapping(gateway.get("ingressGateway"))
    storage = as_mapping(kserve.get("storage"))
    prefix = "kserve.controller"
    _set(config, "deployment_mode", controller.get("deploymentMode"), f"{prefix}.deploymentMode")
    _set(config, "disable_istio_virtual_host", gateway.get("disableIstioVirtualHost"), f"{prefix}.gateway.disableIstioVirtualHost")
    _set(config, "ingress_domain", gateway.get("domain"), f"{prefix}.gateway.domain")
    _set(config, "domain_template", gateway.get("domainTemplate"), f"{prefix}.gateway.domainTemplate")
    _set(config, "enable_gateway_api", ingress.get("enableGatewayApi"), f"{prefix}.gateway.ingressGateway.enableGatewayApi")
    _set(config, "kserve_ingress_gateway", ingress.get("kserveGateway"), f"{prefix}.gateway.ingressGateway.kserveGateway")
    _set(config, "ingress_gateway", ingress.get("gateway"), f"{prefix}.gateway.ingressGateway.gateway")
    _set(config, "enable_modelcar", storage.get("enableModelcar"), "kserve.storage.enableModelcar")
    return config
