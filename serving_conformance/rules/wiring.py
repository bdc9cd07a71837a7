"""What connects the design's objects: the namespace KServe's pod webhook mutates, the gateway
listener KServe's routes attach to, the Secrets and keys containers read."""

from __future__ import annotations

from serving_conformance.manifests.design import is_kserve_canary_route, kserve_gateway, mentions_modelcar
from serving_conformance.manifests.model import Resource
from serving_conformance.manifests.platform_config import render_host
from serving_conformance.manifests.workloads import as_list, as_mapping, workloads_of
from serving_conformance.rules.common import is_isvc
from serving_conformance.rules.findings import Finding, Rule, RuleContext

# KServe's pod mutator skips namespaces with this label (config/webhook/manifests.yaml:
# namespaceSelector control-plane DoesNotExist).
CONTROL_PLANE_LABEL = "control-plane"
# Where a namespace-less object lands is only known at deploy time.
ANY_NAMESPACE = "any-namespace"


# --- the pod webhook ------------------------------------------------------------------------------


def _needs_pod_webhook(resource: Resource) -> bool:
    """InferenceServices whose pods KServe's pod webhook must mutate (a model to fetch or mount)."""
    if not is_isvc(resource):
        return False
    for workload in workloads_of(resource):
        if mentions_modelcar(workload) or workload.storage_uri:
            return True
    return False


def _check_webhook_reach(resource: Resource, ctx: RuleContext) -> list[Finding]:
    namespace = ctx.manifests.find("Namespace", resource.namespace) if resource.namespace else None
    labels = as_mapping(namespace.metadata.get("labels")) if namespace is not None else {}
    if namespace is None or CONTROL_PLANE_LABEL not in labels:
        return []
    return [Finding(
        found=f"{resource.ident} is in namespace {resource.namespace}, labelled {CONTROL_PLANE_LABEL}="
              f"{labels[CONTROL_PLANE_LABEL]} ({namespace.where})",
        effect="KServe's pod webhook skips namespaces with that label (namespaceSelector control-plane "
               "DoesNotExist): its pods get no modelcar and no storage initializer, nothing at /mnt/models",
        fix=f"remove the {CONTROL_PLANE_LABEL} label from namespace {resource.namespace}, or serve from another namespace",
    )]


POD_WEBHOOK_REACH = Rule(
    id="pod-webhook-reaches-predictors",
    title="InferenceServices that need KServe's pod webhook (modelcar, storage) live where it mutates pods",
    applies=_needs_pod_webhook,
    check=_check_webhook_reach,
    nothing_to_check="no InferenceService with a model to fetch or mount in the manifests",
)


# --- the gateway listener -------------------------------------------------------------------------


def _hostname_matches(listener: str, host: str) -> bool:
    """Gateway API: a listener hostname `*.x` matches any host ending in `.x` (one or more labels; not
    `x` itself)."""
    if listener.startswith("*."):
        return host.endswith(listener[1:])
    return listener == host


def _kserve_gateway(ctx: RuleContext) -> Resource | None:
    namespace, name = kserve_gateway(ctx.manifests)
    return ctx.manifests.find("Gateway", name, namespace)  # in that namespace, or one that names none


def _hosts(resource: Resource, ctx: RuleContext) -> list[str]:
    if resource.kind == "HTTPRoute":
        return [str(h) for h in as_list(resource.spec.get("hostnames"))]
    config = ctx.kserve_config
    host = render_host(config.domain_template if config else None, config.ingress_domain if config else None,
                       resource.name, resource.namespace or ANY_NAMESPACE)
    return [host] if host else []


def _routes_to_gateway(resource: Resource, ctx: RuleContext) -> bool:
    if _kserve_gateway(ctx) is None:
        return False
    return is_isvc(resource) or (resource.kind == "HTTPRoute" and is_kserve_canary_route(resource, ctx.manifests))


def _check_listener(resource: Resource, ctx: RuleContext) -> list[Finding]:
    gateway = _kserve_gateway(ctx)
    assert gateway is not None
    listeners = [as_mapping(item) for item in as_list(gateway.spec.get("listeners"))
                 if as_mapping(item).get("protocol") in ("HTTP", "HTTPS")]
    findings = []
    for host in _hosts(resource, ctx):
        open_to = [li for li in listeners if not li.get("hostname")
                   or (ANY_NAMESPACE in host and str(li["hostname"]).startswith("*."))
                   or _hostname_matches(str(li["hostname"]), host)]
        if not open_to:
            names = [li.get("hostname") for li in listeners]
            findings.append(Finding(
                found=f"{resource.ident}'s host {host} matches no listener hostname of {gateway.ident} ({names})",
                effect="the gateway does not accept its HTTPRoute (NoMatchingListenerHostname): IngressReady stays "
                       "False and the InferenceService is never Ready, or the split is never served",
                fix="widen the listener's hostname (or drop it), or set KServe's ingress domain to match it",
            ))
        for listener in open_to:
            allowed = as_mapping(as_mapping(listener.get("allowedRoutes")).get("namespaces")).get("from", "Same")
            if allowed == "Same" and resource.namespace != gateway.namespace:
                findings.append(Finding(
                    found=f"{gateway.ident} listener {listener.get('name')!r} accepts routes from its own namespace only "
                          f"(allowedRoutes from Same), and {resource.ident} is "
                          + (f"in {resource.namespace}" if resource.namespace else "deployed into another namespace"),
                    effect="its HTTPRoute is not accepted (NotAllowedByListeners): IngressReady stays False",
                    fix="allowedRoutes.namespaces.from: All (or a Selector that matches the serving namespaces)",
                ))
    return findings


GATEWAY_ACCEPTS_ROUTES = Rule(
    id="gateway-accepts-kserve-routes",
    title="the KServe gateway's listeners accept the InferenceServices' and the canary's routes (hostnames, namespaces)",
    applies=lambda resource: is_isvc(resource) or resource.kind == "HTTPRoute",
    in_context=_routes_to_gateway,
    check=_check_listener,
    nothing_to_check="no KServe gateway with InferenceServices in the manifests",
)


# --- Secrets --------------------------------------------------------------------------------------


def _secret_refs(resource: Resource) -> list[tuple[str, str, str, bool]]:
    """(container, Secret name, key, optional) of every env secretKeyRef."""
    refs = []
    for workload in workloads_of(resource):
        for container in workload.init_containers + workload.containers:
            for entry in as_list(container.body.get("env")):
                ref = as_mapping(as_mapping(as_mapping(entry).get("valueFrom")).get("secretKeyRef"))
                if ref.get("name"):
                    refs.append((container.name, str(ref["name"]), str(ref.get("key")), bool(ref.get("optional"))))
    return refs


def secret_keys(name: str, namespace: str | None, ctx: RuleContext) -> tuple[str, set[str] | None] | None:
    """(what declares it, its keys) of the Secret `name` in `namespace`, as the manifests declare it
    (a Secret, or an ExternalSecret's target); None where no manifest declares it; keys None where
    they cannot be told (dataFrom, templates)."""
    for resource in ctx.manifests.of_kind("Secret", "ExternalSecret"):
        if resource.namespace != namespace:
            continue
        if resource.kind == "Secret" and resource.name == name:
            keys = set(as_mapping(resource.body.get("data"))) | set(as_mapping(resource.body.get("stringData")))
            return resource.ident, keys
        target = as_mapping(resource.spec.get("target"))
        if resource.kind == "ExternalSecret" and str(target.get("name") or resource.name) == name:
            if resource.spec.get("dataFrom") or as_mapping(target.get("template")).get("data"):
                return resource.ident, None
            return resource.ident, {str(as_mapping(d).get("secretKey")) for d in as_list(resource.spec.get("data"))}
    return None


def _check_secret_refs(resource: Resource, ctx: RuleContext) -> list[Finding]:
    findings = []
    for container, name, key, optional in _secret_refs(resource):
        declared = secret_keys(name, resource.namespace, ctx)
        if declared is None or declared[1] is None or optional:
            continue  # made out of band, or keys not knowable here
        source, keys = declared
        if key not in keys:
            findings.append(Finding(
                found=f"{resource.ident} container {container!r} reads key {key!r} of Secret {name}, which {source} "
                      f"fills with {sorted(keys)}",
                effect="the container cannot start (CreateContainerConfigError: couldn't find key): the workload "
                       "is never Ready",
                fix=f"read one of {sorted(keys)}, or write {key!r} into the Secret",
            ))
    return findings


SECRET_REFS_RESOLVE = Rule(
    id="secret-refs-resolve",
    title="every Secret key a container reads exists in the Secret the manifests declare for it",
    applies=lambda resource: bool(_secret_refs(resource)),
    check=_check_secret_refs,
    nothing_to_check="no container reads a Secret key in the manifests",
)
