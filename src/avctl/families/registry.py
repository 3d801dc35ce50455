"""The registry of family plugins, found through the `avctl.families` entry-point group.

A family plugin is what a device family brings: its spec (a package resource), its client `Family`
and, optionally, its emulator. Every family registers the same way, the three built-in ones too:
one line in the providing package's metadata,

    [project.entry-points."avctl.families"]
    acme = "acme_avctl.family:plugin"

naming a `FamilyPlugin` object. The group is read once, on first use; a plugin module is imported
only when its family is first asked for (listing the names imports nothing). A name provided twice
is an error naming both providers (nothing silently wins), raised where the name is used, so one
bad package does not stop the other families; a plugin whose module fails to import is reported
with the import error, not as an unknown family.

The emulator is a lazy reference ("module:attribute"), so a client never imports the emulator
package or aiohttp's server.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avctl.errors import UsageError

if TYPE_CHECKING:
    from importlib import metadata

    from avctl.families import Family
    from avctl.spec.model import Spec

GROUP = "avctl.families"
_INSTALL_HINT = "families are found through installed packages: is avctl installed (pip install -e .)?"


@dataclass(frozen=True)
class SpecResource:
    """A spec file shipped inside a package, read with `importlib.resources`."""

    package: str
    name: str

    def __str__(self) -> str:
        return f"{self.package}/{self.name}"


@dataclass(frozen=True)
class FamilyPlugin:
    """One device family: its spec, its client behaviour and (optionally) its emulator."""

    name: str
    #: the `Family` subclass (or a factory returning a `Family`)
    family: Callable[[], Family]
    #: the family's own spec (None: a family whose devices always come with a spec file)
    spec: SpecResource | None = None
    #: "module:attribute" of its `EmulatedDevice` subclass (None: the family has no emulator)
    emulator: str | None = None
    description: str = ""

    def load_spec(self) -> Spec:
        from importlib import resources

        from avctl.spec import load_spec

        if self.spec is None:
            raise UsageError(f"family {self.name!r} ships no spec", hint="give a spec file instead")
        try:
            ref = resources.files(self.spec.package).joinpath(self.spec.name)
        except ModuleNotFoundError as exc:
            raise UsageError(f"family {self.name!r}: spec package {self.spec.package!r} not found: {exc}") from None
        with resources.as_file(ref) as path:
            if not path.is_file():
                raise UsageError(f"family {self.name!r}: its spec {self.spec} is missing",
                                 hint="reinstall the package that provides the family")
            return load_spec(path)

    def load_emulator(self) -> Any:
        """The emulator class (imported now), checked by the emulator layer."""
        if self.emulator is None:
            raise UsageError(f"family {self.name!r} ships no emulator")
        module, _, attr = self.emulator.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UsageError(
                f"family plugin {self.name!r}: its emulator ({self.emulator}) failed to load: {exc}",
                hint="install the emulator's dependencies, or fix the plugin's emulator reference",
            ) from None


@dataclass
class _Entry:
    name: str
    #: where the plugin comes from, for messages: "acme-avctl (acme_avctl.family:plugin)"
    source: str
    entry_point: metadata.EntryPoint | None = None
    plugin: FamilyPlugin | None = None


#: name -> every entry providing it (more than one is an error, raised when the name is used)
_index: dict[str, list[_Entry]] | None = None


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} ({ep.value})" if dist is not None else ep.value


def _entries() -> dict[str, list[_Entry]]:
    """Name -> entries, from the entry-point group (read once per process)."""
    global _index
    if _index is None:
        # imported here: importlib.metadata costs milliseconds that `avctl --help` need not pay
        from importlib import metadata

        index: dict[str, list[_Entry]] = {}
        for ep in metadata.entry_points(group=GROUP):
            index.setdefault(ep.name, []).append(_Entry(ep.name, _source(ep), ep))
        _index = index
    return _index


def _duplicate(name: str, entries: list[_Entry]) -> UsageError:
    return UsageError(
        f"family plugin {name!r} is provided twice: by {entries[0].source} and by {entries[1].source}",
        hint="uninstall one of the two packages (a family name must be unique)",
    )


def family_names() -> list[str]:
    """The names of every registered family, sorted (imports no plugin)."""
    return sorted(_entries())


def find_plugin(name: str) -> FamilyPlugin | None:
    """The plugin of family `name` (its module imported on first use), or None if there is none."""
    entries = _entries().get(name)
    if not entries:
        return None
    if len(entries) > 1:
        raise _duplicate(name, entries)
    entry = entries[0]
    if entry.plugin is None:
        assert entry.entry_point is not None  # programmatic entries are created with their plugin
        entry.plugin = _load(entry, entry.entry_point)
    return entry.plugin


def get_plugin(name: str) -> FamilyPlugin:
    plugin = find_plugin(name)
    if plugin is None:
        known = family_names()
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
        raise UsageError(
            f"unknown device family {name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""),
            hint=f"known families: {', '.join(known)}" if known else _INSTALL_HINT,
        )
    return plugin


def plugins() -> list[FamilyPlugin]:
    """Every registered plugin, loaded, in name order."""
    return [get_plugin(name) for name in family_names()]


def register_plugin(plugin: FamilyPlugin, source: str | None = None) -> FamilyPlugin:
    """Register a plugin from code (scripts, tests); a name already registered is an error."""
    entry = _Entry(plugin.name, source or f"register_plugin({plugin.name!r})", plugin=plugin)
    entries = _entries().setdefault(plugin.name, [])
    if entries:
        raise _duplicate(plugin.name, [*entries, entry])
    entries.append(entry)
    return plugin


def unregister_plugin(name: str) -> None:
    """Forget a family registered from code (tests clean up with it)."""
    entries = _entries().get(name, [])
    entries[:] = [e for e in entries if e.entry_point is not None]
    if not entries:
        _entries().pop(name, None)


def _load(entry: _Entry, ep: metadata.EntryPoint) -> FamilyPlugin:
    try:
        obj = ep.load()
    except Exception as exc:  # any failure while importing a third-party module: report it as it is
        what = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise UsageError(
            f"family plugin {entry.name!r} ({ep.value}) failed to load: {what}",
            hint=f"install what it needs, or uninstall the package that provides it ({entry.source})",
        ) from None
    if not isinstance(obj, FamilyPlugin):
        raise UsageError(
            f"family plugin {entry.name!r} ({ep.value}) is a {type(obj).__name__}, not a FamilyPlugin",
            hint="the entry point must name an avctl.families.registry.FamilyPlugin object",
        )
    if obj.name != entry.name:
        raise UsageError(
            f"family plugin {entry.name!r} ({ep.value}) calls itself {obj.name!r}",
            hint="the entry-point name and FamilyPlugin.name must be the same",
        )
    return obj


__all__ = [
    "GROUP",
    "FamilyPlugin",
    "SpecResource",
    "family_names",
    "find_plugin",
    "get_plugin",
    "plugins",
    "register_plugin",
    "unregister_plugin",
]
