"""The lock files pin exactly what avctl needs: nothing missing, nothing unused.

requirements.lock is the closure of avctl with its ``dev`` extra (what ./scripts/test installs),
requirements-runtime.lock the closure of avctl alone (what ./scripts/demo installs), with the same
versions. Closures are computed from the installed distributions' own requirements (markers
evaluated for this interpreter) by scripts/lock.py, which writes both files. ``setuptools`` is pinned
in both: the editable install is built without build isolation (scripts/bootstrap.sh).
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("avctl_scripts_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LOCK = _lock_module()


def test_lock_pins_every_needed_distribution_and_nothing_else() -> None:
    needed, locked = LOCK.closure(frozenset({"dev"})), LOCK.pins(LOCK.FULL)
    assert sorted(set(needed) - set(locked)) == []
    assert sorted(set(locked) - set(needed) - LOCK.BUILD_ONLY) == []


def test_runtime_lock_is_avctl_alone_with_the_same_versions() -> None:
    runtime, full = LOCK.pins(LOCK.RUNTIME), LOCK.pins(LOCK.FULL)
    assert sorted(runtime) == sorted(set(LOCK.closure()) | LOCK.BUILD_ONLY)
    assert {name: full.get(name) for name in runtime} == runtime
    # the point of the split: no developer tool in what the demo installs
    assert not {"mypy", "ruff", "pytest", "playwright", "import-linter"} & set(runtime)


def test_lazy_importer_stays_because_keyring_needs_it() -> None:
    """Issue 9 asked to drop it as unused; it is not: keyring -> importlib_metadata (Python < 3.12)
    -> lazy-importer (< 3.15), imported when importlib_metadata is."""
    needed = LOCK.closure()
    assert needed.get("lazy-importer") == "importlib_metadata"
    assert LOCK.norm(needed["importlib-metadata"]) == "keyring"


def test_installed_versions_are_the_pinned_ones() -> None:
    for name, version in LOCK.pins(LOCK.FULL).items():
        assert metadata.version(name) == version, name
