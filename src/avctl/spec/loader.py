"""Read a spec file (front matter + Markdown sections holding YAML blocks) into the typed model.

Two readers share one path: avctl's own specs must be precise (an error is an error), while the
public AI4AV catalog is loose and is loaded best effort: every problem becomes an `Issue` with the
file and line, and only a file that cannot be read at all has no spec.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from avctl.errors import SpecError, ValidationError
from avctl.spec.diskcache import default_cache
from avctl.spec.model import (
    ACCESS_MODES,
    APPLIES,
    FEEDBACK_POLL,
    PARAM_TYPES,
    VARIABLE_TYPES,
    WIRES,
    Action,
    AltRoute,
    Feedback,
    ForEach,
    Macro,
    MacroStep,
    Param,
    Spec,
    Transport,
    Variable,
)
from avctl.spec.variables import schema_leaves, to_wire

if TYPE_CHECKING:  # imported on the first parse (see _loaders)
    import yaml

Severity = Literal["error", "warning"]

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
BODY_KINDS = {"json", "value", "form", "binary", "multipart", "none"}
RESPONSE_KINDS = {"json", "file", "text", "none"}
LOCATIONS = {"path", "query", "body", "header"}
KNOWN_SECTIONS = (
    "Summary",
    "Transport",
    "Traits",
    "Actions",
    "Feedbacks",
    "Variables",
    "Events",
    "Macros",
    "Safety",
    "Notes",
    "Provenance",
    "Verification Summary",
    "Known Gaps",
)
#: required by the public format (ai4av-sample/spec-format-v1.md); `source_urls` is optional there
PUBLIC_FIELDS = (
    "schema_version", "device_id", "entity_id", "spec_id", "revision", "author", "title", "status",
    "manufacturer", "manufacturer_key", "model_family", "aliases", "compatible_with", "source_domains",
    "retrieved_at", "last_checked_at", "generator", "generated_at", "firmware_coverage", "protocol_coverage",
    "known_gaps", "declared_confidence", "verification", "license", "created_at",
)
REQUIRED_SECTIONS = ("Summary", "Transport", "Traits", "Actions", "Safety", "Notes", "Provenance",
                     "Verification Summary", "Known Gaps")
_YAML_SECTIONS = ("Transport", "Traits", "Actions", "Feedbacks", "Variables", "Events", "Macros", "Safety")
TYPE_ALIASES = {"float": "number", "long": "integer", "int": "integer", "bool": "boolean", "str": "string"}
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class Issue:
    severity: Severity
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


@dataclass
class LoadResult:
    spec: Spec | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


class _LineDict(dict[str, Any]):
    line: int = 0


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict(loader.construct_pairs(node, deep=True))
    result.line = node.start_mark.line + 1
    return result


@functools.cache
def _loaders() -> tuple[Any, Any]:
    """(fastest loader, PyYAML's loader): SafeLoaders that remember the line each mapping starts on
    (for lint messages). Made on the first parse: a spec from the cache needs no `import yaml`.

    The fast one runs on LibYAML's parser when PyYAML has it (4x faster on the built-in specs; its
    marks carry the same lines): events from C, composed under avctl's limits (avctl.safeyaml) and
    constructed in Python, as PyYAML's are.
    """
    import yaml

    from avctl.safeyaml import FAST_LOADER

    pure: Any = type("_LineLoader", (yaml.SafeLoader,), {})
    pure.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    if FAST_LOADER is yaml.SafeLoader:
        return pure, pure
    fast: Any = type("_FastLineLoader", (FAST_LOADER,), {})
    fast.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return fast, pure


def _load_yaml(text: str) -> Any:
    """One YAML document within avctl's limits (see avctl.safeyaml), with line-numbered mappings."""
    import yaml

    from avctl.safeyaml import YAMLLimitError

    fast, pure = _loaders()
    try:
        return _load_with(fast, text)
    except YAMLLimitError:
        raise
    except yaml.YAMLError:
        if fast is pure:
            raise
    # LibYAML words syntax errors its own way: PyYAML has the last word on a document LibYAML
    # refuses, so messages do not depend on whether LibYAML is installed
    return _load_with(pure, text)


def _load_with(loader_cls: Any, text: str) -> Any:
    from avctl.safeyaml import compose_with

    loader = loader_cls(text)
    try:
        node = compose_with(loader, text)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


@dataclass
class _Block:
    value: Any
    line: int  # file line of the block's first YAML line


class _Reader:
    def __init__(self, path: Path, strict: bool) -> None:
        self.path = path
        self.file = str(path)
        self.strict = strict
        self.issues: list[Issue] = []
        self.text_commands = 0
        self.section_names: list[str] = []
        self.loose_actions: set[str] = set()
        self.sources: list[Path] = []  # files read besides the spec (schema_ref): the cache checks them

    # -- reporting --
    def problem(self, line: int, message: str, *, precise: bool = True) -> None:
        """A defect: an error in a precise spec, a warning in a loose catalog spec."""
        severity: Severity = "error" if (self.strict or not precise) else "warning"
        self.issues.append(Issue(severity, self.file, line, message))

    def error(self, line: int, message: str) -> None:
        self.issues.append(Issue("error", self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.issues.append(Issue("warning", self.file, line, message))

    # -- text structure --
    def split(self, text: str) -> tuple[dict[str, Any], dict[str, _Block]]:
        lines = text.splitlines()
        meta: dict[str, Any] = {}
        start = 0
        if lines and lines[0].strip() == "---":
            try:
                end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
            except StopIteration:
                self.error(1, "front matter opened with '---' is never closed")
                end = 0
            if end:
                meta = self.parse_yaml("\n".join(lines[1:end]), 2, "front matter") or {}
                if not isinstance(meta, dict):
                    self.error(2, "front matter is not a mapping")
                    meta = {}
                start = end + 1
        else:
            self.warn(1, "no YAML front matter ('---' block) at the top of the file")
        sections = self._sections(lines, start)
        return meta, sections

    def _sections(self, lines: list[str], start: int) -> dict[str, _Block]:
        headings = [
            (i, line[3:].strip()) for i, line in enumerate(lines) if i >= start and line.startswith("## ")
        ]
        loose = False
        if not headings:
            # Flattened exports (seed 001) lose the Markdown: section names stand alone on a line.
            headings = [
                (i, line.strip())
                for i, line in enumerate(lines)
                if i >= start and line.strip() in KNOWN_SECTIONS
            ]
            loose = bool(headings)
            if loose:
                self.warn(headings[0][0] + 1, "no '## ' headings: sections found by name (flattened export)")
        sections: dict[str, _Block] = {}
        self.section_names = [name for _, name in headings]
        for n, (i, name) in enumerate(headings):
            stop = headings[n + 1][0] if n + 1 < len(headings) else len(lines)
            body = lines[i + 1 : stop]
            if loose and name not in _YAML_SECTIONS:
                continue
            block = self._yaml_block(body, i + 2, loose)
            if block is not None:
                sections[name] = block
        return sections

    def _yaml_block(self, body: list[str], first_line: int, loose: bool) -> _Block | None:
        fence_start = next((k for k, t in enumerate(body) if t.strip().startswith("```yaml")), None)
        if fence_start is None:
            if not loose:
                return None
            text, offset = "\n".join(_reindent_flattened(body)), first_line
        else:
            fence_end = next(
                (k for k in range(fence_start + 1, len(body)) if body[k].strip().startswith("```")), len(body)
            )
            text = "\n".join(body[fence_start + 1 : fence_end])
            offset = first_line + fence_start + 1
        value = self.parse_yaml(text, offset, "section", quiet=True)
        if value is _BROKEN:
            value = self._parse_items(text, offset)
        return _Block(value, offset)

    def _parse_items(self, text: str, offset: int) -> Any:
        """A block that does not parse as a whole: keep every top-level list item that does."""
        lines = text.splitlines()
        starts = [i for i, t in enumerate(lines) if t.startswith("- ")]
        if not starts:
            return self.parse_yaml(text, offset, "section")
        items: list[Any] = []
        for n, i in enumerate(starts):
            stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
            value = self.parse_yaml("\n".join(lines[i:stop]), offset + i, "list item")
            if isinstance(value, list):
                items.extend(value)
        return items

    def parse_yaml(self, text: str, offset: int, what: str, *, quiet: bool = False) -> Any:
        import yaml

        from avctl.safeyaml import YAMLLimitError

        try:
            value = _load_yaml(text)
        except YAMLLimitError as exc:
            # a limit (aliases, depth, tags, bytes) is not a loose-catalog quirk to recover from
            line = offset + (exc.problem_mark.line if exc.problem_mark else 0)
            self.error(line, f"{what}: {exc.problem}")
            return None
        except yaml.YAMLError as exc:
            if quiet:
                return _BROKEN
            mark = getattr(exc, "problem_mark", None)
            line = offset + (mark.line if mark else 0)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.error(line, f"{what}: YAML does not parse: {problem}")
            return None
        _shift_lines(value, offset - 1)
        return value


_BROKEN = object()
_ACTION_KEYS = {"id", "label", "kind", "method", "path", "params", "path_params", "query_schema", "body_schema",
                "body", "response", "success", "safety", "description", "command", "query_command", "notes"}
_ACTION_KEYS |= {"type", "fields", "values", "from", "transform", "steps", "settable_via", "poll"}  # feedbacks, macros
_STRUCT_KEYS = {"id", "label", "kind", "method", "path", "params", "path_params", "query_schema", "body_schema",
                "body", "response", "success", "safety", "command", "query_command"}
_TOP_KEYS = {"protocols", "addressing", "auth", "port", "ports", "max_body_bytes", "serial_requests",
             "max_response_bytes", "max_download_bytes",
             "confirmation_required_for", "interlocks"}
_KEY_RE = re.compile(r"^([A-Za-z_][\w.-]*):(\s|$)")


def _reindent_flattened(lines: list[str]) -> list[str]:
    """Rebuild the indentation a flattened export lost (seed 001): best effort, one level of nesting.

    `- id:` starts an item; known action keys sit at item level; other `key: value` lines belong to
    the last key that had no value (body_schema, query_schema); `- name:` lines open path_params
    entries whose `type:`/`description:` follow. Lines that already have indentation are kept.
    """
    if any(line.startswith((" ", "\t")) for line in lines if line.strip()):
        return lines
    first = next((line.strip() for line in lines if line.strip() and not line.startswith("#")), "")
    if first and not first.startswith("- "):
        # a mapping section (Transport, Safety): known top keys at the left, the rest one level in
        return [line.strip() if ((m := _KEY_RE.match(line.strip())) and m.group(1) in _TOP_KEYS)
                or not line.strip() or line.startswith("#") else "  " + line.strip() for line in lines]
    out: list[str] = []
    nested_list = False  # inside path_params / params entries
    nested_map = False  # inside body_schema / query_schema
    for line in lines:
        stripped = line.strip()
        m = _KEY_RE.match(stripped)
        key = m.group(1) if m else None
        if stripped.startswith("- id:") or not stripped or stripped.startswith("#"):
            nested_list = nested_map = False
            out.append(stripped)
        elif stripped.startswith("- "):
            nested_list, nested_map = True, False
            out.append("    " + stripped)
        elif key in _STRUCT_KEYS or (key in _ACTION_KEYS and not nested_list and not nested_map):
            nested_list = False
            nested_map = stripped.rstrip().endswith(":") and key not in ("path_params", "params")
            out.append("  " + stripped)
        else:
            out.append(("      " if nested_list else "    ") + stripped)
    return out


def _shift_lines(value: Any, by: int) -> None:
    if isinstance(value, _LineDict):
        value.line += by
        for v in value.values():
            _shift_lines(v, by)
    elif isinstance(value, list):
        for v in value:
            _shift_lines(v, by)


def _line(obj: Any, default: int) -> int:
    return obj.line if isinstance(obj, _LineDict) and obj.line else default


# --- sections --------------------------------------------------------------------------------


def _transport(r: _Reader, block: _Block | None) -> Transport:
    if block is None or not isinstance(block.value, dict):
        r.problem(block.line if block else 1, "no Transport section with a YAML mapping")
        return Transport()
    t = block.value
    protocols = t.get("protocols") or ["https"]
    if isinstance(protocols, str):
        protocols = [protocols]
    protocols = [str(p).lower() for p in protocols]
    ports: dict[str, int] = {"https": 443, "http": 80}
    addressing: dict[str, Any] = t["addressing"] if isinstance(t.get("addressing"), dict) else {}
    port = t.get("port", addressing.get("port"))
    if isinstance(port, int):
        ports[protocols[0]] = port
    if isinstance(t.get("ports"), dict):
        ports.update({str(k): int(v) for k, v in t["ports"].items()})
    auth = t.get("auth")
    auth_type = "none"
    default_user = None
    if isinstance(auth, dict):
        auth_type = str(auth.get("type", "none"))
        default_user = auth.get("default_user")
    elif isinstance(auth, str):
        auth_type = auth
    max_body = t.get("max_body_bytes")
    caps = {key: _byte_cap(r, block.line, t, key) for key in ("max_response_bytes", "max_download_bytes")}
    return Transport(
        protocols=tuple(protocols),
        ports=ports,
        auth_type=auth_type,
        default_user=str(default_user) if default_user else None,
        base_url=str(addressing.get("base_url", "")),
        max_body_bytes=int(max_body) if isinstance(max_body, int) else None,
        serial_requests=bool(t.get("serial_requests", False)),
        **{k: v for k, v in caps.items() if v is not None},
    )


def _byte_cap(r: _Reader, line: int, t: dict[str, Any], key: str) -> int | None:
    """A positive byte count, or None (the model's default) when absent or wrong (reported)."""
    value = t.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        r.problem(_line(t, line), f"Transport {key} must be a positive number of bytes, not {value!r}")
        return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _loose_params(r: _Reader, raw: dict[str, Any], action_id: str, line: int) -> list[dict[str, Any]]:
    """Catalog actions describe parameters as path_params / query_schema / body_schema."""
    out: list[dict[str, Any]] = []
    for p in raw.get("path_params") or []:
        if isinstance(p, dict):
            out.append({**p, "in": "path", "required": True})
    for key, where in (("query_schema", "query"), ("body_schema", "body")):
        schema = raw.get(key)
        if not isinstance(schema, dict):
            continue
        for pname, ptype in schema.items():
            if where == "body" and pname in {"boolean", "integer", "number", "string"}:
                out.append({"name": "value", "in": "body", "type": pname, "required": True})
                raw.setdefault("body", "value")
                continue
            if isinstance(ptype, dict):
                out.append({"name": pname, "in": where, "type": "object"})
            elif isinstance(ptype, str) and TYPE_ALIASES.get(ptype, ptype) in PARAM_TYPES:
                out.append({"name": pname, "in": where, "type": TYPE_ALIASES.get(ptype, ptype)})
            else:
                out.append(
                    {"name": pname, "in": where, "const": ptype}
                    if where == "body"
                    else {"name": pname, "in": where, "type": "string"}
                )
        r.loose_actions.add(action_id)
    return out


# --- actions and parameters: one row per key -----------------------------------------------------
#
# Each key of an action (ACTION_KEYS) and of a parameter (PARAM_KEYS) is a row: the key, its parser
# and the model field it fills (the key's name unless given). A parser gets the key's raw value
# (None when absent) and returns the field's value, reporting problems with the action's or the
# parameter's line. Rows run in order, and a parser may read the fields parsed before it (``body``
# needs ``params``). A new key is one row, a field on ``Action`` or ``Param`` and a test
# (docs/spec-format.md, "Adding a spec key").


@dataclass
class _KeyCtx:
    """What a key's parser sees: the reader, the raw mapping and the fields parsed so far."""

    r: _Reader
    raw: dict[str, Any]
    #: the action id, or the parameter name
    name: str
    #: how messages name the action or parameter: "action X" or "action X: parameter Y"
    what: str
    line: int
    spec_dir: Path
    fields: dict[str, Any] = field(default_factory=dict)
    #: the spec's actions (for keys that name one: read_via, write_via)
    actions: Mapping[str, Action] = field(default_factory=dict)

    def problem(self, message: str) -> None:
        self.r.problem(self.line, f"{self.what}: {message}")


KeyParser = Callable[[_KeyCtx, Any], Any]


class _Row(NamedTuple):
    key: str
    parse: KeyParser
    #: the model field filled (default: the key)
    field: str = ""
    #: the value parsed when the key is absent (a key written as null is parsed as null)
    default: Any = None


def _parse_keys(ctx: _KeyCtx, rows: Sequence[_Row]) -> dict[str, Any]:
    for row in rows:
        # read when the row runs: a parser before it may have filled the key in (loose params: body)
        value = ctx.raw.get(row.key, row.default)
        ctx.fields[row.field or row.key] = row.parse(ctx, value)
    return ctx.fields


_LOOSE_KEYS = ("path_params", "query_schema", "body_schema")
_RANGE_RE = re.compile(r"-?\d+(\.\d+)?\s*-\s*-?\d+(\.\d+)?")


def _text(ctx: _KeyCtx, value: Any) -> str:
    return str(value)


def _as_is(ctx: _KeyCtx, value: Any) -> Any:
    return value


def _flag(ctx: _KeyCtx, value: Any) -> bool:
    return bool(value)


def _choice(fallback: str, allowed: Collection[str], message: str) -> KeyParser:
    """A parser for a key with a fixed set of values (``fallback`` after a reported problem);
    ``message`` may name the {value!r}."""

    def parse(ctx: _KeyCtx, value: Any) -> str:
        text = str(value)
        if text not in allowed:
            ctx.problem(message.format(value=text))
            return fallback
        return text

    return parse


# -- parameter keys --


def _values(ctx: _KeyCtx, value: Any) -> tuple[Any, ...]:
    if value is not None and not isinstance(value, list):
        ctx.problem(f"values must be a list, not {value!r}")
        return ()
    return tuple(value or ())


def _types(ctx: _KeyCtx, value: Any) -> tuple[str, ...]:
    norm: list[str] = []
    for raw in value if isinstance(value, list) else [value]:
        t = TYPE_ALIASES.get(str(raw), str(raw))
        if t not in PARAM_TYPES:
            ctx.problem(f"unknown type {t!r} (one of {', '.join(PARAM_TYPES)})")
            t = "string"
        norm.append(t)
    if "enum" in norm and not ctx.fields["values"]:
        ctx.problem("enum without 'values'")
        norm = ["string"]
    return tuple(norm)


def _bound(key: str, alias: str, index: int) -> KeyParser:
    """``minimum`` (or ``min``) and ``maximum`` (or ``max``); a ``range`` ("0-100" or [0, 100])
    wins over both."""

    def parse(ctx: _KeyCtx, value: Any) -> float | None:
        bound = value if key in ctx.raw else ctx.raw.get(alias)
        rng = ctx.raw.get("range")
        if isinstance(rng, str) and _RANGE_RE.fullmatch(rng.strip()):
            bound = float(re.split(r"(?<=\d)\s*-\s*", rng.strip(), maxsplit=1)[index])
        elif isinstance(rng, list) and len(rng) == 2:
            bound = rng[index]
        return _number(bound)

    return parse


def _required(ctx: _KeyCtx, value: Any) -> bool:
    return bool(value) if "required" in ctx.raw else ctx.fields["location"] == "path"


def _schema(ctx: _KeyCtx, value: Any) -> Any:
    """An inline JSON schema, or one read from ``schema_ref`` (a file beside the spec)."""
    if "schema_ref" not in ctx.raw:
        return value
    ref = ctx.spec_dir / str(ctx.raw["schema_ref"])
    ctx.r.sources.append(ref)  # the spec cache checks it on every hit
    try:
        return json.loads(ref.read_text())
    except (OSError, ValueError) as exc:
        ctx.r.error(ctx.line, f"{ctx.what}: schema_ref {ref}: {exc}")
        return value


def _has(key: str) -> KeyParser:
    """True when ``key`` is written at all (``default: null`` is a default)."""
    return lambda ctx, value: key in ctx.raw


#: parameter key -> its parser and field, in the order problems are reported (``name`` and
#: ``wire`` are read first, by _param)
PARAM_KEYS: tuple[_Row, ...] = (
    _Row("values", _values),
    _Row("type", _types, "types", "string"),
    _Row("in", _choice("body", LOCATIONS, f"'in' must be one of {sorted(LOCATIONS)}"), "location", "body"),
    _Row("required", _required),
    _Row("minimum", _bound("minimum", "min", 0)),
    _Row("maximum", _bound("maximum", "max", 1)),
    _Row("pattern", _as_is),
    _Row("items", _as_is),
    _Row("schema", _schema),
    _Row("default", _as_is),
    _Row("default", _has("default"), "has_default"),
    _Row("const", _as_is),
    _Row("const", _has("const"), "has_const"),
    _Row("description", _text, default=""),
    _Row("content_type", _as_is),
    _Row("secret", _flag),
)


def _param(r: _Reader, raw: Any, action_id: str, line: int, spec_dir: Path) -> Param | None:
    if not isinstance(raw, dict) or "name" not in raw:
        r.problem(line, f"action {action_id}: a parameter must be a mapping with a 'name'")
        return None
    pline = _line(raw, line)
    name = str(raw["name"])
    wire = str(raw.get("wire", ""))
    if not ID_RE.match(name):
        # catalog names like 'context-id' become identifiers; the original stays the wire name
        fixed = re.sub(r"\W", "_", name)
        r.problem(
            pline,
            f"action {action_id}: parameter name {name!r} is not an identifier; "
            f"use name: {fixed} with wire: {name}",
        )
        wire, name = wire or name, fixed
    ctx = _KeyCtx(r, raw, name, f"action {action_id}: parameter {name}", pline, spec_dir)
    return Param(name=name, wire=wire, **_parse_keys(ctx, PARAM_KEYS))


# -- action keys --


def _method(ctx: _KeyCtx, value: Any) -> str:
    method = str(value).upper()
    if not method or not ctx.fields["path"]:
        if "command" in ctx.raw or "query_command" in ctx.raw:
            ctx.r.text_commands += 1
        else:
            ctx.problem("needs 'method' and 'path'")
    elif method not in HTTP_METHODS:
        ctx.problem(f"method {method!r} is not one of {sorted(HTTP_METHODS)}")
    return method


def _raw_params(ctx: _KeyCtx, value: Any) -> list[Any]:
    """The parameter mappings: ``params``, else the catalog's loose form (path_params, ...)."""
    if value is None:
        return _loose_params(ctx.r, ctx.raw, ctx.name, ctx.line)
    if not isinstance(value, list):
        ctx.problem("'params' must be a list")
        return []
    if value and any(k in ctx.raw for k in _LOOSE_KEYS):
        ctx.r.warn(ctx.line, f"{ctx.what}: both 'params' and loose *_schema keys; the schemas are ignored")
    return value


def _params(ctx: _KeyCtx, value: Any) -> tuple[Param, ...]:
    raw_params = _raw_params(ctx, value)
    params = [p for p in (_param(ctx.r, p, ctx.name, ctx.line, ctx.spec_dir) for p in raw_params) if p is not None]
    names = [p.name for p in params]
    for dup in {n for n in names if names.count(n) > 1}:
        ctx.problem(f"parameter {dup!r} is declared twice")
    params += _placeholder_params(ctx, params)
    placeholders = PLACEHOLDER_RE.findall(ctx.fields["path"])
    for p in params:
        if p.location == "path" and p.wire_name not in placeholders and ctx.fields["method"]:
            ctx.problem(f"path parameter {p.name} does not appear in {ctx.fields['path']}")
    return tuple(params)


def _placeholder_params(ctx: _KeyCtx, params: Sequence[Param]) -> list[Param]:
    """Check every ``{placeholder}`` of the path has an ``in: path`` parameter; one that has no
    parameter at all gets a required string (reported), so the action stays usable in a loose spec."""
    added = []
    for ph in PLACEHOLDER_RE.findall(ctx.fields["path"]):
        if any(p.wire_name == ph and p.location == "path" for p in params):
            continue
        if any(p.wire_name == ph for p in params):
            ctx.problem(f"{{{ph}}} in the path but the parameter is not 'in: path'")
        else:
            ctx.problem(f"path placeholder {{{ph}}} has no parameter")
            added.append(Param(name=re.sub(r"\W", "_", ph), wire=ph, location="path", types=("string",),
                               required=True))
    return added


def _body(ctx: _KeyCtx, value: Any) -> str:
    body_params = [p for p in ctx.fields["params"] if p.location == "body"]
    body = str(value) if "body" in ctx.raw else ("json" if body_params else "none")
    if body not in BODY_KINDS:
        ctx.problem(f"body must be one of {sorted(BODY_KINDS)}")
        body = "json"
    if body == "value" and len(body_params) != 1:
        ctx.problem(f"'body: value' needs exactly one body parameter, found {len(body_params)}")
    if body == "none" and body_params:
        ctx.problem("body parameters given but 'body: none'")
    return body


def _success(ctx: _KeyCtx, value: Any) -> frozenset[int]:
    statuses = value if isinstance(value, list) else [value]
    success = frozenset(int(s) for s in statuses if str(s).isdigit())
    if not success:
        ctx.problem("'success' must list HTTP statuses")
        return frozenset({200})
    return success


def _safety(ctx: _KeyCtx, value: Any) -> str | None:
    if value not in (None, "disruptive", "safe"):
        ctx.problem(f"safety must be 'disruptive' or absent, not {value!r}")
    return "disruptive" if value == "disruptive" else None


def _also_accepts(ctx: _KeyCtx, value: Any) -> tuple[AltRoute, ...]:
    alts: list[AltRoute] = []
    if value is not None and not isinstance(value, list):
        ctx.problem("also_accepts must be a list of {method, path}")
        return ()
    for alt in value or []:
        if isinstance(alt, dict) and alt.get("path"):
            alts.append(AltRoute(str(alt.get("method", ctx.fields["method"])).upper(), str(alt["path"])))
        else:
            ctx.r.problem(_line(alt, ctx.line), f"{ctx.what}: also_accepts entries need method and path")
    return tuple(alts)


def _label(ctx: _KeyCtx, value: Any) -> str:
    if "label" not in ctx.raw:
        ctx.problem("no 'label'")
    return str(value) if "label" in ctx.raw else ctx.name


def _int_or_none(ctx: _KeyCtx, value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: action key -> its parser, in the order problems are reported (``id`` is read first, by _action)
ACTION_KEYS: tuple[_Row, ...] = (
    _Row("path", _text, default=""),
    _Row("method", _method, default=""),
    _Row("kind", _choice("action", ("query", "action"), "kind must be 'query' or 'action', not {value!r}"),
         default="action"),
    _Row("params", _params),
    _Row("body", _body),
    _Row("response", _choice("json", RESPONSE_KINDS, f"response must be one of {sorted(RESPONSE_KINDS)}"),
         default="json"),
    _Row("success", _success, default=[200]),
    _Row("safety", _safety),
    _Row("also_accepts", _also_accepts),
    _Row("label", _label),
    _Row("description", _text, default=""),
    _Row("safety_note", _text, default=""),
    _Row("auth", _as_is),
    _Row("scheme", _as_is),
    _Row("port", _int_or_none),
)


def _action(r: _Reader, raw: Any, default_line: int, spec_dir: Path) -> Action | None:
    line = _line(raw, default_line)
    if not isinstance(raw, dict):
        r.problem(line, "an action must be a mapping")
        return None
    action_id = str(raw.get("id", ""))
    if not action_id:
        r.problem(line, "action without an 'id'", precise=False)
        return None
    if not ID_RE.match(action_id):
        r.problem(line, f"action id {action_id!r} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)")
    ctx = _KeyCtx(r, raw, action_id, f"action {action_id}", line, spec_dir)
    return Action(id=action_id, line=line, **_parse_keys(ctx, ACTION_KEYS))


# -- configuration variables (the catalogue) --

MAX_SCHEMA_BYTES = 4 * 1024 * 1024
#: the catalog's spellings of access (barco: read_write, read)
_ACCESS_ALIASES = {"read_write": "RW", "readwrite": "RW", "read": "RO", "readonly": "RO", "write": "WO",
                   "writeonly": "WO"}


def _var_type(ctx: _KeyCtx, value: Any) -> str:
    kind = TYPE_ALIASES.get(str(value), str(value)) if value is not None else "any"
    if kind not in VARIABLE_TYPES:
        ctx.problem(f"unknown type {kind!r} (one of {', '.join(VARIABLE_TYPES)})")
        return "any"
    if kind == "enum" and not ctx.fields["values"]:
        ctx.problem("enum without 'values'")
        return "any"
    return kind


def _access(ctx: _KeyCtx, value: Any) -> str:
    text = str(value)
    if not ctx.r.strict:
        text = _ACCESS_ALIASES.get(text.lower().replace("-", "_"), text.upper())
    if text not in ACCESS_MODES:
        ctx.problem(f"access must be one of {', '.join(ACCESS_MODES)}, not {text!r}")
        return "RW"
    return text


def _bool_key(key: str) -> KeyParser:
    def parse(ctx: _KeyCtx, value: Any) -> bool:
        if not isinstance(value, bool):
            ctx.problem(f"{key} must be true or false, not {value!r}")
            return False
        return value

    return parse


def _action_ref(ctx: _KeyCtx, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in ctx.actions:
        ctx.problem(f"unknown action {value!r}")
        return None
    return value


def _regex(ctx: _KeyCtx, value: Any) -> str | None:
    if value is None:
        return None
    try:
        re.compile(str(value))
    except re.error as exc:
        ctx.problem(f"pattern {value!r} is not a regular expression: {exc}")
        return None
    return str(value)


def _wire_text(ctx: _KeyCtx, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        ctx.problem(f"wire_true and wire_false must be strings, not {value!r}")
        return None
    return value


def _var_schema(ctx: _KeyCtx, value: Any) -> Any:
    """The JSON schema file `schema_ref` names, beside the spec (a mapping, or a reported problem)."""
    if value is None:
        return None
    if not isinstance(value, str) or Path(value).name != value or value in (".", ".."):
        # a spec may be anyone's (a catalog download): it names a file beside itself, nothing else
        ctx.problem(f"schema_ref must be the name of a file beside the spec, not {value!r}")
        return None
    ref = ctx.spec_dir / value
    ctx.r.sources.append(ref)  # the spec cache checks it on every hit
    try:
        if not ref.is_file() or ref.stat().st_size > MAX_SCHEMA_BYTES:
            raise OSError(f"not a regular file of at most {MAX_SCHEMA_BYTES} bytes")
        schema = json.loads(ref.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        ctx.problem(f"schema_ref {value}: {exc}")
        return None
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        ctx.problem(f"schema_ref {value}: not a JSON schema of an object with properties")
        return None
    return schema


#: variable key -> its parser and field, in the order problems are reported (``id`` is read first)
VARIABLE_KEYS: tuple[_Row, ...] = (
    _Row("values", _values),
    _Row("type", _var_type),
    _Row("access", _access, default="RW"),
    _Row("secret", _bool_key("secret"), default=False),
    _Row("applies", _choice("live", APPLIES, f"applies must be one of {', '.join(APPLIES)}, not {{value!r}}"),
         default="live"),
    _Row("read_via", _action_ref),
    _Row("write_via", _action_ref),
    _Row("minimum", _bound("minimum", "min", 0)),
    _Row("maximum", _bound("maximum", "max", 1)),
    _Row("pattern", _regex),
    _Row("wire", _choice("json", WIRES, f"wire must be one of {', '.join(WIRES)}, not {{value!r}}"),
         default="json"),
    _Row("wire_true", _wire_text),
    _Row("wire_false", _wire_text),
    _Row("default", _as_is),
    _Row("default", _has("default"), "has_default"),
    _Row("schema_ref", _as_is),
    _Row("schema_ref", _var_schema, "schema"),
    _Row("notes", _text, default=""),
)
_VARIABLE_FIELDS = {"id"} | {row.key for row in VARIABLE_KEYS}
_VARIABLE_ALIASES = {"min", "max", "range"}  # as parameters have them


def _variables(r: _Reader, block: _Block | None, actions: Mapping[str, Action],
               spec_dir: Path) -> tuple[Variable, ...]:
    """The ``## Variables`` entries. A loose catalog spec's entries are taken as far as they go and
    reported nowhere: its lint output is the catalog's, and nothing there is configured by avctl."""
    if block is None or block.value is None:
        return ()
    vr = r if r.strict else _Reader(r.path, strict=False)
    if not isinstance(block.value, list):
        vr.problem(block.line, "Variables must be a YAML list")
        return ()
    out: dict[str, Variable] = {}
    for raw in block.value:
        var = _variable(vr, raw, block.line, actions, spec_dir)
        if var is None:
            continue
        if var.id in out:
            vr.problem(var.line, f"variable {var.id!r} is declared twice (first at line {out[var.id].line})")
            continue
        out[var.id] = var
    variables = tuple(out.values())
    _check_schema_keys(vr, variables)
    if vr is not r:
        r.sources.extend(vr.sources)
    return variables


def _variable(r: _Reader, raw: Any, line: int, actions: Mapping[str, Action], spec_dir: Path) -> Variable | None:
    vline = _line(raw, line)
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        r.problem(vline, "a variable must be a mapping with an 'id'")
        return None
    ctx = _KeyCtx(r, raw, raw["id"], f"variable {raw['id']}", vline, spec_dir, actions=actions)
    for unknown in sorted(set(raw) - _VARIABLE_FIELDS - _VARIABLE_ALIASES) if r.strict else ():
        ctx.problem(f"unknown field {unknown!r} (one of {', '.join(sorted(_VARIABLE_FIELDS))})")
    fields = _parse_keys(ctx, VARIABLE_KEYS)
    if fields["type"] == "boolean" and fields["wire"] == "string" and None in (fields["wire_true"],
                                                                            fields["wire_false"]):
        ctx.problem("a boolean sent as a string needs wire_true and wire_false")
        fields["wire"] = "json"
    if fields["wire"] == "string" and fields["type"] in ("object", "array"):
        ctx.problem(f"an {fields['type']} has no string form: use wire: json")
        fields["wire"] = "json"
    if fields["access"] == "RO" and fields["write_via"]:
        ctx.problem("a read-only variable has no write_via")
    var = Variable(id=raw["id"], line=vline, **fields)
    if var.has_default:
        try:
            to_wire(var, var.default, "default")
        except ValidationError as exc:
            ctx.problem(exc.message)
    return var


def _check_schema_keys(r: _Reader, variables: Sequence[Variable]) -> None:
    """Entries under a schema_ref entry name keys of that schema: a typo would be a dead entry."""
    schemas = [(v, schema_leaves(v.schema)) for v in variables if v.schema is not None]
    for var in variables:
        for entry, leaves in schemas:
            if var is entry or not _covers(entry, var):
                continue
            found = any(fnmatch.fnmatchcase(k, var.id) for k in leaves) if var.is_pattern else var.id in leaves
            if not found:
                r.problem(var.line, f"variable {var.id}: no such key in {entry.schema_ref}")


def _covers(entry: Variable, var: Variable) -> bool:
    """`entry`'s pattern covers `var`'s id (a pattern covers the keys its literal part starts)."""
    probe = re.split(r"[*?\[]", var.id, maxsplit=1)[0] + ("x" if var.is_pattern else "")
    return fnmatch.fnmatchcase(probe, entry.id) if entry.is_pattern else entry.id == var.id


def _feedbacks(r: _Reader, block: _Block | None, actions: Mapping[str, Action]) -> tuple[Feedback, ...]:
    if block is None or not isinstance(block.value, list):
        return ()
    out = []
    for raw in block.value:
        line = _line(raw, block.line)
        if not isinstance(raw, dict) or "id" not in raw:
            r.problem(line, "a feedback must be a mapping with an 'id'", precise=False)
            continue
        src: dict[str, Any] = raw["from"] if isinstance(raw.get("from"), dict) else {}
        action = src.get("action")
        if action and action not in actions:
            r.problem(line, f"feedback {raw['id']}: unknown action {action!r}")
        poll = raw.get("poll", "every")
        if poll not in FEEDBACK_POLL:
            r.problem(line, f"feedback {raw['id']}: poll must be one of {', '.join(FEEDBACK_POLL)}, not {poll!r}")
            poll = "every"
        out.append(
            Feedback(
                id=str(raw["id"]),
                type=str(raw.get("type", "string")),
                action=action,
                pointer=str(src.get("pointer", "")),
                transform=raw.get("transform"),
                poll=poll,
            )
        )
    return tuple(out)


def _macros(r: _Reader, block: _Block | None, actions: Mapping[str, Action]) -> dict[str, Macro]:
    if block is None or not isinstance(block.value, list):
        return {}
    out = {}
    for raw in block.value:
        line = _line(raw, block.line)
        if not isinstance(raw, dict) or "id" not in raw:
            continue  # catalog macros are prose-like; nothing to run
        steps = []
        for step in raw.get("steps") or []:
            if isinstance(step, dict) and "action" in step:
                if step["action"] not in actions:
                    r.problem(line, f"macro {raw['id']}: unknown action {step['action']!r}")
                params = dict(step.get("params") or {})
                steps.append(MacroStep(str(step["action"]), params,
                                       _for_each(r, line, str(raw["id"]), step.get("for_each"), params, actions)))
        if steps:
            out[str(raw["id"])] = Macro(str(raw["id"]), str(raw.get("label", "")), tuple(steps))
    return out


def _for_each(r: _Reader, line: int, macro: str, raw: Any, params: Mapping[str, Any],
              actions: Mapping[str, Action]) -> ForEach | None:
    """A step's ``for_each: {action, pointer}``: the query whose answer (a list) the step repeats over."""
    uses_each = "$each" in params.values()
    if raw is None:
        if uses_each:
            r.problem(line, f"macro {macro}: $each needs a for_each")
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
        r.problem(line, f"macro {macro}: for_each must be a mapping with an 'action'")
        return None
    source = actions.get(raw["action"])
    if source is None or source.kind != "query" or any(p.required and not p.has_default for p in source.params):
        r.problem(line, f"macro {macro}: for_each needs a query without required parameters, "
                        f"not {raw['action']!r}")
    if not uses_each:
        r.problem(line, f"macro {macro}: a for_each step passes $each to one of its params")
    return ForEach(raw["action"], str(raw.get("pointer", "")))


def read_spec(path: str | Path, *, strict: bool | None = None) -> LoadResult:
    """Load a spec, collecting every problem. `strict` defaults to: the spec names a `family`.

    A spec read before comes from the on-disk cache (avctl.spec.diskcache) while its text is unchanged.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadResult(None, [Issue("error", str(path), 0, f"cannot read: {exc}")])
    cache = default_cache(_CACHED_TYPES)
    key = cache.key(path, text, strict) if cache else None
    cached = cache.get(key) if cache else None
    if isinstance(cached, LoadResult):
        return cached
    result, sources = _parse_spec(path, text, strict)
    if cache:
        cache.put(key, result, sources)
    return result


def _parse_spec(path: Path, text: str, strict: bool | None) -> tuple[LoadResult, list[Path]]:
    """The spec in `text` and the other files it read (schema_ref)."""
    probe = _Reader(path, strict=False)
    meta, sections = probe.split(text)
    is_strict = bool(meta.get("family")) if strict is None else strict
    r = _Reader(path, strict=is_strict)
    r.issues = list(probe.issues)
    transport = _transport(r, sections.get("Transport"))
    actions: dict[str, Action] = {}
    block = sections.get("Actions")
    if block is None or not isinstance(block.value, list):
        r.problem(block.line if block else 1, "no Actions section with a YAML list", precise=False)
    else:
        for raw in block.value:
            action = _action(r, raw, block.line, path.parent)
            if action is None:
                continue
            if action.id in actions:
                r.problem(
                    action.line,
                    f"action id {action.id!r} is used twice (first at line {actions[action.id].line})",
                )
                continue
            actions[action.id] = action
    if r.loose_actions:
        r.warn(block.line if block else 1, f"{len(r.loose_actions)} action(s) describe parameters in the loose "
               "catalog form (path_params/query_schema/body_schema): converted to typed params, best effort")
    if r.text_commands:
        r.warn(
            block.line if block else 1,
            f"{r.text_commands} action(s) are text-protocol commands, not "
            "HTTP actions: listed, not callable by avctl's HTTP client",
        )
    safety = sections.get("Safety")
    if safety is not None and isinstance(safety.value, dict):
        for action_id in safety.value.get("confirmation_required_for") or []:
            if isinstance(action_id, str) and action_id in actions:
                a = actions[action_id]
                if not a.disruptive:
                    actions[action_id] = _replace_safety(a)
            elif isinstance(action_id, str):
                r.problem(
                    safety.line, f"Safety: confirmation_required_for names unknown action {action_id!r}"
                )
    traits_block = sections.get("Traits")
    traits = (
        tuple(str(t) for t in traits_block.value)
        if traits_block and isinstance(traits_block.value, list)
        else ()
    )
    if is_strict:
        for required in ("spec_id", "schema_version", "title", "license"):
            if required not in meta:
                r.error(1, f"front matter lacks {required!r}")
    missing = [k for k in PUBLIC_FIELDS if k not in meta]
    if meta and missing:
        r.warn(1, f"front matter lacks public-format fields: {', '.join(missing)}")
    absent = [name for name in REQUIRED_SECTIONS if name not in probe.section_names]
    if absent:
        r.warn(1, f"missing required sections: {', '.join(absent)}")
    spec = Spec(
        id=str(meta.get("spec_id") or path.stem),
        title=str(meta.get("title") or path.stem),
        family=meta.get("family"),
        transport=transport,
        actions=actions,
        feedbacks=_feedbacks(r, sections.get("Feedbacks"), actions),
        macros=_macros(r, sections.get("Macros"), actions),
        traits=traits,
        variables=_variables(r, sections.get("Variables"), actions, path.parent),
        meta=meta,
        source=str(path),
    )
    return LoadResult(spec, r.issues), r.sources


#: the dataclasses a cached load result is made of (the cache builds these and nothing else)
_CACHED_TYPES = (LoadResult, Issue, Spec, Transport, Action, AltRoute, Param, Feedback, Macro, MacroStep,
                 ForEach, Variable)


def _replace_safety(a: Action) -> Action:
    from dataclasses import replace

    return replace(a, safety="disruptive")


def load_spec(path: str | Path) -> Spec:
    """Load a spec or raise SpecError naming the first error (file:line)."""
    result = read_spec(path)
    if result.spec is None or result.errors:
        first = result.errors[0] if result.errors else Issue("error", str(path), 0, "unreadable")
        more = len(result.errors) - 1
        raise SpecError(
            first.message,
            file=first.file,
            line=first.line,
            hint=f"{more} more error(s); run 'avctl spec lint {path}'" if more > 0 else None,
        )
    return result.spec
