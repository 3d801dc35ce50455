"""Writes the two lock files from a working .venv: run `.venv/bin/python scripts/lock.py`.

- requirements.lock: everything the venv holds (`pip freeze`): avctl's dependencies and its dev
  tools (what ./scripts/test and CI install);
- requirements-runtime.lock: the part of it avctl itself needs to run (what ./scripts/demo
  installs), computed from the installed distributions' own requirements, same versions.

tests/test_lock.py checks both against the venv with the same closure.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FULL, RUNTIME = ROOT / "requirements.lock", ROOT / "requirements-runtime.lock"
#: pinned in both: the editable install is built without build isolation (scripts/bootstrap.sh)
BUILD_ONLY = {"setuptools"}
HEADERS = {
    FULL: "# Pinned dependencies of avctl and its dev tools (regenerate: .venv/bin/python scripts/lock.py)",
    RUNTIME: "# Pinned dependencies avctl needs to run, a subset of requirements.lock (regenerate: .venv/bin/python "
             "scripts/lock.py)",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(extras: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every distribution avctl (with `extras`) needs here -> the one that first pulled it in."""
    needed: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("avctl", extras)]
    while todo:
        name, wanted = todo.pop()
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = norm(req.name)
            if key not in needed:
                needed[key] = name
                todo.append((req.name, frozenset(req.extras)))
    return needed


def pins(path: Path) -> dict[str, str]:
    """normalised name -> version of a lock file."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[norm(name)] = version
    return out


def main() -> None:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    lines = [line for line in frozen if not re.match(r"(avctl|pip)==", line)]
    runtime = set(closure()) | BUILD_ONLY
    FULL.write_text("\n".join([HEADERS[FULL], *lines]) + "\n", encoding="utf-8")
    RUNTIME.write_text("\n".join([HEADERS[RUNTIME], *(line for line in lines if norm(line.partition("==")[0])
                                                      in runtime)]) + "\n", encoding="utf-8")
    print(f"wrote {FULL.name} ({len(lines)} pins) and {RUNTIME.name}")


if __name__ == "__main__":
    main()
