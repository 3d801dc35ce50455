"""The README's install section, run as written in a fresh virtual environment (issue 15).

The block under "## Install" that makes a virtual environment runs line by line in bash, with HOME
pointing at a temporary directory (so `~/.venvs/avctl` is a fresh one) and the current directory a
copy of the checkout. pip gets the locked runtime dependencies from a wheelhouse packed from this
test environment's own installed distributions (`--no-index`): the same versions, no registry
round trips, so the test is quick and works offline. Then the installed `avctl --version` answers
and bash completion, loaded as the README says, completes a family and an action name. The pipx
line runs the same way (pipx is a dev dependency), into a temporary HOME.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "demo-out", "__pycache__", "*.egg-info", "build", ".*_cache")


def readme_block(starting: str) -> str:
    """The ```sh block of the README's Install section whose first line starts with `starting`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        if block.startswith(starting):
            return str(block)
    raise AssertionError(f"no block starting {starting!r} in the README's Install section")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pack_wheel(name: str, into: Path) -> None:
    """Re-pack one installed distribution as the wheel it was installed from (files, tags, metadata);
    stored, not compressed: pip unpacks it once, and deflating 150 MB would cost more than it saves."""
    dist = metadata.distribution(name)
    site = Path(str(dist.locate_file("")))
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(":", 1)[1].strip().split("-") for line in (site / info / "WHEEL").read_text().splitlines()
            if line.startswith("Tag:")]
    # the compressed tag set of the file name: py2-none-any + py3-none-any -> py2.py3-none-any
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    wheel = into / f"{re.sub(r'[-_.]+', '_', dist.metadata['Name'])}-{dist.version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for f in files:
            if f.parts[0] == info and f.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            data = (site / f).read_bytes()
            zf.writestr(str(f), data)
            record.append(f"{f},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("wheelhouse")
    for line in (ROOT / "requirements-runtime.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            pack_wheel(line.partition("==")[0], into)
    return into


@pytest.fixture(scope="module")
def installed(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Runs the README's venv block; the environment a user's shell would have afterwards."""
    work = tmp_path_factory.mktemp("first-hour")
    clone = work / "avctl"
    shutil.copytree(ROOT, clone, ignore=SKIP_COPY)
    home = work / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_CONFIG_FILE": os.devnull, "AVCTL_HOME": str(work / "state"), "LANG": "C.UTF-8"}
    block = readme_block("python3 -m venv")
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + block + "\ncommand -v avctl"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return {**env, "PATH": f"{home}/.venvs/avctl/bin:{env['PATH']}", "OUT": done.stdout, "VENV": f"{home}/.venvs/avctl"}


def test_the_install_block_gives_avctl_on_the_path_with_its_version(installed: dict[str, str]) -> None:
    version = metadata.version("avctl")
    assert f"avctl, version {version}" in installed["OUT"]
    assert installed["OUT"].strip().endswith(f"{installed['VENV']}/bin/avctl")  # `command -v avctl`: the new one
    # installed, not run from the checkout: the specs came along as package data
    where = subprocess.run([f"{installed['VENV']}/bin/python", "-c", "import avctl; print(avctl.__file__)"],
                           capture_output=True, text=True, check=True, env=installed).stdout
    assert where.startswith(installed["VENV"]), where
    described = subprocess.run(["avctl", "describe", "videoos", "audio_volume_set"], capture_output=True, text=True,
                               env=installed, timeout=60)
    assert described.returncode == 0 and "volume" in described.stdout, described.stderr


def test_a_runtime_install_has_no_developer_tools(installed: dict[str, str]) -> None:
    listed = subprocess.run([f"{installed['VENV']}/bin/python", "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True, env=installed).stdout.lower()
    for tool in ("mypy", "ruff", "pytest", "playwright", "import-linter"):
        assert f"\n{tool}==" not in "\n" + listed, tool


def _bash_complete(env: dict[str, str], *words: str) -> list[str]:
    """What <Tab> offers after `words` in bash with the README's completion line loaded."""
    line = next(x for x in readme_block("eval").splitlines() if "completion bash" in x).split("#")[0].strip()
    script = (f"{line}\nCOMP_WORDS=({' '.join(words)})\nCOMP_CWORD={len(words) - 1}\n"
              "_avctl_completion avctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_completes_families_and_actions(installed: dict[str, str]) -> None:
    assert _bash_complete(installed, "avctl", "call", "-f", "vid") == ["videoos"]
    assert _bash_complete(installed, "avctl", "describe", "videoos", "audio_volume_s") == ["audio_volume_set"]
    assert "callctrl_dial" in _bash_complete(installed, "avctl", "fleet", "run", "--family", "polyuc", "callctrl_")
    assert _bash_complete(installed, "avctl", "emulate", "sol") == ["solstice"]
    assert "completion" in _bash_complete(installed, "avctl", "comp")


def test_completion_scripts_for_zsh_and_fish_and_a_wrong_shell(installed: dict[str, str]) -> None:
    for shell, mark in (("zsh", "#compdef avctl"), ("fish", "complete --no-files --command avctl")):
        done = subprocess.run(["avctl", "completion", shell], capture_output=True, text=True, env=installed)
        assert done.returncode == 0 and mark in done.stdout, done.stdout[:300]
    wrong = subprocess.run(["avctl", "completion", "tcsh"], capture_output=True, text=True, env=installed)
    assert wrong.returncode == 2 and "bash" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_pipx_line_installs_avctl_in_its_own_environment(wheelhouse: Path,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """The README's `pipx install .`, run in a copy of the checkout with HOME in a temporary
    directory (pipx's environments and its ~/.local/bin land there). Offline, as the venv block:
    pip finds the locked versions in the wheelhouse, and pipx keeps the pip of Python's ensurepip
    for its shared environment instead of upgrading it from the registry."""
    pipx = Path(sys.executable).parent / "pipx"
    assert pipx.exists(), "pipx is a dev dependency (requirements.lock): run ./scripts/test to install it"
    work = tmp_path_factory.mktemp("pipx")
    clone = work / "avctl"
    shutil.copytree(ROOT, clone, ignore=SKIP_COPY)
    home = work / "home"
    home.mkdir()
    line = readme_block("pipx install").splitlines()[0].split("#")[0].strip()
    assert line == "pipx install ."
    env = {"HOME": str(home), "PATH": f"{pipx.parent}:{os.environ['PATH']}", "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull,
           "PIPX_DISABLE_SHARED_LIBS_AUTO_UPGRADE": "1", "LANG": "C.UTF-8", "AVCTL_HOME": str(work / "state")}
    for name in ("PIPX_HOME", "PIPX_BIN_DIR", "PIPX_MAN_DIR", "PIPX_DEFAULT_PYTHON", "VIRTUAL_ENV"):
        env.pop(name, None)
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{line}"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    avctl = home / ".local" / "bin" / "avctl"
    version = subprocess.run([str(avctl), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0 and f"avctl, version {metadata.version('avctl')}" in version.stdout
    # its own environment, not the checkout's .venv: the specs came along as package data
    described = subprocess.run([str(avctl), "describe", "polyuc", "callctrl_dial"], capture_output=True, text=True,
                               env=env, timeout=60)
    assert described.returncode == 0 and "Dest" in described.stdout, described.stderr
    assert str(avctl.resolve()).startswith(str(home)), avctl.resolve()
