"""YAML of untrusted input, read in bounded time and memory.

PyYAML's composers (the C one and the Python one) build the node graph recursively and follow
no limit: 460 bytes of nested aliases expand to hundreds of millions of nodes once anything walks
the data, and 30,000 nested brackets overflow the C composer's stack (a segfault with libyaml
0.2.5) or take libyaml's scanner minutes. Here the parser's events (libyaml's when present; its
parser keeps explicit stacks) are composed into nodes with an explicit stack, and every document
is refused, with its line, as soon as it nests deeper than MAX_YAML_DEPTH (aliases followed), uses
more than MAX_YAML_ALIASES aliases, expands to more than MAX_YAML_NODES nodes, or refers to itself.
Nothing is constructed before the whole document has passed; construction of the node graph is
PyYAML's own (iterative for collections, aliased nodes built once and shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from serving_conformance.base.limits import (
    MAX_MANIFEST_BYTES,
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
)


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document goes past one of the bounds; `problem` says which, `problem_mark` where."""


@dataclass(slots=True)
class _Open:
    """A collection being composed: its node, expanded size and height (levels of collections,
    aliases followed) so far, a mapping's pending key, and its anchor (an alias to it before it
    ends would be a cycle)."""

    node: Node
    anchor: str | None
    mapping: bool
    size: int = 1
    height: int = 1
    key: Node | None = None
    keys: set | None = None  # a mapping's scalar keys so far (a duplicate is refused)


@dataclass(frozen=True, slots=True)
class _Done:
    node: Node
    size: int
    height: int


def _refuse(problem: str, event: Any) -> YAMLLimitError:
    return YAMLLimitError(None, None, problem, event.start_mark)


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping names a key twice: kubectl and kustomize refuse the file; PyYAML keeps the last."""


def _refuse_duplicate_key(parent: _Open, key: Node) -> None:
    if not isinstance(key, ScalarNode):
        return
    if parent.keys is None:
        parent.keys = set()
    seen = (key.tag, key.value)
    if seen in parent.keys:
        raise DuplicateKeyError(None, None, f"found duplicate key {key.value!r} (kubectl and kustomize refuse the "
                                "file; a YAML parser that takes the last value would judge another object)",
                                key.start_mark)
    parent.keys.add(seen)


class _BoundedComposer:
    """Replaces the composer of a PyYAML loader (put it first in the bases). One loop over the
    parser's events; counts are per loader, so per file."""

    _aliases = 0
    _expanded = 0

    def check_node(self) -> bool:
        if self.check_event(StreamStartEvent):
            self.get_event()
        return not self.check_event(StreamEndEvent)

    def get_node(self) -> Node | None:
        if not self.check_event(StreamEndEvent):
            return self._compose_document()
        return None

    def get_single_node(self) -> Node | None:
        self.get_event()  # stream start
        node = self.get_node()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise ComposerError("expected a single document in the stream", node.start_mark if node else None,
                                "but found another document", event.start_mark)
        self.get_event()
        return node

    def _compose_document(self) -> Node:  # noqa: C901 - one loop, kept together for speed
        start = self.get_event()
        assert isinstance(start, DocumentStartEvent)
        anchors: dict[str, _Open | _Done] = {}
        stack: list[_Open] = []
        get_event, resolve = self.get_event, self.resolve
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(ScalarNode, event.value, event.implicit)
                node: Node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                size, height = 1, 0
                self._count(1, event)
                if event.anchor is not None:
                    self._anchor(event, anchors, _Done(node, 1, 0))
            elif kind is AliasEvent:
                target = self._alias(event, anchors, len(stack))
                node, size, height = target.node, target.size, target.height
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                stack.append(self._open(event, len(stack) + 1, anchors))
                continue
            else:  # the end of the innermost collection
                closed = stack.pop()
                node, size, height = closed.node, closed.size, closed.height
                node.end_mark = event.end_mark
                if closed.anchor is not None:
                    anchors[closed.anchor] = _Done(node, size, height)
            if not stack:
                break
            parent = stack[-1]
            parent.size += size
            if height >= parent.height:
                parent.height = height + 1
            if not parent.mapping:
                parent.node.value.append(node)
            elif parent.key is None:
                parent.key = node
                _refuse_duplicate_key(parent, node)
            else:
                parent.node.value.append((parent.key, node))
                parent.key = None
        end = get_event()
        assert isinstance(end, DocumentEndEvent)
        return node

    def _count(self, nodes: int, event: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_YAML_NODES:
            if self._aliases:
                raise _refuse(f"expands to more than {MAX_YAML_NODES:,} nodes once its {self._aliases:,} alias(es) "
                              "are followed", event)
            raise _refuse(f"holds more than {MAX_YAML_NODES:,} nodes (split it into smaller files)", event)

    def _alias(self, event: AliasEvent, anchors: dict[str, _Open | _Done], depth: int) -> _Done:
        target = anchors.get(event.anchor)
        if target is None:
            raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
        if isinstance(target, _Open):
            raise _refuse(f"alias *{event.anchor} refers to a node that contains it", event)
        self._aliases += 1
        if self._aliases > MAX_YAML_ALIASES:
            raise _refuse(f"uses more than {MAX_YAML_ALIASES:,} aliases", event)
        if depth + target.height > MAX_YAML_DEPTH:
            raise _refuse(f"nests deeper than {MAX_YAML_DEPTH} levels (aliases followed)", event)
        self._count(target.size, event)
        return target

    def _open(self, event: SequenceStartEvent | MappingStartEvent, depth: int,
              anchors: dict[str, _Open | _Done]) -> _Open:
        if depth > MAX_YAML_DEPTH:
            raise _refuse(f"nests deeper than {MAX_YAML_DEPTH} levels", event)
        kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(kind, None, event.implicit)
        self._count(1, event)
        opened = _Open(kind(tag, [], event.start_mark, None, flow_style=event.flow_style), event.anchor,
                       kind is MappingNode)
        if event.anchor is not None:
            self._anchor(event, anchors, opened)
        return opened

    @staticmethod
    def _anchor(event: Any, anchors: dict[str, _Open | _Done], entry: _Open | _Done) -> None:
        if event.anchor in anchors:
            raise ComposerError("found duplicate anchor; first occurrence", anchors[event.anchor].node.start_mark,
                                "second occurrence", event.start_mark)
        anchors[event.anchor] = entry


if hasattr(yaml, "CSafeLoader"):  # libyaml's parser: several times faster on large manifest sets

    class _Loader(_BoundedComposer, yaml.CSafeLoader):  # type: ignore[misc]
        pass

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(_BoundedComposer, yaml.SafeLoader):  # type: ignore[no-redef]
        pass


def _check_size(text: str) -> None:
    if len(text) > MAX_MANIFEST_BYTES:
        mark = yaml.Mark("<text>", 0, 0, 0, None, None)
        raise YAMLLimitError(None, None, f"is longer than {MAX_MANIFEST_BYTES:,} characters", mark)


def parse_documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line, data) for each document; raises yaml.YAMLError with a mark (a
    YAMLLimitError for a document past the bounds)."""
    _check_size(text)
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node.start_mark.line + 1, loader.construct_document(node)
    finally:
        loader.dispose()


def load_single(text: str) -> Any:
    """The one document of `text` (None when empty), like yaml.safe_load but bounded."""
    _check_size(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
