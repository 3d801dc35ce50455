"""YAML for files people and other tools write: safe tags only, and limits that hold.

PyYAML's safe loader already refuses to build Python objects, but on its own it still

* lets aliases multiply a few lines into billions of nodes ("billion laughs"): anything that walks
  the result (a linter, a JSON dump) then spins forever;
* builds recursive structures from an alias inside its own anchor, which end in a RecursionError;
* recurses once per nesting level (a few thousand ``[`` overflow the stack);
* reports bad bytes as errors without a line.

:func:`compose` builds the node graph from the parser's events without recursion and refuses, with
the line, any of: nesting deeper than :data:`MAX_DEPTH`, an alias inside its own anchor, aliases
expanding to more than :data:`MAX_ALIAS_NODES` nodes (or ten times the document, if larger), a
tag other than YAML's plain types (``!!python/...`` above all), a document larger than
:data:`MAX_DOCUMENT_CHARS`, or a NUL or other control character. Errors are
:class:`yaml.MarkedYAMLError`, so callers report them as any other YAML error.

Depends on nothing in avctl: the spec loader and the inventory loader both use it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_DOCUMENT_CHARS", "YAMLLimitError", "compose", "compose_with"]

#: deepest nesting of lists and mappings: real inventories and specs stay below 10
MAX_DEPTH = 64
#: nodes that aliases may add (or 10x the nodes written, whichever is larger)
MAX_ALIAS_NODES = 1_000_000
#: characters in one document (a 10,000-device inventory is about 1 MB)
MAX_DOCUMENT_CHARS = 32 * 1024 * 1024
#: LibYAML when available: 10,000-device inventories load in a fraction of the pure-Python time
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp", "merge"))
_ALLOWED_TAGS = _SCALAR_TAGS | {_CORE + "seq", _CORE + "map"}
#: tags whose constructor can fail on a scalar that matched (2024-13-45) or was tagged by hand (!!int x)
_CHECKED_TAGS = frozenset(_CORE + t for t in ("int", "float", "bool", "null", "timestamp"))
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class YAMLLimitError(yaml.MarkedYAMLError):
    """The document breaks one of the limits above, or holds a tag avctl does not read."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _mark(text: str, index: int) -> yaml.Mark:
    line = text.count("\n", 0, index)
    return yaml.Mark("<yaml>", index, line, index - (text.rfind("\n", 0, index) + 1), None, 0)


def _check_text(text: str) -> None:
    if len(text) > MAX_DOCUMENT_CHARS:
        raise YAMLLimitError(f"the document is larger than {MAX_DOCUMENT_CHARS // (1024 * 1024)} MiB",
                             _mark(text, 0))
    bad = _CONTROL_RE.search(text)
    if bad:
        ch = bad.group()
        what = "a NUL byte" if ch == "\0" else f"the control character U+{ord(ch):04X}"
        raise YAMLLimitError(f"{what} (binary data?)", _mark(text, bad.start()))


def compose(text: str, loader_cls: Any = FAST_LOADER) -> yaml.Node | None:
    """The node graph of one YAML document (None if empty), within the limits above."""
    loader = loader_cls(text)
    try:
        return compose_with(loader, text)
    finally:
        loader.dispose()


@dataclass
class _Frame:
    node: yaml.CollectionNode
    anchor: str | None
    size: int = 1
    key: yaml.Node | None = None


def compose_with(loader: Any, text: str) -> yaml.Node | None:
    """:func:`compose` with a loader the caller constructs from afterwards (its own constructors)."""
    _check_text(text)
    try:
        return _Composer(loader).run()
    except yaml.MarkedYAMLError:
        raise
    except yaml.YAMLError as exc:  # reader errors carry a position, not a mark
        position = getattr(exc, "position", None)
        raise YAMLLimitError(str(exc).splitlines()[0], _mark(text, position or 0)) from None


def _check_scalar(node: yaml.ScalarNode) -> None:
    try:
        _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
    except (ValueError, OverflowError, yaml.YAMLError):
        kind = node.tag[len(_CORE):]
        raise YAMLLimitError(f"{node.value[:40]!r} is not a valid {'date' if kind == 'timestamp' else kind}"
                             + (" (quote it to keep it as text)" if kind == "timestamp" else ""),
                             node.start_mark) from None


def _marks(event: Any) -> tuple[Any, Any]:
    """An event's marks (LibYAML's and PyYAML's Mark classes differ only in type)."""
    return event.start_mark, event.end_mark


class _Composer:
    """yaml.composer.Composer without recursion, counting depth and alias expansion as it goes."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, yaml.Node] = {}
        self.sizes: dict[int, int] = {}  # id(node) -> nodes it stands for once aliases are expanded
        self.open: set[str] = set()  # anchors of collections still being composed
        self.stack: list[_Frame] = []
        self.written = 0  # nodes in the text
        self.expanded = 0  # nodes that aliases add
        self.root: yaml.Node | None = None

    def run(self) -> yaml.Node | None:
        ld = self.loader
        ld.get_event()  # StreamStart
        if ld.check_event(yaml.StreamEndEvent):
            ld.get_event()
            return None
        ld.get_event()  # DocumentStart
        while not ld.check_event(yaml.DocumentEndEvent):
            self.step(ld.get_event())
        ld.get_event()
        if not ld.check_event(yaml.StreamEndEvent):
            event = ld.get_event()
            raise YAMLLimitError("expected one document, found another ('---')", event.start_mark)
        ld.get_event()
        return self.root

    def step(self, event: Any) -> None:
        if isinstance(event, yaml.AliasEvent):
            self.alias(event)
        elif isinstance(event, yaml.ScalarEvent):
            tag = self.tag(event, yaml.ScalarNode, event.value)
            start, end = _marks(event)
            node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
            if tag in _CHECKED_TAGS and (tag == _CORE + "timestamp" or event.tag not in (None, "!")):
                _check_scalar(node)
            self.written += 1
            self.sizes[id(node)] = 1
            self.anchor(event, node)
            self.add(node, 1)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            seq = isinstance(event, yaml.SequenceStartEvent)
            tag = self.tag(event, yaml.SequenceNode if seq else yaml.MappingNode, None)
            kind = yaml.SequenceNode if seq else yaml.MappingNode
            coll = kind(tag, [], _marks(event)[0], None, flow_style=event.flow_style)
            if len(self.stack) >= MAX_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            self.written += 1
            self.anchor(event, coll)
            if event.anchor is not None:
                self.open.add(event.anchor)
            self.stack.append(_Frame(coll, event.anchor))
        else:  # SequenceEnd / MappingEnd
            frame = self.stack.pop()
            frame.node.end_mark = event.end_mark
            if frame.anchor is not None:
                self.open.discard(frame.anchor)
            self.sizes[id(frame.node)] = frame.size
            self.add(frame.node, frame.size)

    def tag(self, event: Any, kind: type[yaml.Node], value: str | None) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, value, event.implicit)
        if tag in _ALLOWED_TAGS and (tag in _SCALAR_TAGS) != (kind is yaml.ScalarNode):
            what = "a single value" if tag in _SCALAR_TAGS else tag[len(_CORE):]
            raise YAMLLimitError(f"tag '!!{tag[len(_CORE):]}' needs {what} here", event.start_mark)
        if tag not in _ALLOWED_TAGS:
            shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
            raise YAMLLimitError(f"tag {shown[:60]!r} is not allowed: avctl reads plain YAML "
                                 "(strings, numbers, booleans, lists, mappings) only", event.start_mark)
        return str(tag)

    def anchor(self, event: Any, node: yaml.Node) -> None:
        if event.anchor is not None:
            self.anchors[event.anchor] = node

    def alias(self, event: yaml.AliasEvent) -> None:
        name = event.anchor
        if name in self.open:
            raise YAMLLimitError(f"alias *{name} refers to its own anchor (a recursive structure)",
                                 event.start_mark)
        node = self.anchors.get(name) if name is not None else None
        if node is None:
            raise YAMLLimitError(f"alias *{name} has no anchor &{name} before it", event.start_mark)
        size = self.sizes[id(node)]
        self.expanded += size
        if self.expanded > max(MAX_ALIAS_NODES, 10 * self.written):
            raise YAMLLimitError(f"aliases expand to more than {max(MAX_ALIAS_NODES, 10 * self.written):,} "
                                 "nodes (a 'billion laughs' document?)", event.start_mark)
        self.add(node, size)

    def add(self, node: yaml.Node, size: int) -> None:
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        frame.size += size
        if isinstance(frame.node, yaml.SequenceNode):
            frame.node.value.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            frame.node.value.append((frame.key, node))
            frame.key = None


def write_yaml(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as block-style YAML atomically: readers see the old file or the new one, never
    half of it (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(doc), fh, sort_keys=False, default_flow_style=False, allow_unicode=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
