"""Platform objects and serving objects, told apart by kind and role, never by namespace.

Platform objects are installed once, with the platform, where they are declared: the Gateway
KServe's routes attach to, namespaces, classes, KServe's configuration, cluster-wide runtimes.
Serving objects (InferenceServices, Deployments, their Services, Secrets, volumes, routes) are what
the tests deploy and remove; where the manifests place them in a namespace (KServe's own, say),
they are deployed there, labelled with the run, and removed by that label.
"""

from __future__ import annotations

from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.platform_config import is_kserve_config

PLATFORM_KINDS = frozenset({
    "Namespace", "GatewayClass", "Gateway", "CustomResourceDefinition", "ClusterServingRuntime",
    "ClusterStorageContainer", "ClusterRole", "ClusterRoleBinding",
})


def is_platform(resource: Resource) -> bool:
    return resource.kind in PLATFORM_KINDS or is_kserve_config(resource)
