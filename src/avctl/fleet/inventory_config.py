"""The ``config:`` key of an inventory: desired values by family, and the template files a block names.

The format is described in `avctl.fleet.config_blocks`, the precedence in docs/fleet.md. One level's
``config:`` becomes its templates' blocks (in the order listed), then a block of its own keys; the
inventory strings each device's levels together, lowest precedence first. Values are kept as
written, each with its ``file:line``: what they mean is decided by `avctl.config`.

Template files are read like the inventory (size cap, UTF-8, the safe composer), once per load
however many levels name them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import yaml

from avctl.fleet.config_blocks import FAMILY_NAME, ConfigBlock, DesiredValue, FamilyValues
from avctl.safeyaml import MAX_DOCUMENT_CHARS

if TYPE_CHECKING:  # the inventory imports this module for its key table
    from avctl.fleet.inventory import _Ctx

__all__ = ["parse_config"]

_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
#: "sites.hq.config" -> "site hq": the level as ConfigBlock.level names it
_LEVELS = {"sites": "site", "groups": "group", "devices": "device"}

_Pairs = Sequence[tuple[str, yaml.Node, yaml.Node]]


def parse_config(ctx: _Ctx, node: yaml.Node, here: str) -> tuple[ConfigBlock, ...]:
    """One level's ``config:`` (``here`` is e.g. "sites.hq.config"): its templates, then its own keys."""
    level = _level(here)
    pairs = ctx.mapping(node, here)
    blocks: list[ConfigBlock] = []
    for key, _, value in pairs:
        if key == "templates":
            blocks.extend(_template(ctx, ref, path, level, f"{here}.templates")
                          for ref, path in _template_refs(ctx, value, f"{here}.templates"))
    own = _families(ctx, [p for p in pairs if p[0] != "templates"], f"{here}.", " or 'templates'")
    if own:
        blocks.append(ConfigBlock(level, own, ctx.where(node)))
    return tuple(blocks)


def _level(here: str) -> str:
    section, _, name = here.removesuffix(".config").partition(".")
    return f"{_LEVELS[section]} {name}" if section in _LEVELS else section


def _families(ctx: _Ctx, pairs: _Pairs, prefix: str, alternative: str = "") -> FamilyValues:
    """``family: {key: value}`` pairs -> the values of each family (families without any left out)."""
    out: dict[str, MappingProxyType[str, DesiredValue]] = {}
    for family, knode, value in pairs:
        if not FAMILY_NAME.match(family):
            raise ctx.err(knode, f"{prefix}{family}: {family!r} is not a family name",
                          hint=f"the keys of a config block are family names (lower case, e.g. videoos){alternative}, "
                               "each mapping configuration keys to values")
        if ctx.families is not None and family not in ctx.families:
            raise ctx.err(knode, f"{prefix}{family}: unknown family {family!r}",
                          hint=f"known: {', '.join(sorted(ctx.families))}")
        values = _values(ctx, value, f"{prefix}{family}")
        if values:
            out[family] = MappingProxyType(values)
    return MappingProxyType(out)


def _values(ctx: _Ctx, node: yaml.Node, here: str) -> dict[str, DesiredValue]:
    out: dict[str, DesiredValue] = {}
    for key, knode, value in ctx.mapping(node, here):
        if knode.tag == _MERGE:
            # `<<` would otherwise pass as a key named "<<": say what shares values instead
            raise ctx.err(knode, f"{here}: YAML merge keys ('<<') are not read in config blocks",
                          hint="put the shared values in a template file and list it under 'templates:'")
        if knode.tag == _NULL or not key or any(c.isspace() for c in key):
            raise ctx.err(knode, f"{here}: {key!r} is not a configuration key (a name without spaces)")
        if isinstance(value, yaml.ScalarNode) and value.tag == _NULL:
            raise ctx.err(value, f"{here}.{key}: no value (null)",
                          hint='quote it ("" for an empty value, "null" for the text) or remove the key')
        out[key] = DesiredValue(ctx.value(value), ctx.where(value))
    return out


def _template_refs(ctx: _Ctx, node: yaml.Node, here: str) -> list[tuple[yaml.Node, str]]:
    """``templates:``: one path or a list of them, each with its node (for the line of errors)."""
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
    elif isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
        items = [node]
    else:
        raise ctx.err(node, f"{here}: must be a file path or a list of file paths")
    refs = [(item, ctx.string(item, f"{here} item")) for item in items]
    for item, path in refs:
        if not path.strip():
            raise ctx.err(item, f"{here}: empty file path")
    return refs


def _template(ctx: _Ctx, ref: yaml.Node, written: str, level: str, here: str) -> ConfigBlock:
    path = ctx.base_dir / written
    key = Path(os.path.abspath(path))
    values = ctx.templates.get(key)
    if values is None:
        values = ctx.templates[key] = _read_template(ctx, ref, written, path, here)
    return ConfigBlock(f"template {written} (from {level})", values, f"{path}:1")


def _read_template(ctx: _Ctx, ref: yaml.Node, written: str, path: Path, here: str) -> FamilyValues:
    """A template's values. Reading it fails at the line naming it; its content, at its own lines."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_DOCUMENT_CHARS + 1)
    except OSError as e:
        raise ctx.err(ref, f"{here}: cannot read template {written!r}: {e.strerror}") from None
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise ctx.err(ref, f"{here}: template {written!r} is larger than {MAX_DOCUMENT_CHARS // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ctx.err(ref, f"{here}: template {written!r} is not UTF-8 text (bad byte on its line {line})",
                      hint="save the template as UTF-8") from None
    own = ctx.for_file(str(path))
    root = own.compose(text)
    if root is None:
        raise ctx.err(ref, f"{here}: template {written!r} is empty")
    pairs = own.mapping(root, "template")
    for key, knode, _ in pairs:
        if key == "templates":
            raise own.err(knode, "a template cannot name other templates",
                          hint="list every template in the inventory's config: blocks")
    return _families(own, pairs, "")
