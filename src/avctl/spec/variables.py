"""A spec's configuration catalogue: which keys a family has, their types, and their wire form.

The desired-state engine asks three things: does a key exist (`lookup`), is a value right for it
and how does it travel (`check_value`), and what does a full read return (`known_keys`). Keys
under a ``schema_ref`` entry are the schema's leaf paths, dotted (``sharing.airplay.enabled``): a
secret object of the schema (``$defs/secret``, read back as salt + hash) is one leaf, marked secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from avctl.errors import ValidationError
from avctl.spec.model import Spec, Variable

__all__ = ["applies", "check_value", "known_keys", "lookup", "schema_leaf", "schema_leaves", "to_wire"]

#: JSON Schema node of a leaf, keyed by dotted path
Leaves = Mapping[str, Mapping[str, Any]]
_MAX_DEPTH = 32  # a schema is ours, but a cycle of $refs must not hang a lookup


# --- schema leaves ------------------------------------------------------------------------------


def schema_leaves(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every leaf path of `schema` -> its node ($refs resolved). Objects with properties are walked;
    anything else (scalars, arrays, open maps, secrets) is a leaf. Where the schema allows several
    forms (``anyOf``), the first one is the stored form (a secret wins: it is one leaf)."""
    out: dict[str, Mapping[str, Any]] = {}
    _walk(schema, schema, "", out, 0)
    return out


def _walk(root: Mapping[str, Any], node: Mapping[str, Any], path: str, out: dict[str, Mapping[str, Any]],
          depth: int) -> None:
    node = _stored_form(root, node)
    props = node.get("properties")
    if isinstance(props, Mapping) and props and depth < _MAX_DEPTH and not _is_secret(root, node):
        for name, child in props.items():
            if isinstance(child, Mapping):
                _walk(root, child, f"{path}.{name}" if path else str(name), out, depth + 1)
        return
    if path:
        out[path] = node


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(_MAX_DEPTH):
        ref = node.get("$ref")
        if not (isinstance(ref, str) and ref.startswith("#/$defs/")):
            return node
        target = (root.get("$defs") or {}).get(ref.rsplit("/", 1)[1])
        if not isinstance(target, Mapping):
            return node
        node = {**target, "x-ref": ref}
    return node


def _stored_form(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    node = _resolve(root, node)
    alternatives = node.get("anyOf")
    if not isinstance(alternatives, list) or not alternatives or _is_secret(root, node):
        return node
    resolved = [_resolve(root, a) for a in alternatives if isinstance(a, Mapping)]
    secret = next((a for a in resolved if _is_secret(root, a)), None)
    return secret or (_stored_form(root, resolved[0]) if resolved else node)


def _is_secret(root: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The schema's secret object: written as {secret}, read back as {secret_salt, secret_hash}."""
    if node.get("x-ref") == "#/$defs/secret":
        return True
    forms = [_resolve(root, a) for a in node.get("anyOf") or [] if isinstance(a, Mapping)]
    return any("secret_hash" in (f.get("properties") or {}) for f in forms)


# --- lookups ------------------------------------------------------------------------------------


def _literal_prefix(pattern: str) -> int:
    return len(re.split(r"[*?\[]", pattern, maxsplit=1)[0])


class _Entries:
    """Entries by exact id, and patterns most specific first (longest literal part, then the
    first declared): the first pattern that matches is the one `lookup` takes."""

    def __init__(self, entries: list[Variable]) -> None:
        self.exact: dict[str, Variable] = {}
        for entry in entries:
            if not entry.is_pattern:
                self.exact.setdefault(entry.id, entry)
        self.patterns = sorted((e for e in entries if e.is_pattern), key=lambda e: -_literal_prefix(e.id))

    def best(self, key: str) -> Variable | None:
        exact = self.exact.get(key)
        if exact is not None:
            return exact
        return next((e for e in self.patterns if fnmatch.fnmatchcase(key, e.id)), None)


class _Index:
    """What lookups need of one spec, computed once: the schema walks and every key found."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec  # kept: the cache below is keyed by its identity
        self.entries = _Entries(list(spec.variables))
        self.schemas = _Entries([v for v in spec.variables if v.schema is not None])
        self.leaves = {id(v): schema_leaves(v.schema or {}) for v in spec.variables if v.schema is not None}
        #: keys found (bounded by the catalogue; a miss is not kept, so no caller can grow it)
        self.found: dict[str, Variable] = {}

    def leaves_of(self, entry: Variable) -> Mapping[str, Mapping[str, Any]]:
        return self.leaves[id(entry)]


_INDEXES: dict[int, _Index] = {}


def _index(spec: Spec) -> _Index:
    index = _INDEXES.get(id(spec))
    if index is None or index.spec is not spec:
        if len(_INDEXES) > 64:  # specs are loaded once per process; a test suite loads many
            _INDEXES.clear()
        index = _INDEXES[id(spec)] = _Index(spec)
    return index


def schema_leaf(spec: Spec, key: str) -> Mapping[str, Any] | None:
    """The schema node of `key` when a schema_ref entry covers it (None when none does, or when
    `key` is not one of that schema's leaves)."""
    index = _index(spec)
    entry = index.schemas.best(key)
    return None if entry is None else index.leaves_of(entry).get(key)


def lookup(spec: Spec, key: str) -> Variable | None:
    """The catalogue entry for `key`, or None when the family has no such key.

    Under a schema_ref entry only the schema's leaf paths exist; the entry returned then carries
    the leaf's type, values, bounds and secret mark (its `id` stays the entry's, pattern or not).
    """
    index = _index(spec)
    found = index.found.get(key)
    if found is not None:
        return found
    entry = index.entries.best(key)
    governing = index.schemas.best(key)
    if entry is not None and governing is not None:
        leaf = index.leaves_of(governing).get(key)
        entry = None if leaf is None else _with_leaf(entry, governing, leaf)
    if entry is not None:
        index.found[key] = entry
    return entry


def _with_leaf(entry: Variable, governing: Variable, leaf: Mapping[str, Any]) -> Variable:
    root = governing.schema or {}
    secret = entry.secret or _is_secret(root, leaf)
    kind = leaf.get("type")
    types = kind if isinstance(kind, list) else [kind]
    scalar = next((t for t in types if t in ("string", "integer", "number", "boolean", "object", "array")), None)
    values: tuple[Any, ...] = tuple(leaf["enum"]) if isinstance(leaf.get("enum"), list) else ()
    return dataclasses.replace(
        entry,
        type="string" if secret else ("enum" if values else (scalar or "any")),
        values=values,
        minimum=leaf.get("minimum"),
        maximum=leaf.get("maximum"),
        pattern=leaf.get("pattern"),
        secret=secret,
        # the key's form comes from this schema (a secret is written as {"secret": ...})
        schema_ref=governing.schema_ref,
    )


def known_keys(spec: Spec) -> list[str]:
    """Every concrete key a full read returns, sorted: exact ids and the leaves of schema entries."""
    index = _index(spec)
    keys = {v.id for v in spec.variables if not v.is_pattern and v.schema is None}
    for entry in spec.variables:
        if entry.schema is not None:
            keys.update(k for k in index.leaves_of(entry) if fnmatch.fnmatchcase(k, entry.id))
    return sorted(k for k in keys if lookup(spec, k) is not None)


_EFFECT_ORDER = ("live", "restart", "reboot")


def applies(spec: Spec, path: str) -> str:
    """What a change at `path` takes ("live", "restart", "reboot"): the most specific entry that
    matches it, whether or not `path` is a leaf (an emulator sees a secret's salt and hash), or
    the strongest of the entries under it (a change of a whole branch changes all of them)."""
    entry = _index(spec).entries.best(path)
    effects = [entry.applies if entry is not None else "live"]
    effects += [v.applies for v in spec.variables if v.id[: _literal_prefix(v.id)].startswith(path + ".")]
    return max(effects, key=_EFFECT_ORDER.index)


# --- values -------------------------------------------------------------------------------------


def check_value(spec: Spec, key: str, value: Any) -> Any:
    """`value` in the form the device takes for `key`, or ValidationError saying what is wrong."""
    entry = lookup(spec, key)
    if entry is None:
        family = spec.family or spec.id
        close = difflib.get_close_matches(key, known_keys(spec), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValidationError(f"unknown configuration key {key!r} for family {family}{hint}", param=key)
    if not entry.settable:
        raise ValidationError(f"{key}: read-only: cannot be set through the API", param=key)
    return to_wire(entry, value, key)


def to_wire(entry: Variable, value: Any, key: str | None = None) -> Any:
    """`value` checked against `entry` (type, values, bounds, pattern) and put in its wire form."""
    name = key or entry.id
    try:
        return _wire(entry, _typed(entry, value))
    except _Bad as exc:
        shown = "(not shown: secret)" if entry.secret else repr(value)
        raise ValidationError(f"{name}: {exc.args[0].format(value=shown)}", param=name) from None


class _Bad(Exception):
    """What is wrong; ``{value}`` stands for the value (or a mask when it is a secret)."""


def _typed(entry: Variable, value: Any) -> Any:
    """The value as a JSON value of the entry's type (wire strings turned back into it)."""
    kind = entry.type
    if kind == "boolean":
        return _boolean(entry, value)
    if kind in ("integer", "number"):
        return _in_range(entry, _number(entry, kind, value))
    if kind == "enum":
        return _member(entry, value)
    if kind == "string":
        return _string(entry, value)
    if kind == "object" and not isinstance(value, dict):
        raise _Bad("expected a mapping, got {value}")
    if kind == "array" and not isinstance(value, list):
        raise _Bad("expected a list, got {value}")
    return value


def _boolean(entry: Variable, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if entry.wire == "string" and isinstance(value, str) and value in (entry.wire_true, entry.wire_false):
        return value == entry.wire_true
    raise _Bad("expected a boolean, got {value}")


def _number(entry: Variable, kind: str, value: Any) -> int | float:
    wrong = "expected an integer, got {value}" if kind == "integer" else "expected a number, got {value}"
    if isinstance(value, str) and entry.wire == "string":
        try:
            value = int(value) if kind == "integer" else float(value)
        except ValueError:
            raise _Bad(wrong) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
        kind == "integer" and not isinstance(value, int)
    ):
        raise _Bad(wrong)
    return value


def _in_range(entry: Variable, value: float) -> float:
    low, high = entry.minimum, entry.maximum
    if low is not None and high is not None and not low <= value <= high:
        raise _Bad(f"must be between {_num(low)} and {_num(high)}, got {{value}}")
    if low is not None and value < low:
        raise _Bad(f"must be at least {_num(low)}, got {{value}}")
    if high is not None and value > high:
        raise _Bad(f"must be at most {_num(high)}, got {{value}}")
    return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _member(entry: Variable, value: Any) -> Any:
    if value in entry.values and not isinstance(value, bool):
        return value
    if entry.wire == "string" and not isinstance(value, bool):
        for allowed in entry.values:
            if str(allowed) == str(value):
                return allowed
    raise _Bad("not one of " + ", ".join(str(v) for v in entry.values) + ": got {value}")


def _string(entry: Variable, value: Any) -> str:
    # a string travelling as a string: a YAML number (an extension, 1234) is meant as its text
    if entry.wire == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Bad("expected a string, got {value}")
    if entry.pattern and not re.fullmatch(entry.pattern, value):
        raise _Bad(f"does not match {entry.pattern}: {{value}}")
    return value


def _wire(entry: Variable, value: Any) -> Any:
    if entry.wire == "json":
        # the schema's secrets are written as {"secret": ...} and read back as salt + hash
        return {"secret": value} if entry.secret and entry.schema_ref is not None else value
    if entry.type == "boolean":
        return entry.wire_true if value else entry.wire_false
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad("expected a string or a number, got {value}")  # type any: no string form known
    return str(value)
