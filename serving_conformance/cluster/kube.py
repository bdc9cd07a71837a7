"""Kubernetes access for the suite: server-side apply, reads, and waits that watch.

One `Kube` per kubeconfig and context. Objects are plain dicts. Waits list once, then watch from
that resourceVersion until a monotonic deadline, and always report the last state they saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException, NotFoundError, ResourceNotFoundError

from serving_conformance.base.timeouts import Timeouts
from serving_conformance.cluster.conditions import crd_established

FIELD_MANAGER = "serving-conformance"
RUN_LABEL = "serving-conformance.dev/run"
DEFAULT_REQUEST_TIMEOUT = Timeouts().api_request
# How much longer than its own timeoutSeconds a watch may stay silent before it counts as hung.
WATCH_READ_MARGIN_S = 15.0


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what was awaited and what was last seen."""


class WaitHopeless(WaitTimeout):
    """A wait stopped early: what it awaits cannot happen any more; the message says why."""


# A watch the server kept open without an event for longer than its read timeout (a quiet
# object, a loaded machine): not a failure; the wait lists again and watches on.
QUIET_WATCH = (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError, ConnectionResetError)
# How often a wait with a `doomed` check looks again at what it cannot see in its own object.
RECHECK_S = 10.0


class KubeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def summarize(obj: Mapping[str, Any] | None, limit: int = 3000) -> str:
    """YAML of an object's status (or the whole object when it has none), for failure messages."""
    if obj is None:
        return "(absent)"
    shown = {"status": obj["status"]} if obj.get("status") else obj
    text = yaml.safe_dump(shown, sort_keys=False, width=120)
    return text if len(text) <= limit else text[:limit] + "\n..."


def _bound_requests(api_client: k8s_client.ApiClient, seconds: float) -> None:
    """Give every request of this client a timeout, discovery's and the dynamic client's too (they
    set none, and an API server that accepts but never answers would hold them forever). A watch
    may be silent for as long as it asked the server to keep it open: its read timeout is that
    plus a margin."""
    rest = api_client.rest_client
    request = rest.request

    def bounded(method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        if _request_timeout is None:
            query = parse_qs(urlsplit(url).query)
            read = seconds
            if query.get("watch") == ["true"] and query.get("timeoutSeconds"):
                read = float(query["timeoutSeconds"][0]) + WATCH_READ_MARGIN_S
            _request_timeout = (seconds, read)
        return request(method, url, *args, _request_timeout=_request_timeout, **kwargs)

    rest.request = bounded


class Kube:
    def __init__(
        self, kubeconfig: Path, context: str | None = None, discovery_cache: Path | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
        # No retry after a read timeout: a server that does not answer is not asked again.
        configuration.retries = urllib3.Retry(total=3, connect=3, read=0, backoff_factor=0.2)
        self.api_client = k8s_client.ApiClient(configuration)
        _bound_requests(self.api_client, request_timeout)
        kwargs = {"cache_file": str(discovery_cache)} if discovery_cache else {}
        self._dynamic: DynamicClient | None = None
        self._dynamic_kwargs = kwargs

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api_client, **self._dynamic_kwargs)
        return self._dynamic

    # --- discovery --------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self.dynamic.resources.invalidate_cache()
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise KubeError(f"the API server does not serve {kind} ({api_version}): is its CRD installed?") from exc

    def serves(self, api_version: str, kind: str) -> bool:
        try:
            self.resource(api_version, kind)
            return True
        except KubeError:
            return False

    def served_versions(self, group: str, kind: str) -> list[str]:
        """The versions of `group` in which the API server serves `kind` (none: no such API)."""
        self.dynamic.resources.invalidate_cache()  # CRDs may have been installed since
        found = self.dynamic.resources.search(group=group, kind=kind)
        return sorted({r.api_version for r in found if getattr(r, "api_version", None)})

    def server_version(self, timeout: float | None = None) -> str:
        return k8s_client.VersionApi(self.api_client).get_code(_request_timeout=timeout).git_version

    # --- reads and writes -------------------------------------------------------------------

    def apply(
        self, obj: Mapping[str, Any], namespace: str | None = None, manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply. Use a distinct `manager` per source of truth: an apply drops the
        fields its manager set before and omits now."""
        body = dict(obj)
        resource = self.resource(body["apiVersion"], body["kind"])
        if resource.namespaced:
            meta = dict(body.get("metadata", {}))
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            body["metadata"] = meta
        else:
            namespace = None
        result = self.dynamic.server_side_apply(
            resource,
            body=body,
            namespace=body["metadata"].get("namespace") if resource.namespaced else None,
            field_manager=manager,
            force_conflicts=True,
        )
        return result.to_dict()

    def get(self, ref: Ref) -> dict[str, Any] | None:
        try:
            return self.resource(ref.api_version, ref.kind).get(name=ref.name, namespace=ref.namespace).to_dict()
        except NotFoundError:
            return None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        result = self.resource(api_version, kind).get(
            namespace=namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [item.to_dict() for item in result.items]

    def delete(self, ref: Ref, grace_seconds: int | None = None) -> bool:
        body = {"propagationPolicy": "Foreground"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.resource(ref.api_version, ref.kind).delete(name=ref.name, namespace=ref.namespace, body=body)
            return True
        except NotFoundError:
            return False

    def events_for(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return self.list("v1", "Event", namespace=namespace, field_selector=selector)

    # --- waits ------------------------------------------------------------------------------

    def wait_crds_established(self, crds: Iterable[Mapping[str, Any]], timeout: float) -> None:
        for crd in crds:
            ref = Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])
            self.wait_for(ref, crd_established, timeout, "the CRD to be Established")

    def wait_for(
        self,
        ref: Ref,
        condition: Callable[[dict[str, Any] | None], bool],
        timeout: float,
        what: str,
        progress: Callable[[str], None] | None = None,
        doomed: Callable[[dict[str, Any] | None], str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Watch one object until `condition(obj)` holds (obj is None while absent). `doomed(obj)`,
        checked at every event and every RECHECK_S, says why it never will: the wait stops then."""
        resource = self.resource(ref.api_version, ref.kind)
        deadline = time.monotonic() + timeout
        selector = f"metadata.name={ref.name}"
        last: dict[str, Any] | None = None
        period = RECHECK_S if doomed is not None else 60
        while True:
            listing = resource.get(namespace=ref.namespace, field_selector=selector)
            items = [i.to_dict() for i in listing.items]
            last = items[0] if items else None
            if condition(last):
                return last
            self._give_up_if(doomed, last, what, ref)
            version = listing.metadata.resourceVersion
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for event in self.dynamic.watch(
                    resource, namespace=ref.namespace, field_selector=selector,
                    resource_version=version, timeout=max(1, int(min(remaining, period))),
                ):
                    obj = event["raw_object"]
                    last = None if event["type"] == "DELETED" else obj
                    if progress is not None:
                        progress(f"{ref}: {event['type'].lower()}")
                    if condition(last):
                        return last
                    self._give_up_if(doomed, last, what, ref)
                    if time.monotonic() >= deadline:
                        break
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: our resourceVersion is too old; list again
                    raise
            except QUIET_WATCH:
                pass  # no event within the read timeout: list again and watch on
            if time.monotonic() >= deadline:
                break
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} ({ref}); last seen:\n{summarize(last)}")

    @staticmethod
    def _give_up_if(doomed: Callable[[dict[str, Any] | None], str | None] | None, last: dict[str, Any] | None,
                    what: str, ref: Ref) -> None:
        reason = doomed(last) if doomed is not None else None
        if reason:
            raise WaitHopeless(f"stopped waiting for {what} ({ref}): {reason}")

    def wait_for_any(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        field_selector: str | None,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float,
        what: str,
        label_selector: str | None = None,
    ) -> dict[str, Any]:
        """Watch a collection until one object satisfies `condition`; return it."""
        resource = self.resource(api_version, kind)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            listing = resource.get(namespace=namespace, field_selector=field_selector, label_selector=label_selector)
            for item in listing.items:
                obj = item.to_dict()
                if condition(obj):
                    return obj
            seen = len(listing.items)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for event in self.dynamic.watch(
                    resource, namespace=namespace, field_selector=field_selector, label_selector=label_selector,
                    resource_version=listing.metadata.resourceVersion, timeout=max(1, int(min(remaining, 60))),
                ):
                    if event["type"] != "DELETED" and condition(event["raw_object"]):
                        return event["raw_object"]
                    if time.monotonic() >= deadline:
                        break
            except ApiException as exc:
                if exc.status != 410:
                    raise
            except QUIET_WATCH:
                pass
            if time.monotonic() >= deadline:
                break
        where = f" in {namespace}" if namespace else ""
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} ({kind}{where}; {seen} listed, none matched)")

    def consistently(
        self,
        watches: Iterable[tuple[str, str, str | None, str | None]],
        violation: Callable[[dict[str, Any]], str | None],
        window: float,
    ) -> None:
        """Fail at the first object, listed or watched during `window`, for which `violation`
        returns a message. `watches` are (apiVersion, kind, namespace, fieldSelector) tuples."""
        deadline = time.monotonic() + window
        streams = []
        for api_version, kind, namespace, field_selector in watches:
            resource = self.resource(api_version, kind)
            listing = resource.get(namespace=namespace, field_selector=field_selector)
            for item in listing.items:
                message = violation(item.to_dict())
                if message:
                    raise AssertionError(message)
            streams.append((resource, namespace, field_selector, listing.metadata.resourceVersion))
        # Watch each stream in turn for its share of the window; events are buffered by the server
        # from the listed resourceVersion, so nothing that happens meanwhile is missed.
        while time.monotonic() < deadline:
            for index, (resource, namespace, field_selector, version) in enumerate(streams):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                share = max(1, int(min(remaining, window) / len(streams)))
                try:
                    for event in self.dynamic.watch(
                        resource, namespace=namespace, field_selector=field_selector, resource_version=version,
                        timeout=share,
                    ):
                        obj = event["raw_object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event["type"] != "DELETED":
                            message = violation(obj)
                            if message:
                                raise AssertionError(message)
                except QUIET_WATCH:
                    pass  # no event within the read timeout: watch on from the same version
                except ApiException as exc:
                    if exc.status != 410:
                        raise
                    # Our version is too old: look at every object as it is now, and go on from there.
                    listing = resource.get(namespace=namespace, field_selector=field_selector)
                    for item in listing.items:
                        message = violation(item.to_dict())
                        if message:
                            raise AssertionError(message)
                    version = listing.metadata.resourceVersion
                streams[index] = (resource, namespace, field_selector, version)
