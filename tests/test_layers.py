"""The layering contract (pyproject.toml ``[tool.importlinter]``) holds, and it can fail.

``lint-imports`` runs in a real subprocess against a copy of the package, so a test can add the
one import a contract forbids and see the contract break, naming that import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy(tmp_path: Path) -> Path:
    """The package and its contract, copied: src/avctl plus pyproject.toml."""
    shutil.copytree(ROOT / "src" / "avctl", tmp_path / "src" / "avctl",
                    ignore=shutil.ignore_patterns("__pycache__", "specs"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    # the copy comes first on the path, before the editable install of the real package
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(project / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache", str(project / "pyproject.toml")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def _add_line(path: Path, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, path
    path.write_text(head + sep + line + "\n" + rest, encoding="utf-8")


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # a lower layer importing an upper one: the emulator reaching into the command line
    ("emulator/fleet.py", "import avctl.cli.common", "avctl.emulator is not allowed to import avctl.cli"),
    # siblings are independent: the fleet library never imports the emulator
    ("fleet/jobs.py", "import avctl.emulator.core", "avctl.fleet is not allowed to import avctl.emulator"),
    # the bottom helpers stay below the spec
    ("redact.py", "import avctl.spec.model", "avctl.redact is not allowed to import avctl.spec"),
    # the server never reaches for the emulators, and the database layer stays below the server
    ("server/model.py", "import avctl.emulator.core", "avctl.server is not allowed to import avctl.emulator"),
    ("db/models.py", "import avctl.server.model", "avctl.db is not allowed to import avctl.server"),
    # presentation stays in the command line
    ("fleet/output.py", "import rich.table", "avctl.fleet is not allowed to import rich"),
])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    project = _copy(tmp_path)
    _add_line(project / "src" / "avctl" / module, line)
    result = _lint(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout
    assert "BROKEN" in result.stdout


def test_every_package_directory_is_packaged() -> None:
    """A directory of modules without __init__.py is left out of the wheel (and out of the
    contract): avctl.emulator was."""
    found = set(find_packages(str(ROOT / "src")))
    dirs = {".".join(p.parent.relative_to(ROOT / "src").parts)
            for p in (ROOT / "src" / "avctl").rglob("*.py") if "__pycache__" not in p.parts}
    assert dirs <= found, sorted(dirs - found)
