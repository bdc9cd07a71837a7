"""Helpers the offline rules share: which resources hold what, and quantities that may be malformed."""

from __future__ import annotations

from decimal import Decimal

from serving_conformance.base.quantity import QuantityError, parse_quantity
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.platform_config import STANDARD_MODES, KServeConfig
from serving_conformance.manifests.workloads import Container, Workload, as_mapping, workloads_of

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def is_isvc(resource: Resource) -> bool:
    return resource.kind == "InferenceService"


def has_workload(resource: Resource) -> bool:
    return bool(workloads_of(resource))


def vllm_containers(resource: Resource) -> list[tuple[Workload, Container]]:
    return [(w, c) for w in workloads_of(resource) for c in w.vllm_containers]


def serves_vllm(resource: Resource) -> bool:
    return bool(vllm_containers(resource))


def quantity(value: object) -> Decimal | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def standard_mode(resource: Resource, config: KServeConfig | None) -> bool:
    """The InferenceService runs in Standard (raw Deployment) mode: its annotation says so, or,
    without one, the platform's default does (Standard where no configuration is in the manifests)."""
    mode = as_mapping(resource.metadata.get("annotations")).get(DEPLOYMENT_MODE_ANNOTATION)
    return mode in STANDARD_MODES if mode else (config is None or config.standard_mode)
