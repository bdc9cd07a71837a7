"""The one place that decides whether a conformance test runs, is skipped, or fails unrun, and
what its result rests on.

A test requires its behaviour's features, the features its `requires` marker adds, and GPUs when
it carries the `gpu` marker. A place to run (a cluster, the local engine) offers features, names
its stand-ins, and says which compared quantities it made both sides of (circular). Missing
features skip the test with the reason, except GPUs under --require-gpu, which fail it; the
stand-ins for the components the behaviour rests on (scoped ones: only where the test involves
their objects) go with its result, and a forbidden one (--forbid-stand-in) fails it unrun; a check
whose compared quantity the place made is circular, never a plain pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pytest

from serving_conformance.base.features import Feature, Substitution
from serving_conformance.behaviours import Behaviour, Layer

MEANING = {
    Feature.SERVING: "pods that serve requests with a real vLLM",
    Feature.GATEWAY: "a Gateway API implementation that routes traffic",
    Feature.GPU: "a node with nvidia.com/gpu allocatable",
    Feature.ISTIO_API: "Istio's VirtualService API",
    Feature.KUBELET: "a real kubelet",
    Feature.POD_NETWORK: "pod addresses reachable from the runner",
    Feature.ENGINE_VERSION: "the expected vLLM version (a stand-in build of another version runs here)",
}


@dataclass(frozen=True)
class SelectionCrashed:
    """The parameter of the one case left where choosing what to judge crashed on the manifests:
    the gate fails it with this text (a crash is never a pass, and never stops collection)."""

    text: str

    def __repr__(self) -> str:
        return "SelectionCrashed()"


def selection_crash(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((p.text for p in params.values() if isinstance(p, SelectionCrashed)), None)


@dataclass(frozen=True)
class Place:
    """Where tests run, as the gate sees it."""

    name: str
    features: frozenset[str]
    substitutions: tuple[Substitution, ...] = ()
    # Compared quantities whose expected side this place made itself, and how.
    circular: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Needs:
    """What one test needs and rests on (from its behaviour and markers)."""

    features: frozenset[str] = frozenset()
    rests_on: frozenset[str] = frozenset()
    compares: frozenset[str] = frozenset()
    involves: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    skip: str | None = None
    fail: str | None = None
    substitutions: tuple[Substitution, ...] = field(default_factory=tuple)
    circular: tuple[str, ...] = ()


def behaviour_of(item: pytest.Item) -> Behaviour | None:
    marker = item.get_closest_marker("behaviour")
    return marker.args[0] if marker is not None and marker.args else None


def required_features(item: pytest.Item) -> frozenset[str]:
    behaviour = behaviour_of(item)
    required = set(behaviour.requires) if behaviour is not None else set()
    for marker in item.iter_markers("requires"):
        required.update(Feature(f) for f in marker.args)
    if item.get_closest_marker("gpu") is not None:
        required.add(Feature.GPU)
    return frozenset(str(f) for f in required)


# The objects (idents) a test involves (its workload, its resource, a split's backends): set at
# collection; a stand-in scoped to objects qualifies only the tests that involve them.
INVOLVED = pytest.StashKey[frozenset]()


def involved(item: pytest.Item) -> frozenset[str]:
    return item.stash.get(INVOLVED, frozenset())


# --forbid-stand-in's word for every kind, and for circular checks.
ALL_STAND_INS = "all"
CIRCULAR = "circular"


def decide(needs: Needs, place: Place, require_gpu: bool = False, forbidden: Iterable[str] = ()) -> Verdict:
    subs = tuple(s for s in place.substitutions if s.applies_to(needs.rests_on, needs.involves))
    circular = tuple(place.circular[c] for c in sorted(needs.compares) if c in place.circular)
    missing = sorted(needs.features - place.features)
    if missing:
        reason = f"{place.name} does not offer " + "; ".join(MEANING.get(Feature(m), m) for m in missing)
        if Feature.GPU in missing and require_gpu:
            return Verdict(fail=f"{reason}, and --require-gpu was given", substitutions=subs)
        return Verdict(skip=reason, substitutions=subs)
    forbidden = set(forbidden)
    refused = [s.sentence() for s in subs if s.subject in forbidden or ALL_STAND_INS in forbidden]
    if circular and (CIRCULAR in forbidden or ALL_STAND_INS in forbidden):
        refused += [f"circular: {why}" for why in circular]
    if refused:
        return Verdict(fail="rests on what --forbid-stand-in refuses: " + "; ".join(refused), substitutions=subs)
    return Verdict(substitutions=subs, circular=circular)


def needs_of(item: pytest.Item) -> Needs:
    behaviour = behaviour_of(item)
    compares = set(behaviour.compares) if behaviour is not None else set()
    for marker in item.iter_markers("compares"):
        compares.update(marker.args)
    return Needs(required_features(item), behaviour.rests_on if behaviour is not None else frozenset(),
                 frozenset(compares), involved(item))


def layer_of(item: pytest.Item) -> Layer | None:
    behaviour = behaviour_of(item)
    return behaviour.layer if behaviour is not None else None
