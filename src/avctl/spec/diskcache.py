"""Parsed specs kept on disk, so that a command reads a small JSON file instead of parsing YAML.

One entry per spec file and content: the whole load result (the Spec and every lint issue with its
line), under ``$XDG_CACHE_HOME/avctl/specs`` (``~/.cache/avctl/specs`` without it). The key is the
sha256 of the spec text, the path as given (issues and ``Spec.source`` name it), the strictness, the
cache format, avctl's version, and the parser's code: size and time of each module of avctl's
spec loader and of PyYAML (with LibYAML's extension, if any), so that neither an upgrade nor an
edited checkout ever reads stale entries. Files the
spec reads besides itself (``schema_ref``) are listed in the entry with their sha256 and checked on
every hit: an edited schema rebuilds the entry.

Why JSON and not pickle: unpickling runs whatever code the file names, so a cache file would be a
way to run code as the user. The decoder here builds plain values and the model's dataclasses, from
a fixed list, and nothing else. A damaged file fails its checksum (each entry carries the sha256 of
its payload) and is ignored. A planted file could at worst describe a wrong spec, so entries are
read only from a directory that is the user's own and writable by nobody else (it is created 0700),
which takes the user's own rights to write to.

The cache only saves time: a directory that cannot be created, read or written, a damaged or
foreign entry, anything unexpected, and the spec is parsed as if there were no cache, silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SpecCache", "default_cache"]

#: bump when the encoding below changes
FORMAT = 1
#: entries kept; the least recently written go first (a catalog lint writes one per spec)
MAX_ENTRIES = 1024
#: larger files are not read (the built-in VideoOS spec makes about 300 kB)
MAX_ENTRY_BYTES = 64 * 1024 * 1024
_PACKAGE = Path(__file__).resolve().parents[1]  # the avctl package directory


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/avctl/specs``, else ``~/.cache/avctl/specs`` (a relative XDG path is ignored)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else None
    if base is None or not base.is_absolute():
        base = Path.home() / ".cache"
    return base / "avctl" / "specs"


@functools.cache
def _code_identity() -> list[Any]:
    """What the parsed result depends on besides the text: this avctl and its YAML parser.

    PyYAML is known by its files (its version, and LibYAML's extension or its absence) rather than
    imported: a spec read from the cache needs no `import yaml`.
    """
    from avctl.version import __version__

    yaml_spec = importlib.util.find_spec("yaml")
    if yaml_spec is None or yaml_spec.origin is None:
        raise OSError("PyYAML not found")
    yaml_dir = Path(yaml_spec.origin).parent
    files = [_PACKAGE / "safeyaml.py", *sorted((_PACKAGE / "spec").glob("*.py")),
             Path(yaml_spec.origin), *sorted(yaml_dir.glob("_yaml*"))]
    code = [(str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]]
    return [FORMAT, __version__, sys.version_info[:2], code]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: str) -> str | None:
    try:
        return _sha256(Path(path).read_bytes())
    except OSError:
        return None


# --- the encoding: plain JSON, every object a tagged node ----------------------------------------


def encode(value: Any) -> Any:
    """`value` as JSON-ready data; TypeError for anything but plain values and dataclasses."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, frozenset):
        return {"frozenset": [encode(v) for v in value]}
    if isinstance(value, dict):  # keys may be numbers (YAML): kept as pairs, in order
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"dataclass": [type(value).__name__, fields]}
    raise TypeError(f"cannot cache a {type(value).__name__}")


def decode(node: Any, types: Mapping[str, Callable[..., Any]]) -> Any:
    """The value :func:`encode` made; dataclasses only from `types` (name -> class)."""
    if isinstance(node, list):
        return [decode(v, types) for v in node]
    if not isinstance(node, dict):
        return node
    [(tag, body)] = node.items()
    if tag == "tuple":
        return tuple(decode(v, types) for v in body)
    if tag == "frozenset":
        return frozenset(decode(v, types) for v in body)
    if tag == "dict":
        return {decode(k, types): decode(v, types) for k, v in body}
    if tag == "datetime":
        return dt.datetime.fromisoformat(body)
    if tag == "date":
        return dt.date.fromisoformat(body)
    if tag == "dataclass":
        name, fields = body
        return types[name](**{k: decode(v, types) for k, v in fields.items()})
    raise ValueError(f"unknown tag {tag!r}")


# --- the store -----------------------------------------------------------------------------------


class SpecCache:
    """Entries in one directory; every method returns quietly whatever happens on disk."""

    def __init__(self, directory: Path, types: Sequence[type]) -> None:
        self.directory = directory
        self.types = {t.__name__: t for t in types}

    def key(self, path: Path, text: str, strict: bool | None) -> str | None:
        try:
            identity = [_code_identity(), str(path), strict]
        except OSError:
            return None
        return _sha256(json.dumps(identity).encode() + b"\0" + text.encode())

    def get(self, key: str | None) -> Any:
        """The cached value for `key`, or None (missing, stale, damaged, foreign: all the same)."""
        if key is None:
            return None
        try:
            raw = self._read(self.directory / f"{key}.json")
            if raw is None:
                return None
            head, _, payload = raw.partition(b"\n")
            header = json.loads(head)
            if header.get("key") != key or header.get("sha256") != _sha256(payload):
                return None
            if any(_file_sha256(name) != digest for name, digest in header.get("sources", [])):
                return None
            return decode(json.loads(payload), self.types)
        except Exception:  # a cache never fails a load: anything odd is a miss
            return None

    def put(self, key: str | None, value: Any, sources: Sequence[Path] = ()) -> None:
        """Store `value` for `key`, with the files it was read from besides the spec."""
        if key is None:
            return
        try:
            payload = json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False).encode()
            header = {"key": key, "sha256": _sha256(payload),
                      "sources": [[str(p), _file_sha256(str(p))] for p in sources]}
            self._write(key, json.dumps(header).encode() + b"\n" + payload)
        except Exception:  # an unwritable cache only costs time
            return

    def _trusted_directory(self) -> bool:
        """The directory is ours and nobody else can write to it (else its entries are not read)."""
        st = os.stat(self.directory)
        if not stat.S_ISDIR(st.st_mode):
            return False
        if hasattr(os, "getuid"):  # POSIX; on Windows the user's profile directory is private already
            return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        return True

    def _read(self, path: Path) -> bytes | None:
        try:
            if not self._trusted_directory():
                return None
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
                return None
            return fh.read(MAX_ENTRY_BYTES + 1)

    def _write(self, key: str, data: bytes) -> None:
        from avctl.paths import ensure_private_dir

        ensure_private_dir(self.directory)
        if not self._trusted_directory():
            return
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.directory / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._prune()

    def _prune(self) -> None:
        names = [n for n in os.listdir(self.directory) if n.endswith(".json")]
        if len(names) <= MAX_ENTRIES:
            return
        entries = []
        for name in names:
            with contextlib.suppress(OSError):
                entries.append((os.stat(self.directory / name).st_mtime_ns, name))
        for _mtime, name in sorted(entries)[: len(entries) - MAX_ENTRIES * 3 // 4]:
            with contextlib.suppress(OSError):
                os.unlink(self.directory / name)


def default_cache(types: Sequence[type]) -> SpecCache | None:
    """The user's spec cache, or None when there is no home to put it in."""
    try:
        return SpecCache(cache_dir(), types)
    except (RuntimeError, KeyError, OSError):  # Path.home() without a home directory
        return None
