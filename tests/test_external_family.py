"""A family from another package, used through the command line like a built-in one.

The test writes a small family package ("acme" projectors: its own spec, a family module, an
emulator and one entry-point line), installs it with pip into a directory of its own (offline,
no build isolation) and runs the real `avctl` as subprocesses with that directory on PYTHONPATH:
`avctl actions acme`, `avctl emulate acme` (a background process, stopped with SIGTERM),
`avctl call -f acme`, `avctl fleet status` and `avctl fleet run`. Then the failures: a plugin whose
module cannot be imported, and two packages that provide the same family name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

AVCTL = str(Path(sys.executable).with_name("avctl"))

ACME_SPEC = textwrap.dedent('''\
    ---
    spec_id: acme/projector
    schema_version: ai4av-public-spec-v1
    title: "Acme projector REST API"
    family: acme
    license: CC0-1.0
    ---

    # Acme projector

    ## Summary

    A projector with one switch, for the external-family test.

    ## Transport

    ```yaml
    protocols: [https]
    port: 443
    auth:
      type: http_basic
      default_user: admin
    ```

    ## Actions

    ```yaml
    - id: power_get
      label: Read the power state
      kind: query
      method: GET
      path: /api/power
    - id: power_set
      label: Switch the power on or off
      kind: action
      method: PUT
      path: /api/power
      params:
        - name: power
          in: body
          type: enum
          values: ["on", "off"]
          required: true
    ```

    ## Feedbacks

    ```yaml
    - id: power
      type: string
      from: {action: power_get, pointer: /power}
    ```
    ''')

FAMILY_MODULE = '''\
from avctl.families import Family
from avctl.families.registry import FamilyPlugin, SpecResource


class Acme(Family):
    name = "acme"


plugin = FamilyPlugin("acme", Acme, spec=SpecResource("acme_avctl", "acme.md"),
                      emulator="acme_avctl.emulator:EmulatedAcme", description="Acme projectors")
'''

EMULATOR_MODULE = '''\
import hmac
from typing import Any

from avctl.auth.http import basic_authorization
from avctl.emulator.core import EmulatedDevice, reply


class EmulatedAcme(EmulatedDevice):
    family = "acme"

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        super().__init__(name, host, port, **kwargs)
        self.power = "off"

    def body_needed_for_auth(self, request, action):
        return False

    async def authenticate(self, request, action, body):
        expected = basic_authorization(self.user, self.password)
        if hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return None
        return reply({"error": "unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="acme"'})

    async def on_power_get(self, ctx):
        return reply({"power": self.power})

    async def on_power_set(self, ctx):
        self.power = ctx.json()["power"]
        return reply({"power": self.power})
'''


def make_package(root: Path, dist: str, package: str, entry_points: str, files: dict[str, str]) -> Path:
    src = root / dist
    (src / package).mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(f'''\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.1"

        [project.entry-points."avctl.families"]
        {entry_points}

        [tool.setuptools]
        packages = ["{package}"]

        [tool.setuptools.package-data]
        {package} = ["*.md"]
        '''))
    for name, text in files.items():
        (src / package / name).write_text(text)
    return src


def pip_install(src: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                   check=True, capture_output=True, timeout=300, cwd=src)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Install dirs: acme (the family), broken (a plugin that cannot import), acme-copy (same name)."""
    root = tmp_path_factory.mktemp("plugins")
    acme = make_package(root, "acme-avctl", "acme_avctl", 'acme = "acme_avctl.family:plugin"', {
        "__init__.py": "", "family.py": FAMILY_MODULE, "emulator.py": EMULATOR_MODULE, "acme.md": ACME_SPEC})
    broken = make_package(root, "broken-avctl", "broken_avctl", 'broken = "broken_avctl:plugin"', {
        "__init__.py": "import avctl_missing_dependency\n"})
    copy = make_package(root, "acme-copy", "acme_copy", 'acme = "acme_copy:plugin"', {
        "__init__.py": FAMILY_MODULE.replace("acme_avctl", "acme_copy")})
    out = {}
    for name, src in (("acme", acme), ("broken", broken), ("copy", copy)):
        pip_install(src, root / f"site-{name}")
        out[name] = root / f"site-{name}"
    return out


def env_for(*sites: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, sites)), "AVCTL_HOME": str(home),
            "ACME_PASS": "acme-pw-1"}


def run(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([AVCTL, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, (done.stdout, done.stderr)
    return done


@pytest.fixture
def acme_env(sites: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    return env_for(sites["acme"], home=tmp_path / "home")


@pytest.fixture
def emulated_acme(acme_env: dict[str, str]) -> Iterator[str]:
    """`avctl emulate acme` in the background; yields its address, stops it with SIGTERM."""
    proc = subprocess.Popen([AVCTL, "emulate", "acme", "--password", acme_env["ACME_PASS"]], env=acme_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"acme\s+https://(127\.0\.0\.1:\d+)\s+user=admin password=acme-pw-1", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_actions_lists_the_external_family(acme_env: dict[str, str]) -> None:
    listed = json.loads(run(acme_env, "actions", "acme", "--json").stdout)
    assert [(a["family"], a["id"], a["kind"]) for a in listed] == [
        ("acme", "power_get", "query"), ("acme", "power_set", "action")]
    every = {a["family"] for a in json.loads(run(acme_env, "actions", "--json").stdout)}
    assert every == {"acme", "polyuc", "solstice", "videoos"}  # built-ins come the same way
    assert "acme" in run(acme_env, "emulate", "--help").stdout
    assert "--acme" in run(acme_env, "emulate", "fleet", "--help").stdout


def test_call_against_the_emulated_family(acme_env: dict[str, str], emulated_acme: str) -> None:
    call = ("call", "-f", "acme", emulated_acme, "--password-env", "ACME_PASS", "--json")
    assert json.loads(run(acme_env, *call, "power_get").stdout)["data"] == {"power": "off"}
    run(acme_env, *call, "power_set", "power=on")
    assert json.loads(run(acme_env, *call, "power_get").stdout)["data"] == {"power": "on"}
    # Basic auth from avctl.auth.http: a wrong password is a clear auth error, not retried
    bad = {**acme_env, "ACME_PASS": "wrong"}
    done = run(bad, *call, "power_get", code=1)
    assert "rejected user 'admin'" in done.stderr and "Traceback" not in done.stderr


def test_fleet_status_and_run_with_the_external_family(acme_env: dict[str, str], emulated_acme: str,
                                                       tmp_path: Path) -> None:
    inv = tmp_path / "fleet.yaml"
    inv.write_text("defaults: {family: acme, user: admin, password: env:ACME_PASS}\n"
                   f"devices:\n  projector-1: {{address: '{emulated_acme}'}}\n")
    status = run(acme_env, "fleet", "status", "-i", str(inv), "--json").stdout
    doc = json.loads(status[status.index("{"):])
    assert doc["summary"]["ok"] == 1, doc
    assert '"power": "off"' in status
    ran = run(acme_env, "fleet", "run", "power_set", "power=on", "-i", str(inv), "--json").stdout
    assert json.loads(ran[ran.index("{"):])["summary"]["ok"] == 1
    status = run(acme_env, "fleet", "status", "-i", str(inv), "--json").stdout
    assert '"power": "on"' in status


def test_a_plugin_that_fails_to_import_is_reported_as_such(sites: dict[str, Path], tmp_path: Path) -> None:
    env = env_for(sites["acme"], sites["broken"], home=tmp_path)
    done = run(env, "actions", "broken", code=2)
    assert ("avctl: error: family plugin 'broken' (broken_avctl:plugin) failed to load: "
            "No module named 'avctl_missing_dependency'") in done.stderr
    assert "unknown" not in done.stderr and "Traceback" not in done.stderr
    assert "broken-avctl" in done.stderr  # the hint names the package to fix or remove
    run(env, "actions", "acme")  # the other families still work


def test_two_packages_with_one_family_name_is_an_error(sites: dict[str, Path], tmp_path: Path) -> None:
    env = env_for(sites["acme"], sites["copy"], home=tmp_path)
    done = run(env, "actions", "acme", code=2)
    assert re.search(r"family plugin 'acme' is provided twice: by acme-(avctl|copy) \(acme_(avctl\.family|copy)"
                     r":plugin\) and by acme-(avctl|copy)", done.stderr), done.stderr
    assert "acme-avctl" in done.stderr and "acme-copy" in done.stderr
    run(env, "actions", "videoos")  # the duplicate stops only the name it concerns


def test_an_unknown_family_lists_the_known_ones(acme_env: dict[str, str]) -> None:
    done = run(acme_env, "call", "-f", "acmee", "127.0.0.1", "power_get", code=2)
    assert "unknown device family 'acmee'" in done.stderr
    assert "known families: acme, polyuc, solstice, videoos" in done.stderr
