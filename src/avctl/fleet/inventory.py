"""The device inventory: a YAML file of devices, with site/group/default inheritance, and selection.

Format (see docs/fleet.md)::

    defaults:                 # every device inherits these
      user: admin
      password: secret:rooms-admin
    sites:
      hq:
        password: env:HQ_PASS
        tags: [emea]
    groups:
      lobby:
        tags: [public]
    devices:
      hq-101-codec:
        family: videoos
        address: 10.0.0.5          # host, host:port, [v6]:port, or https://host:port
        site: hq
        room: "101"
        groups: [lobby]
        tags: [teams]

Precedence, as in nornir: the device's own value, then its groups in the order listed, then its
site, then ``defaults``. ``tags`` are the union of every level; ``data`` mappings are merged with the
same precedence. Every level may also carry a ``config:`` block (desired configuration, see
`avctl.fleet.inventory_config`): a device keeps every block that applies, lowest precedence first.
Every error names ``file:line`` (from PyYAML node marks) and what is wrong.

Selection (:class:`Selection`) is a list of ``key=pattern`` terms (shell globs, ``|`` for
alternatives, ``!=`` to exclude). Terms on different keys AND; terms on the same key OR; a bare
word is a name glob: ``site=hq,tag=lobby``, ``family=videoos|polyuc``, ``hq-*``, ``tag!=broken``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import yaml

from avctl.errors import UsageError
from avctl.fleet.config_blocks import FAMILY_NAME, ConfigBlock, FamilyValues
from avctl.fleet.credentials import CredentialRef, SecretsStore
from avctl.fleet.inventory_config import parse_config
from avctl.fleet.windows import Window, WindowError, parse_window, zone
from avctl.safeyaml import MAX_DOCUMENT_CHARS, YAMLLimitError
from avctl.safeyaml import compose as compose_yaml
from avctl.safeyaml import write_yaml as write_inventory
from avctl.transport.address import Address, parse_address
from avctl.transport.address import check_port as _check_port

__all__ = [
    "Address",
    "DeviceEntry",
    "ImportResult",
    "Inventory",
    "InventoryError",
    "InventoryProblems",
    "Selection",
    "import_ip_list",
    "import_ip_pass",
    "load_inventory",
    "merge_into_inventory",
    "parse_address",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

TOP_KEYS = ("defaults", "sites", "groups", "devices", "firmware")
SCHEMES = ("https", "http")


class InventoryError(UsageError):
    """An inventory or import file is malformed. The message starts with ``file:line:``."""

    kind = "inventory"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}", hint=hint)
        self.file = file
        self.line = line


class InventoryProblems(InventoryError):
    """Several problems in one inventory (each an `InventoryError` naming file:line), all reported
    at once so a file is corrected in one pass."""

    def __init__(self, problems: Sequence[InventoryError]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0]
        super().__init__("; ".join(p.message for p in self.problems),
                         hint=f"{len(self.problems)} problems; nothing was sent; correct them and run again")
        self.file, self.line = first.file, first.line


# --- the model ----------------------------------------------------------------------------------

#: the empty mapping every entry without ``data``/``ports``/``schemes``/firmware baselines shares
#: (read-only: one object for 10,000 entries, in the server's process and in its poller's)
NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class DeviceEntry:
    """One device after inheritance. ``password`` is a reference (see avctl.fleet.credentials)."""

    name: str
    family: str
    address: Address
    site: str | None = None
    room: str | None = None
    tags: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()
    user: str | None = None
    password: str | None = None
    scheme: str | None = None
    disabled: bool = False
    data: Mapping[str, Any] = field(default_factory=lambda: NOTHING)
    #: per-scheme ports for actions on another scheme than the address's (e.g. {"http": 8080})
    ports: Mapping[str, int] = field(default_factory=lambda: NOTHING)
    #: per-scheme scheme overrides (e.g. {"https": "http"}: Solstice v1 on plain HTTP)
    schemes: Mapping[str, str] = field(default_factory=lambda: NOTHING)
    #: the user's opt-in to secrets over plain HTTP for this device
    allow_cleartext: bool = False
    #: where the device is defined, "file:line", for messages
    source: str = ""
    #: its desired configuration: every ``config:`` block (and template) that applies to it,
    #: lowest precedence first (defaults, site, groups in reverse order, device)
    config: tuple[ConfigBlock, ...] = ()
    #: its site's IANA time zone (``Europe/Berlin``); None: not given
    timezone: str | None = None
    #: its site's maintenance window (in ``timezone``); None: not given
    window: Window | None = None
    #: the firmware baseline of its family: model (or model glob, ``*``) -> version, nearest level
    #: winning per model (site over ``defaults`` over the top-level ``firmware:``)
    firmware: Mapping[str, str] = field(default_factory=lambda: NOTHING)

    @property
    def host(self) -> str:
        return self.address.host

    @property
    def port(self) -> int | None:
        return self.address.port

    @property
    def password_ref(self) -> CredentialRef | None:
        return CredentialRef.parse(self.password) if self.password is not None else None

    def summary(self) -> dict[str, Any]:
        """Printable, secret-free view (for `inventory list` and JSON output)."""
        ref = self.password_ref
        return {
            "name": self.name, "family": self.family, "address": str(self.address),
            "scheme": self.scheme, "site": self.site, "room": self.room, "tags": sorted(self.tags),
            "groups": list(self.groups), "user": self.user,
            "password": ref.describe() if ref else None, "disabled": self.disabled,
            **({"ports": dict(self.ports)} if self.ports else {}),
            **({"schemes": dict(self.schemes)} if self.schemes else {}),
            **({"allow_cleartext": True} if self.allow_cleartext else {}),
            **({"timezone": self.timezone} if self.timezone else {}),
            **({"window": str(self.window)} if self.window else {}),
        }


@dataclass(frozen=True)
class Inventory:
    devices: tuple[DeviceEntry, ...]
    path: Path | None = None
    #: non-fatal findings (plaintext passwords), each "file:line: message"
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[DeviceEntry]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def get(self, name: str) -> DeviceEntry:
        for d in self.devices:
            if d.name == name:
                return d
        raise UsageError(f"no device named {name!r} in the inventory")

    def select(self, selection: Selection | None) -> list[DeviceEntry]:
        if selection is None:
            return list(self.devices)
        return [d for d in self.devices if selection.matches(d)]

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


# --- loading ------------------------------------------------------------------------------------


_H = TypeVar("_H", frozenset[str], tuple[str, ...])


class _Ctx:
    """Loader state: the file name for messages and a constructor for scalar values; for ``config:``
    blocks, the known families, the folder template paths are relative to and the templates read."""

    def __init__(self, file: str, *, families: Collection[str] | None = None, base_dir: Path | None = None,
                 templates: dict[Path, FamilyValues] | None = None,
                 problems: list[InventoryError] | None = None,
                 device_families: Collection[str] | None = None) -> None:
        self.file = file
        self._loader = yaml.SafeLoader("")
        self.families = families  # of config blocks
        self.device_families = device_families
        self.base_dir = base_dir if base_dir is not None else Path.cwd()
        #: template files already read in this load (absolute path -> values): each is read once
        self.templates = templates if templates is not None else {}
        #: every problem found so far: the load goes on after one and reports them all at the end
        self.problems = problems if problems is not None else []
        #: values many entries have alike (tags, groups, firmware baselines), one object each
        self._shared: dict[Any, Any] = {}

    def shared(self, value: _H) -> _H:
        """`value`, or the equal one an earlier entry of this load holds (immutable: safe to share)."""
        return self._shared.setdefault(value, value)  # type: ignore[no-any-return]

    def shared_mapping(self, values: Mapping[str, str]) -> Mapping[str, str]:
        """A read-only copy of `values`, shared with the earlier entries that have the same."""
        if not values:
            return NOTHING
        key = ("mapping", tuple(sorted(values.items())))
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = MappingProxyType(dict(values))
        return found

    def for_file(self, file: str) -> _Ctx:
        """The state for another file of the same load (a template): its own name in messages."""
        return _Ctx(file, families=self.families, base_dir=self.base_dir, templates=self.templates,
                    problems=self.problems, device_families=self.device_families)

    def report(self, error: InventoryError) -> None:
        self.problems.append(error)

    def raise_problems(self) -> None:
        """The one problem found, or all of them (`InventoryProblems`)."""
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:  # in the order of the file (sites are read before the devices above them)
            raise InventoryProblems(sorted(self.problems, key=lambda e: (
                e.file != self.file, e.file or "", e.line is None, e.line or 0)))

    def compose(self, text: str) -> yaml.Node | None:
        """The file's node graph (None if empty); YAML errors and safe-loader limits name file:line."""
        try:
            return compose_yaml(text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else None
            problem = e.problem if isinstance(e, YAMLLimitError) else f"not valid YAML: {e.problem or e.context}"
            raise InventoryError(str(problem), file=self.file, line=line) from None

    def err(self, node: yaml.Node | None, message: str, hint: str | None = None) -> InventoryError:
        line = node.start_mark.line + 1 if node is not None else None
        return InventoryError(message, file=self.file, line=line, hint=hint)

    def where(self, node: yaml.Node) -> str:
        return f"{self.file}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as e:  # e.g. a merge key ('<<') that is not given a mapping
            raise self.err(node, f"cannot read this value: {e.problem or e.context}") from None

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, f"{what} must be a mapping (key: value lines)")
        seen: dict[str, yaml.Node] = {}
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.err(k, f"{what}: keys must be plain names")
            key = str(k.value)
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.report(self.err(k, f"{what}: duplicate key {key!r} (first at line {first})"))
                continue
            seen[key] = k
            out.append((key, k, v))
        return out

    def string(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag in ("tag:yaml.org,2002:null",):
            raise self.err(node, f"{what} must be a string")
        if node.tag == "tag:yaml.org,2002:bool":
            # `room: yes` is almost certainly not meant as a boolean; make the author quote it
            raise self.err(node, f"{what} must be a string, got a boolean", hint="quote the value")
        return str(node.value)

    def str_list(self, node: yaml.Node, what: str) -> list[str]:
        if isinstance(node, yaml.ScalarNode):
            return [self.string(node, what)]
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, f"{what} must be a list of strings")
        return [self.string(n, f"{what} item") for n in node.value]


# --- the keys of a block: one row per key ------------------------------------------------------
#
# A block is a device, a group, a site or ``defaults``. Each key has a parser (node -> checked value,
# or an InventoryError naming file:line) and the blocks it may appear in. A new key is one row here,
# a field on DeviceEntry if devices carry it, and a test (see docs/fleet.md, "Adding an inventory key").

Parser = Callable[[_Ctx, yaml.Node, str], Any]
_EVERYWHERE = frozenset({"device", "group", "site", "defaults"})


class _Password(NamedTuple):
    """A password reference and where it is written (plaintext ones are warned about, once each)."""

    text: str
    where: str
    plaintext: bool


@dataclass(frozen=True)
class _Key:
    parse: Parser
    #: the blocks that may set the key; a device inherits it from the others
    blocks: frozenset[str] = _EVERYWHERE


def _family(ctx: _Ctx, node: yaml.Node, here: str) -> str:
    fam = ctx.string(node, here)
    if not FAMILY_NAME.match(fam):
        raise ctx.err(node, f"{here}: {fam!r} is not a family name (lower case, e.g. videoos)")
    known = ctx.device_families
    if known is not None and fam not in known:
        raise ctx.err(node, f"{here.removesuffix('.family')}: unknown family {fam!r}",
                      hint=unknown_family_hint(fam, known))
    return fam


def unknown_family_hint(family: str, known: Collection[str]) -> str:
    """"did you mean 'videoos'? known families: ..." for a family name nobody has."""
    close = difflib.get_close_matches(family, sorted(known), n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"{guess}known families: {', '.join(sorted(known))}"


def _port(ctx: _Ctx, node: yaml.Node, here: str) -> int:
    raw = ctx.value(node)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ctx.err(node, f"{here}: must be a port number")
    try:
        return _check_port(raw)
    except ValueError as e:
        raise ctx.err(node, f"{here}: {e}") from None


def _ports(ctx: _Ctx, node: yaml.Node, here: str) -> dict[str, int]:
    """Per-scheme ports for actions the spec sends over another scheme (Solstice v1 on http)."""
    ports: dict[str, int] = {}
    for sch, pknode, pv in ctx.mapping(node, here):
        if sch not in SCHEMES:
            raise ctx.err(pknode, f"{here}: {sch!r} is not http or https")
        raw = ctx.value(pv)
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError(f"port {raw!r} is not a number")
            ports[sch] = _check_port(raw)
        except ValueError as e:
            raise ctx.err(pv, f"{here}.{sch}: {e}") from None
    return ports


def _scheme(ctx: _Ctx, node: yaml.Node, here: str) -> str:
    sch = ctx.string(node, here).lower()
    if sch not in SCHEMES:
        raise ctx.err(node, f"{here}: must be https or http, got {sch!r}")
    return sch


def _schemes(ctx: _Ctx, node: yaml.Node, here: str) -> dict[str, str]:
    """`schemes: {FROM: TO}`: send actions the spec puts on FROM over TO (like `--scheme-map`)."""
    schemes: dict[str, str] = {}
    for sch, sknode, sv in ctx.mapping(node, here):
        if sch not in SCHEMES:
            raise ctx.err(sknode, f"{here}: {sch!r} is not http or https")
        to = ctx.string(sv, f"{here}.{sch}").lower()
        if to not in SCHEMES:
            raise ctx.err(sv, f"{here}.{sch}: {to!r} is not http or https")
        schemes[sch] = to
    return schemes


def _string(ctx: _Ctx, node: yaml.Node, here: str) -> str:
    return ctx.string(node, here)


def _password(ctx: _Ctx, node: yaml.Node, here: str) -> _Password:
    text = ctx.string(node, here)
    try:
        ref = CredentialRef.parse(text)
    except UsageError as e:
        raise ctx.err(node, f"{here}: {e.message}", hint=e.hint) from None
    return _Password(text, ctx.where(node), ref.is_plaintext)


def _names(ctx: _Ctx, node: yaml.Node, here: str) -> list[str]:
    items = ctx.str_list(node, here)
    for item in items:
        if not _NAME_RE.match(item):
            raise ctx.err(node, f"{here}: {item!r} is not a valid name")
    return items


def _data(ctx: _Ctx, node: yaml.Node, here: str) -> dict[str, Any]:
    data = ctx.value(node)
    if not isinstance(data, dict):
        raise ctx.err(node, f"{here}: must be a mapping")
    return data


def _flag(ctx: _Ctx, node: yaml.Node, here: str) -> bool:
    flag = ctx.value(node)
    if not isinstance(flag, bool):
        raise ctx.err(node, f"{here}: must be true or false")
    return flag


def _timezone(ctx: _Ctx, node: yaml.Node, here: str) -> str:
    name = ctx.string(node, here)
    try:
        zone(name)
    except WindowError as e:
        raise ctx.err(node, f"{here}: {e}") from None
    return name


def _window(ctx: _Ctx, node: yaml.Node, here: str) -> Window:
    raw = ctx.str_list(node, here)
    try:
        return parse_window(raw[0] if len(raw) == 1 else raw)
    except WindowError as e:
        raise ctx.err(node, f"{here}: {e}", hint='e.g. window: "Mon-Fri 01:00-04:00, Sat-Sun 00:00-06:00"') from None


def _firmware(ctx: _Ctx, node: yaml.Node, here: str) -> dict[str, dict[str, str]]:
    """``{family: {model or glob: version}}``: the firmware each model should run."""
    out: dict[str, dict[str, str]] = {}
    for fam, fknode, models in ctx.mapping(node, here):
        if not FAMILY_NAME.match(fam):
            raise ctx.err(fknode, f"{here}: {fam!r} is not a family name (lower case, e.g. videoos)",
                          hint='e.g. firmware: {videoos: {"Studio X30": "4.6.2"}}')
        out[fam] = {}
        for model, _mknode, version in ctx.mapping(models, f"{here}.{fam}"):
            raw = ctx.value(version)
            if isinstance(raw, bool) or not isinstance(raw, str | int | float) or not str(raw).strip():
                raise ctx.err(version, f"{here}.{fam}.{model}: must be a version such as \"4.6.2\" (quote it)")
            out[fam][model] = str(raw).strip()
    return out


def _address(ctx: _Ctx, node: yaml.Node, here: str) -> Address:
    text = ctx.string(node, here)
    try:
        return parse_address(text)
    except ValueError as e:
        raise ctx.err(node, f"{here}: {e}") from None


#: every key a block may set, in the order "unknown key" hints list them
KEYS: Mapping[str, _Key] = MappingProxyType({
    "address": _Key(_address, frozenset({"device"})),
    "site": _Key(_string, frozenset({"device", "group"})),
    "groups": _Key(_names, frozenset({"device"})),
    "family": _Key(_family),
    "port": _Key(_port),
    "ports": _Key(_ports),
    "scheme": _Key(_scheme),
    "user": _Key(_string),
    "password": _Key(_password),
    "tags": _Key(_names),
    "data": _Key(_data),
    "disabled": _Key(_flag),
    "room": _Key(_string),
    "schemes": _Key(_schemes),
    "allow_cleartext": _Key(_flag),
    "config": _Key(parse_config),
    "timezone": _Key(_timezone, frozenset({"site", "defaults"})),
    "window": _Key(_window, frozenset({"site", "defaults"})),
    "firmware": _Key(_firmware, frozenset({"site", "defaults"})),
})


def keys_for(block: str) -> tuple[str, ...]:
    """The keys a block ("device", "group", "site", "defaults") may set."""
    return tuple(k for k, row in KEYS.items() if block in row.blocks)


def _parse_level(ctx: _Ctx, node: yaml.Node, what: str, block: str) -> dict[str, Any]:
    """Parse one block (device, group, site, defaults) into checked values, key by key.

    A key that is wrong is reported and the block marked broken (devices that inherit from it
    are not built: their errors would only repeat this one)."""
    allowed = keys_for(block)
    out: dict[str, Any] = {}
    try:
        pairs = ctx.mapping(node, what)
    except InventoryError as e:
        ctx.report(e)
        return {_BROKEN: True}
    for key, knode, v in pairs:
        try:
            if key not in allowed:
                raise ctx.err(knode, f"{what}: unknown key {key!r}", hint=f"expected one of: {', '.join(allowed)}")
            out[key] = KEYS[key].parse(ctx, v, f"{what}.{key}")
        except InventoryError as e:
            ctx.report(e)
            out[_BROKEN] = True
    return out


#: marks a block with a problem already reported
_BROKEN = "\0broken"


def load_inventory(path: str | os.PathLike[str], *, families: Collection[str] | None = None) -> Inventory:
    """Load and check an inventory file: every problem is reported (`InventoryProblems`), each with
    file:line. ``families``: the family names a device may have [default: every registered family]."""
    from avctl.families import family_names

    p = Path(path)
    if families is not None:
        return parse_inventory(_read_text(p), file=str(p), families=families, path=p)
    # config blocks name families too: their unknown ones are listed with every other problem of
    # the desired configuration (`avctl.config.desired`), when a config command reads them
    return parse_inventory(_read_text(p), file=str(p), device_families=family_names(), path=p)


def _read_text(p: Path) -> str:
    """The inventory as text: capped in size, UTF-8 or an error naming the line."""
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_DOCUMENT_CHARS + 1)
    except FileNotFoundError:
        raise InventoryError("cannot read inventory: no such file", file=str(p), hint=(
            "give the inventory with -i FILE or set AVCTL_INVENTORY (docs/fleet.md shows the format; "
            "'avctl inventory import' makes one from a CSV, 'avctl emulate fleet -o FILE' one to try)")) from None
    except OSError as e:
        raise InventoryError(f"cannot read inventory: {e.strerror}", file=str(p)) from None
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise InventoryError(f"inventory is larger than {MAX_DOCUMENT_CHARS // (1024 * 1024)} MiB", file=str(p),
                             hint="split the fleet into several inventories")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        column = e.start - raw.rfind(b"\n", 0, e.start)
        raise InventoryError(f"not UTF-8 text (bad byte at column {column})",
                             file=str(p), line=raw.count(b"\n", 0, e.start) + 1,
                             hint="save the inventory as UTF-8") from None


def parse_inventory(text: str, *, file: str = "<inventory>", families: Collection[str] | None = None,
                    path: Path | None = None, check_duplicates: bool = True,
                    device_families: Collection[str] | None = None) -> Inventory:
    """``families``: the known families, for devices and config blocks; ``device_families``: for
    devices only (None, both: any name)."""
    base_dir = path.parent if path is not None else None
    ctx = _Ctx(file, families=families, base_dir=base_dir,
               device_families=device_families if device_families is not None else families)
    top = _top_level(ctx, text)
    defaults = _parse_level(ctx, top["defaults"][1], "defaults", "defaults") if "defaults" in top else {}
    if "firmware" in top:  # the top-level baseline: below defaults
        try:
            defaults = {**defaults, "firmware": _merged_firmware(
                [defaults, {"firmware": _firmware(ctx, top["firmware"][1], "firmware")}])}
        except InventoryError as e:
            ctx.report(e)
    sites = _blocks(ctx, top, "sites", "site")
    groups = _blocks(ctx, top, "groups", "group")
    devices: list[DeviceEntry] = []
    warnings: dict[str, str] = {}  # by where the password is written: one warning each
    try:
        nodes = _device_nodes(ctx, top["devices"][1])
    except InventoryError as e:
        ctx.report(e)
        nodes = []
    for name, knode, v in nodes:
        try:
            if not _NAME_RE.match(name):
                raise ctx.err(knode, f"device name {name!r} is not valid",
                              hint="letters, digits, '.', '_' and '-'; starting with a letter or digit")
            own = _parse_level(ctx, v, f"devices.{name}", "device")
            if _BROKEN in own:
                continue
            levels = _levels(ctx, name, knode, own, defaults, sites if "sites" in top else None, groups)
            if any(_BROKEN in lv for lv in levels):
                continue  # reported where the block is wrong
            devices.append(_device(ctx, name, knode, levels))
        except InventoryError as e:
            ctx.report(e)
            continue
        pw: _Password | None = _pick(levels, "password")
        if pw is not None and pw.plaintext:
            warnings.setdefault(pw.where, f"{pw.where}: plaintext password in the inventory; "
                                          "store it with 'avctl secrets set NAME' and write secret:NAME")
    if check_duplicates:
        _report_duplicates(ctx, devices)
    ctx.raise_problems()
    return Inventory(tuple(devices), path=path, warnings=tuple(warnings.values()))


def _device_nodes(ctx: _Ctx, devnode: yaml.Node) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if isinstance(devnode, yaml.SequenceNode):
        raise ctx.err(devnode, "devices must be a mapping of name: {address: ..., ...}, not a list")
    return ctx.mapping(devnode, "devices")


def _top_level(ctx: _Ctx, text: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """The top-level keys of the file: known ones only, and ``devices`` among them."""
    root = ctx.compose(text)
    if root is None:
        raise InventoryError("inventory is empty", file=ctx.file, hint="add a 'devices:' mapping")
    top: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, knode, v in ctx.mapping(root, "inventory"):
        if key not in TOP_KEYS:
            ctx.report(ctx.err(knode, f"unknown top-level key {key!r}", hint=f"expected one of: {', '.join(TOP_KEYS)}"))
            continue
        top[key] = (knode, v)
    if "devices" not in top:
        ctx.report(InventoryError("inventory has no 'devices:' mapping", file=ctx.file))
        ctx.raise_problems()
    return top


def _blocks(ctx: _Ctx, top: Mapping[str, tuple[yaml.Node, yaml.Node]], section: str,
            block: str) -> dict[str, dict[str, Any]]:
    """The named blocks of ``sites:`` or ``groups:`` (group names are checked: devices list them)."""
    out: dict[str, dict[str, Any]] = {}
    if section not in top:
        return out
    try:
        pairs = ctx.mapping(top[section][1], section)
    except InventoryError as e:
        ctx.report(e)
        return out
    for name, knode, v in pairs:
        if block == "group" and not _NAME_RE.match(name):
            ctx.report(ctx.err(knode, f"group name {name!r} is not valid"))
            out[name] = {_BROKEN: True}
            continue
        out[name] = _parse_level(ctx, v, f"{section}.{name}", block)
    return out


def _levels(ctx: _Ctx, name: str, knode: yaml.Node, own: dict[str, Any], defaults: dict[str, Any],
            sites: dict[str, dict[str, Any]] | None,
            groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A device's blocks in precedence order: device > groups (in order) > site > defaults.
    ``sites`` is None when the file has no ``sites:`` (then any site name is fine)."""
    what = f"devices.{name}"
    if "address" not in own:
        raise ctx.err(knode, f"{what}: no address")
    dev_groups: list[str] = own.get("groups", [])
    for g in dev_groups:
        if g not in groups:
            raise ctx.err(knode, f"{what}: group {g!r} is not defined under 'groups:'")
    site = own.get("site") or next((groups[g]["site"] for g in dev_groups if "site" in groups[g]), None)
    if site is not None and sites is not None and site not in sites:
        raise ctx.err(knode, f"{what}: site {site!r} is not defined under 'sites:'")
    own = {**own, "site": site, "groups": dev_groups}
    return [own, *(groups[g] for g in dev_groups), (sites or {}).get(site or "", {}), defaults]


def _pick(levels: Sequence[Mapping[str, Any]], key: str) -> Any:
    return next((lv[key] for lv in levels if key in lv), None)


def _merged(levels: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any]:
    """A mapping key merged over the levels, the nearer level winning per entry."""
    out: dict[str, Any] = {}
    for lv in reversed(levels):
        out.update(lv.get(key, {}))
    return MappingProxyType(out) if out else NOTHING


def _merged_firmware(levels: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """The ``firmware:`` baselines of the levels merged per family and model, nearer level winning."""
    out: dict[str, dict[str, str]] = {}
    for lv in reversed(levels):
        for fam, models in lv.get("firmware", {}).items():
            out.setdefault(fam, {}).update(models)
    return out


def _device(ctx: _Ctx, name: str, knode: yaml.Node, levels: list[dict[str, Any]]) -> DeviceEntry:
    """One device after inheritance: ``levels`` from :func:`_levels`."""
    what = f"devices.{name}"
    family = _pick(levels, "family")
    if family is None:
        raise ctx.err(knode, f"{what}: no family (set it on the device, a group, the site or defaults)")
    own = levels[0]
    addr: Address = own["address"]
    scheme = addr.scheme or _pick(levels, "scheme")
    pw: _Password | None = _pick(levels, "password")
    if _pick(levels, "window") is not None and _pick(levels, "timezone") is None:
        raise ctx.err(knode, f"{what}: its site has a maintenance window but no timezone",
                      hint="add timezone: (an IANA name such as Europe/Berlin) beside window:")
    return DeviceEntry(
        name=name, family=family, address=Address(addr.host, addr.port or _pick(levels, "port"), scheme),
        site=own["site"], room=_pick(levels, "room"),
        tags=ctx.shared(frozenset(t for lv in levels for t in lv.get("tags", ()))),
        groups=ctx.shared(tuple(own["groups"])), user=_pick(levels, "user"), password=pw.text if pw else None,
        scheme=scheme, disabled=bool(_pick(levels, "disabled")), data=_merged(levels, "data"),
        ports=_merged(levels, "ports"), schemes=_merged(levels, "schemes"),
        allow_cleartext=bool(_pick(levels, "allow_cleartext")), source=ctx.where(knode),
        config=tuple(block for lv in reversed(levels) for block in lv.get("config", ())),
        timezone=_pick(levels, "timezone"), window=_pick(levels, "window"),
        firmware=ctx.shared_mapping(_merged_firmware(levels).get(family, {})))


def _default_port(family: str, scheme: str | None) -> int:
    """The port a device without one is reached on: its family's spec decides (Solstice: 5443)."""
    from avctl.errors import AvctlError
    from avctl.families import builtin_spec

    try:
        transport = builtin_spec(family).transport
    except (AvctlError, LookupError, OSError):  # a family without a built-in spec
        return 80 if scheme == "http" else 443
    return transport.port_for(scheme or transport.default_scheme)


def _report_duplicates(ctx: _Ctx, devices: Sequence[DeviceEntry]) -> None:
    """Two enabled entries that reach the same host and port are one device listed twice: a fleet
    action would reach it twice (two reboots). Every such pair is reported."""
    for first, dev, where in _duplicates(devices):
        line = int(dev.source.rsplit(":", 1)[1])
        ctx.report(InventoryError(
            f"devices.{dev.name}: same device as devices.{first.name} at {first.source} (both reach {where})",
            file=ctx.file, line=line, hint=_DUPLICATE_HINT))


_DUPLICATE_HINT = ("list each device once (a device listed twice gets every action twice); "
                   "if they are two devices, correct the address or port of one")


def _duplicates(devices: Sequence[DeviceEntry]) -> Iterator[tuple[DeviceEntry, DeviceEntry, Address]]:
    """(first entry, later entry, the address both reach) for every device listed twice.

    Spellings are compared canonically (host case, IPv6 forms, scheme prefix, trailing slash,
    the family's default port); disabled entries do not count."""
    by_host: dict[str, list[DeviceEntry]] = {}
    for dev in devices:
        if not dev.disabled:
            by_host.setdefault(dev.address.identity(None)[0], []).append(dev)
    for same_host in by_host.values():
        if len(same_host) < 2:
            continue
        seen: dict[tuple[str, int | None], DeviceEntry] = {}
        for dev in same_host:
            default = None if dev.address.port else _default_port(dev.family, dev.scheme)
            key = dev.address.identity(default)
            first = seen.setdefault(key, dev)
            if first is not dev:
                yield first, dev, Address(key[0], key[1])


def _refuse_imported_duplicates(path: Path, current: Sequence[DeviceEntry],
                                devices: Mapping[str, Mapping[str, Any]]) -> None:
    """An import must not add a device the inventory (or the import itself) already has under
    another name: the merged file would be refused on its next load."""
    added = parse_inventory(yaml.safe_dump({"devices": {k: dict(v) for k, v in devices.items()}}),
                            file="<import>", check_duplicates=False).devices
    dup = next(_duplicates([*current, *added]), None)
    if dup:
        first, dev, where = dup
        known = f"devices.{first.name} at {first.source}" if first in current else f"{first.name} of this import"
        raise UsageError(f"{path}: importing {dev.name} ({where}): it is already listed as {known}",
                         hint="nothing was imported; remove it from the import file, or the old entry from "
                              "the inventory")


# --- selection ----------------------------------------------------------------------------------

SELECT_KEYS = ("name", "family", "site", "room", "tag", "group", "host")


@dataclass(frozen=True)
class Term:
    key: str
    patterns: tuple[str, ...]
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.key}{'!=' if self.negate else '='}{'|'.join(self.patterns)}"


def _glob(value: str | None, pattern: str) -> bool:
    # case-insensitive: device names and sites are typed by people
    return value is not None and fnmatchcase(value.lower(), pattern.lower())


def _key_values(dev: DeviceEntry, key: str) -> Iterable[str | None]:
    if key in ("tag", "group"):
        return dev.tags if key == "tag" else dev.groups
    return [{"name": dev.name, "family": dev.family, "site": dev.site, "room": dev.room, "host": dev.host}[key]]


def _term_hits(dev: DeviceEntry, term: Term) -> bool:
    return any(_glob(v, p) for v in _key_values(dev, term.key) for p in term.patterns)


@dataclass(frozen=True)
class Selection:
    """Which devices a command applies to. Different keys AND, the same key ORs, ``!=`` excludes."""

    terms: tuple[Term, ...] = ()

    @classmethod
    def parse(cls, exprs: Iterable[str] | str | None) -> Selection:
        if exprs is None:
            return cls()
        if isinstance(exprs, str):
            exprs = [exprs]
        terms: list[Term] = []
        for expr in exprs:
            for raw in expr.split(","):
                part = raw.strip()
                if not part:
                    continue
                negate = False
                if "!=" in part:
                    key, _, pat = part.partition("!=")
                    negate = True
                elif "=" in part:
                    key, _, pat = part.partition("=")
                else:
                    key, pat = "name", part
                key = key.strip().lower()
                if key == "tags":
                    key = "tag"
                if key not in SELECT_KEYS:
                    raise UsageError(f"cannot select on {key!r}",
                                     hint=f"use one of: {', '.join(SELECT_KEYS)}")
                pats = tuple(p.strip() for p in pat.split("|") if p.strip())
                if not pats:
                    raise UsageError(f"selection term {part!r} has no value")
                terms.append(Term(key, pats, negate))
        return cls(tuple(terms))

    @classmethod
    def from_options(cls, select: Iterable[str] = (), **by_key: Iterable[str]) -> Selection:
        """Combine ``--select`` expressions with per-key options (``--site hq --tag lobby``)."""
        exprs = list(select)
        for key, values in by_key.items():
            exprs.extend(f"{key}={v}" for v in values)
        return cls.parse(exprs)

    def matches(self, dev: DeviceEntry) -> bool:
        positive: dict[str, list[Term]] = {}
        for t in self.terms:
            if t.negate:
                if _term_hits(dev, t):
                    return False
            else:
                positive.setdefault(t.key, []).append(t)
        return all(any(_term_hits(dev, t) for t in ts) for ts in positive.values())

    def near_misses(self, devices: Iterable[DeviceEntry]) -> list[str]:
        """Why a selection matched nothing, for a hint: each value no device has, with the close
        values devices do have (``family=vidoeos`` -> ``no device has family 'vidoeos' (did you
        mean 'videoos'?)``)."""
        devices = list(devices)
        said: list[str] = []
        for t in self.terms:
            if t.negate:
                continue
            known = sorted({v for d in devices for v in _key_values(d, t.key) if v})
            for pattern in t.patterns:
                if any(_glob(v, pattern) for v in known):
                    continue
                # 0.5: two-letter site codes one key apart (hg for hq) still count as close
                close = difflib.get_close_matches(pattern.lower(), [v.lower() for v in known], n=3, cutoff=0.5)
                # in name order: two requests for names equally close get the same words
                names = sorted(next(v for v in known if v.lower() == c) for c in close)
                said.append(f"no device has {t.key} {pattern!r}"
                            + (f" (did you mean {' or '.join(repr(n) for n in names)}?)" if names else ""))
        return said

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms) or "all"

    def __bool__(self) -> bool:
        return bool(self.terms)


# --- imports from the seeds' script formats ------------------------------------------------------


@dataclass
class ImportResult:
    """Devices ready to add to an inventory (name -> YAML mapping) and passwords for the secrets store."""

    devices: dict[str, dict[str, Any]]
    #: secret name -> password; the caller writes these with SecretsStore.set_many
    secrets: dict[str, str] = field(default_factory=dict)


def _device_name(prefix: str, addr: Address) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "-", addr.host).strip("-")
    if addr.port:
        base += f"-{addr.port}"
    return f"{prefix}{base}"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # -sig: Notepad writes a BOM
    except OSError as e:
        raise InventoryError(f"cannot read: {e.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise InventoryError("not a UTF-8 text file", file=str(path)) from None


def _entry(addr: Address, family: str, site: str | None, room: str | None,
           tags: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"family": family, "address": str(addr)}
    if site:
        entry["site"] = site
    if room:
        entry["room"] = room
    if tags:
        entry["tags"] = list(tags)
    return entry


def import_ip_pass(path: str | os.PathLike[str], *, family: str = "videoos", site: str | None = None,
                   room: str | None = None, tags: Sequence[str] = (), name_prefix: str | None = None,
                   user: str | None = None) -> ImportResult:
    """Import an ``IP,Password`` file (seed 000's IP_Pass.txt). Passwords go to the secrets store.

    Blank lines and ``#`` comments are skipped. The password is everything after the *first* comma
    (passwords may contain commas); surrounding spaces are trimmed as the seed's PowerShell does.
    """
    p = Path(path)
    prefix = f"{family}-" if name_prefix is None else name_prefix
    result = ImportResult({})
    first_line: dict[str, int] = {}
    for n, line in enumerate(_read_lines(p), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "," not in text:
            raise InventoryError("expected 'IP,Password', found no comma", file=str(p), line=n)
        host_text, _, password = text.partition(",")
        host_text, password = host_text.strip(), password.strip()
        if not host_text:
            raise InventoryError("expected 'IP,Password', the IP is empty", file=str(p), line=n)
        if not password:
            raise InventoryError("expected 'IP,Password', the password is empty", file=str(p), line=n)
        name, entry = _imported_entry(host_text, p, n, first_line, prefix, family, site, room, tags, user)
        entry["password"] = f"secret:{name}"
        result.devices[name] = entry
        result.secrets[name] = password
    if not result.devices:
        raise InventoryError("no devices in file", file=str(p))
    return result


def _imported_entry(text: str, path: Path, n: int, first_line: dict[str, int], prefix: str, family: str,
                    site: str | None, room: str | None, tags: Sequence[str],
                    user: str | None) -> tuple[str, dict[str, Any]]:
    """One address line of an import -> (device name, inventory entry); duplicates fail with file:line."""
    try:
        addr = parse_address(text)
    except ValueError as e:
        raise InventoryError(f"bad address: {e}", file=str(path), line=n) from None
    name = _device_name(prefix, addr)
    if name in first_line:
        raise InventoryError(f"{text} is listed twice (first at line {first_line[name]})", file=str(path), line=n)
    first_line[name] = n
    entry = _entry(addr, family, site, room, tags)
    if user:
        entry["user"] = user
    return name, entry


def import_ip_list(path: str | os.PathLike[str], *, family: str = "polyuc", password: str | None = None,
                   site: str | None = None, room: str | None = None, tags: Sequence[str] = (),
                   name_prefix: str | None = None, user: str | None = None) -> ImportResult:
    """Import a one-address-per-line file (seed 002's ip.txt); all devices share ``password``,
    a credential reference."""
    p = Path(path)
    prefix = f"{family}-" if name_prefix is None else name_prefix
    if password is not None:
        CredentialRef.parse(password)  # reject a typo'd scheme before writing anything
    result = ImportResult({})
    first_line: dict[str, int] = {}
    for n, line in enumerate(_read_lines(p), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        if len(fields) != 1:
            raise InventoryError(f"expected one address per line, found {len(fields)} fields",
                                 file=str(p), line=n)
        if "," in text:
            raise InventoryError("expected one address per line, found a comma "
                                 "(for IP,Password files use the ip-pass format)", file=str(p), line=n)
        name, entry = _imported_entry(text, p, n, first_line, prefix, family, site, room, tags, user)
        if password is not None:
            entry["password"] = password
        result.devices[name] = entry
    if not result.devices:
        raise InventoryError("no devices in file", file=str(p))
    return result


def merge_into_inventory(path: str | os.PathLike[str], devices: Mapping[str, Mapping[str, Any]]) -> int:
    """Add devices to an inventory file (created if missing). Name clashes are an error; nothing is
    overwritten. Written atomically (temp file + rename). Returns the number of devices added.

    The file is re-dumped, so YAML comments in an existing file are not kept.
    """
    write_inventory(Path(path), planned_inventory(path, devices))
    return len(devices)


def planned_inventory(path: str | os.PathLike[str], devices: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The inventory document with ``devices`` added, after every check and before any write:
    the existing file must load, and no new device may reuse an existing name or address."""
    p = Path(path)
    doc: dict[str, Any] = {}
    current: Sequence[DeviceEntry] = ()
    if p.exists():
        current = load_inventory(p).devices  # refuse to merge into a broken file; errors carry file:line
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        doc = loaded if isinstance(loaded, dict) else {}
    existing = dict(doc.get("devices") or {})
    clash = sorted(set(existing) & set(devices))
    if clash:
        raise UsageError(f"{p}: devices already present: {', '.join(clash[:10])}"
                         + (f" and {len(clash) - 10} more" if len(clash) > 10 else ""),
                         hint="nothing was imported; use --prefix for other names")
    _refuse_imported_duplicates(p, current, devices)
    existing.update({k: dict(v) for k, v in devices.items()})
    return {**doc, "devices": existing}


def commit_import(path: str | os.PathLike[str], result: ImportResult, store: SecretsStore | None = None) -> int:
    """Write an import: all or nothing. Everything is checked first (inventory clashes, secret
    names already in use, the secrets key); then the secrets file, then the inventory, and if the
    inventory cannot be written the secrets file is put back as it was."""
    doc = planned_inventory(path, result.devices)
    if not result.secrets:
        write_inventory(Path(path), doc)
        return len(result.devices)
    store = store or SecretsStore()
    taken = sorted({e["name"] for e in store.names()} & set(result.secrets))
    if taken:
        raise UsageError(f"{store.path}: secrets already present: {', '.join(taken[:10])}"
                         + (f" and {len(taken) - 10} more" if len(taken) > 10 else ""),
                         hint="nothing was imported; remove them with 'avctl secrets rm NAME' or use --prefix")
    with store.rollback_on_error():
        store.set_many(result.secrets)
        write_inventory(Path(path), doc)
    return len(result.devices)
