"""requirements.lock pins exactly what avctl and its dev tools need: nothing missing, nothing unused.

The closure is computed from the installed distributions' own requirements (markers evaluated for
this interpreter), starting from avctl with its ``dev`` extra. ``setuptools`` is pinned too: the
editable install is built without build isolation (scripts/bootstrap.sh).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BUILD_ONLY = {"setuptools"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure() -> dict[str, str]:
    """Every distribution avctl[dev] needs here -> the one that first pulled it in."""
    needed: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("avctl", frozenset({"dev"}))]
    while todo:
        name, extras = todo.pop()
        dist = metadata.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = _norm(req.name)
            if key not in needed:
                needed[key] = name
                todo.append((req.name, frozenset(req.extras)))
    return needed


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_norm(name)] = version
    return pins


def test_lock_pins_every_needed_distribution_and_nothing_else() -> None:
    needed, locked = _closure(), _locked()
    assert sorted(set(needed) - set(locked)) == []
    assert sorted(set(locked) - set(needed) - BUILD_ONLY) == []


def test_lazy_importer_stays_because_keyring_needs_it() -> None:
    """Issue 9 asked to drop it as unused; it is not: keyring -> importlib_metadata (Python < 3.12)
    -> lazy-importer (< 3.15), imported when importlib_metadata is."""
    needed = _closure()
    assert needed.get("lazy-importer") == "importlib_metadata"
    assert _norm(needed["importlib-metadata"]) == "keyring"


def test_installed_versions_are_the_pinned_ones() -> None:
    for name, version in _locked().items():
        assert metadata.version(name) == version, name
