"""Literal secrets in a rules file's text: hidden from the dashboard's editor, kept on save.

The rules loader reads two channel fields as secrets (`avctl.server.alerts.rules`): ``url``
(webhook, slack, teams: the URL carries the token) and ``password`` (email). Written as a reference
(``env:``, ``file:``, ``secret:``, ``keyring:``) they are shown as they are; anything else under
such a key, anywhere in the document, is a literal secret: the editor shows the placeholder
``"<hidden secret #N>"`` in its place (`mask`), and a save puts the file's own secret back where the
placeholder was left (`unmask`).

A save is refused, with the line and what to do, when a placeholder was changed, copied, moved to
another key, or when the channel around a kept secret now sends it elsewhere (another host, port,
user, CA or encryption): the secret only ever goes where the file's author sent it. The file the
secrets come from is the one the editor read (the editor checks its digest), and nothing of a
secret is ever in a message: the messages name keys and lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from avctl.errors import UsageError
from avctl.fleet.credentials import CredentialRef
from avctl.safeyaml import YAMLLimitError
from avctl.safeyaml import compose as compose_yaml
from avctl.server.alerts.rules import RulesError

#: the keys whose values are secrets (a channel's webhook URL, an email channel's password)
SECRET_KEYS = frozenset({"url", "password"})
#: keys of a channel that decide where its secret goes: a kept secret requires them unchanged
DESTINATION_KEYS = ("host", "port", "ssl", "starttls", "allow_plaintext", "allow_http", "ca_file", "user")
PLACEHOLDER = '"<hidden secret #{n}>"'
_PLACEHOLDER_RE = re.compile(r"^<hidden secret #(\d{1,6})>$")
_MARKER = "hidden secret #"
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PROPERTIES_RE = re.compile(r"(?:[&!]\S*\s+)*")  # an anchor or a tag before a value
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"

#: (path, the values of its channel's destination keys)
Place = tuple[str, tuple[tuple[str, str | None], ...]]


@dataclass(frozen=True)
class Hidden:
    """One literal secret of a text: where it is, never shown."""

    number: int
    #: the first key path it is under ("channels.ops.url") and its line, for messages
    key: str
    line: int
    #: every path it is used at (an alias may use it twice), with its channel's destination
    places: frozenset[Place]
    #: where its value (without anchor or tag) is in the text, and that text
    start: int
    end: int
    source: str = ""
    tag: str = ""
    value: str = ""
    #: quoted ('"' or "'") or plain (""); and whether its mapping is block style (not {...})
    style: str = ""
    block: bool = True

    def __repr__(self) -> str:
        return f"Hidden(#{self.number} {self.key} line {self.line})"


@dataclass(frozen=True)
class Masked:
    text: str
    hidden: tuple[Hidden, ...]


def is_reference(node: yaml.Node) -> bool:
    """A secret written as a reference (or nothing): shown as it is."""
    if not isinstance(node, yaml.ScalarNode):
        return False
    if node.tag == _NULL:
        return True
    if node.tag != _STR or _URL_RE.match(node.value):
        return False
    try:
        return not CredentialRef.parse(node.value).is_plaintext
    except UsageError:
        return False


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        return compose_yaml(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem if isinstance(e, YAMLLimitError) else f"not valid YAML: {e.problem or e.context}"
        if " is not a valid " in str(problem):  # the value quoted: maybe a secret's
            problem = "a value is not valid for its type (quote it to keep it as text)"
        raise RulesError(str(problem), file=file, line=mark.line + 1 if mark else None) from None


@dataclass
class _Use:
    node: yaml.Node
    paths: list[Place]
    secret: bool = False


def _scalar_text(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None if node is None else "(not a value)"


def _uses(root: yaml.Node | None) -> dict[int, _Use]:
    """Every node by id, with the paths it is used at; values under a secret key that are not
    references are marked secret."""
    out: dict[int, _Use] = {}
    todo: list[tuple[yaml.Node, str, yaml.MappingNode | None, str]] = [] if root is None else [(root, "", None, "")]
    while todo:
        node, path, parent, key = todo.pop()
        place: Place = (path, ())
        if parent is not None and key in SECRET_KEYS:
            fields = {str(k.value): v for k, v in parent.value if isinstance(k, yaml.ScalarNode)}
            place = (path, tuple((name, _scalar_text(fields.get(name))) for name in DESTINATION_KEYS))
        use = out.setdefault(id(node), _Use(node, []))
        use.paths.append(place)
        if parent is not None and key in SECRET_KEYS and not is_reference(node):
            use.secret = True
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                todo.append((v, f"{path}.{name}" if path else name, node, name))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((v, f"{path}[{i}]", None, "") for i, v in enumerate(node.value))
    return out


def _span(text: str, node: yaml.Node) -> tuple[int, int]:
    """Where the node's value is: after its anchor or tag, before a block scalar's last line breaks."""
    start, end = node.start_mark.index, node.end_mark.index
    properties = _PROPERTIES_RE.match(text, start, end)
    start = properties.end() if properties else start
    while end > start and text[end - 1] == "\n":
        end -= 1
    return start, end


def find_hidden(text: str, file: str = "<rules>") -> tuple[Hidden, ...]:
    """The literal secrets of `text`, numbered from 1 in the order they are written. RulesError (with
    the line) if it is not YAML: its secrets cannot be told apart then."""
    uses = sorted((u for u in _uses(_compose(text, file)).values() if u.secret), key=lambda u: u.node.start_mark.index)
    out = []
    for n, use in enumerate(uses, start=1):
        node = use.node
        start, end = _span(text, node)
        value, style = (str(node.value), node.style or "") if isinstance(node, yaml.ScalarNode) else ("", "?")
        out.append(Hidden(n, min(p for p, _ in use.paths), node.start_mark.line + 1, frozenset(use.paths), start, end,
                          source=text[start:end], tag=str(node.tag), value=value, style=style,
                          block=_in_block(text, start)))
    return tuple(out)


def _in_block(text: str, index: int) -> bool:
    """Whether the value at `index` is a block mapping's value (``key: value`` on its own line), not
    inside ``{...}`` or ``[...]``: a plain value reads the same only in the same context."""
    line = text[text.rfind("\n", 0, index) + 1:index]
    return re.fullmatch(r"\s*(?:-\s+)*[^{}\[\],#]+:\s*(?:[&!]\S*\s+)*", line) is not None


def mask(text: str, file: str = "<rules>") -> Masked:
    """`text` with each literal secret replaced by its placeholder."""
    hidden = find_hidden(text, file)
    out = text
    for h in reversed(hidden):
        out = out[:h.start] + PLACEHOLDER.format(n=h.number) + out[h.end:]
    return Masked(out, hidden)


def _placeholders(text: str, file: str) -> Iterator[tuple[int, _Use]]:
    for use in _uses(_compose(text, file)).values():
        node = use.node
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            m = _PLACEHOLDER_RE.match(node.value)
            if m:
                yield int(m.group(1)), use


def unmask(original: str, submitted: str, file: str = "<rules>") -> tuple[str, tuple[Hidden, ...]]:
    """`submitted` (an edit of ``mask(original)``) with the secrets of `original` back at their
    placeholders; and the secrets kept, as found in the result. RulesError when a placeholder was
    changed, copied or moved, or its channel's destination changed: nothing is kept then."""
    try:
        hidden = {h.number: h for h in find_hidden(original, file)}
    except RulesError as e:  # never written over unseen: the editor could not show it
        raise RulesError(f"the rules file on disk is not read as YAML ({e.message}): it is not replaced from here",
                         hint="fix it on the server; the rules in force stay until it is read again") from None
    if _MARKER not in submitted:
        return submitted, ()
    found = sorted(_placeholders(submitted, file), key=lambda p: p[1].node.start_mark.index)
    seen: dict[int, int] = {}
    for number, use in found:
        line = use.node.start_mark.line + 1
        h = hidden.get(number)
        if h is None:
            raise RulesError(f"there is no hidden secret #{number} in the rules file", file=file, line=line,
                             hint="write the secret itself or, better, a reference (secret:NAME, env:VAR)")
        if number in seen:
            raise RulesError(f"hidden secret #{number} ({h.key}) is used twice (first at line {seen[number]})",
                             file=file, line=line, hint="a kept secret stays where it was: remove the copy")
        seen[number] = line
        if {p for p, _ in use.paths} != {p for p, _ in h.places}:
            raise RulesError(f"hidden secret #{number} was moved: it was {h.key} (line {h.line})", file=file,
                             line=line, hint=f"put {PLACEHOLDER.format(n=number)} back at {h.key}, or write a "
                                             "reference there (secret:NAME, env:VAR)")
        changed = _changed(use.paths, h.places)
        if changed:
            raise RulesError(f"{h.key.rsplit('.', 1)[0]}: {', '.join(changed)} changed while the hidden secret "
                             f"#{number} is kept (it would go somewhere else)", file=file, line=line,
                             hint=f"a kept secret only goes where it went: type it again at {h.key} or, better, "
                                  "write a reference (secret:NAME, env:VAR)")
    if submitted.count(_MARKER) != len(found):
        stray = _stray(submitted, found)
        raise RulesError("a hidden secret's placeholder was changed or copied into other text", file=file,
                         line=stray, hint='leave each "<hidden secret #N>" as shown to keep that secret, or '
                                          "replace it whole with a reference (secret:NAME, env:VAR)")
    return _restore(submitted, [(hidden[n], use.node) for n, use in found], file)


def _changed(now: list[Place], was: frozenset[Place]) -> list[str]:
    """The destination keys that differ between the same paths' places."""
    before = {path: dict(fields) for path, fields in was}
    return sorted({name for path, fields in now for name, value in fields if before[path].get(name) != value})


def _stray(text: str, found: list[tuple[int, _Use]]) -> int:
    """The line of the first marker that is not a whole placeholder."""
    spans = [(u.node.start_mark.index, u.node.end_mark.index) for _, u in found]
    at = 0
    while (at := text.find(_MARKER, at)) >= 0:
        if not any(a <= at < b for a, b in spans):
            break
        at += 1
    return text.count("\n", 0, max(at, 0)) + 1


def _restore(text: str, kept: list[tuple[Hidden, yaml.Node]], file: str) -> tuple[str, tuple[Hidden, ...]]:
    out = text
    for h, node in sorted(kept, key=lambda k: k[1].start_mark.index, reverse=True):
        start, end = _span(out, node)
        same_context = h.style in ('"', "'") or (h.block and _in_block(out, start))
        value = h.source if "\n" not in h.source and same_context else json.dumps(h.value, ensure_ascii=False)
        out = out[:start] + value + out[end:]
    # what is read back must be the secret, at its key: never anything else
    now = {p: use for use in _uses(_compose(out, file)).values() for p, _ in use.paths}
    result = []
    for h, _ in kept:
        use = now.get(h.key)
        back = use.node if use is not None else None
        if not isinstance(back, yaml.ScalarNode) or (back.tag, back.value) != (h.tag, h.value) or h.style == "?":
            raise RulesError(f"the hidden secret #{h.number} cannot be kept at {h.key} as the file is now written",
                             file=file, line=back.start_mark.line + 1 if back is not None else None,
                             hint="type the secret again there or, better, write a reference (secret:NAME)")
        result.append(Hidden(h.number, h.key, back.start_mark.line + 1, h.places, 0, 0))
    return out, tuple(result)
