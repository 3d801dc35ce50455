"""One state home for pins, secrets, jobs and audit; every file in it private whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.errors import UsageError
from avctl.fleet import paths as fleet_paths
from avctl.fleet.credentials import SecretsStore, generate_key
from avctl.fleet.store import default_db_path
from avctl.paths import avctl_home
from avctl.transport.tls import KnownHosts

from .test_fleet_runner import PASSWORD, SPEC_PATH, spawn


def test_one_home_for_pins_secrets_and_jobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AVCTL_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    home = tmp_path / "xdg" / "avctl"
    assert fleet_paths.avctl_home is avctl_home
    assert KnownHosts().path == home / "known_devices"  # the pins used to ignore XDG_CONFIG_HOME
    assert SecretsStore().path == home / "secrets.json"
    assert default_db_path() == home / "avctl.db"


def test_tilde_is_expanded_and_relative_home_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AVCTL_HOME", "~/x")
    assert KnownHosts().path == tmp_path / "x" / "known_devices"  # not ./~/x/known_devices
    monkeypatch.setenv("AVCTL_HOME", "state")
    with pytest.raises(UsageError, match="AVCTL_HOME='state' is a relative path"):
        avctl_home()
    monkeypatch.delenv("AVCTL_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")  # invalid per the XDG spec: ignored
    assert avctl_home() == tmp_path / ".config" / "avctl"


def test_relative_home_is_one_clear_cli_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AVCTL_HOME", "state")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["trust", "127.0.0.1:1", "--remove"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("avctl: error: AVCTL_HOME='state' is a relative path")
    assert not (tmp_path / "state").exists()


def _modes(home: Path) -> dict[str, str]:
    out = {".": oct(stat.S_IMODE(home.stat().st_mode))}
    for p in sorted(home.rglob("*")):
        out[str(p.relative_to(home))] = oct(stat.S_IMODE(p.stat().st_mode))
    return out


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_state_file_private_whatever_the_umask(umask: int, emulators: EmulatorThread, tmp_path: Path) -> None:
    """A fleet run (pins, job database with its WAL files, audit) and `secrets set`, each in a real
    process with the umask given, leave only 0700 directories and 0600 files."""
    devs = spawn(emulators, 2)
    inv = tmp_path / "inv.yaml"
    inv.write_text("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    home = tmp_path / "new" / "state"  # neither exists yet: both are created by avctl
    env = {**os.environ, "AVCTL_HOME": str(home), "FLEET_PW": PASSWORD, "AVCTL_SECRETS_KEY": generate_key()}

    def avctl(*args: str, stdin: str = "") -> None:
        proc = subprocess.run(
            ["sh", "-c", f'umask {umask:03o} && exec "$0" -c "from avctl.cli.main import main; main()" "$@"',
             sys.executable, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr

    avctl("fleet", "run", "audio_volume_set", "volume=9", "-i", str(inv), f"--spec=videoos={SPEC_PATH}", "--yes")
    avctl("secrets", "set", "hq-admin", stdin="s3cret-value\n")
    assert {"known_devices", "avctl.db", "secrets.json"} <= set(os.listdir(home))
    modes = _modes(home)
    assert modes == {k: ("0o700" if (home / k).is_dir() else "0o600") for k in modes}, modes
    assert oct(stat.S_IMODE((tmp_path / "new").stat().st_mode)) == "0o700"


def test_existing_open_home_is_tightened(tmp_path: Path, avctl_home: Path) -> None:
    """An older avctl created the pins' home 0755: the next pin makes it private."""
    avctl_home.mkdir(mode=0o755)
    os.chmod(avctl_home, 0o755)
    KnownHosts().set("127.0.0.1:1", "SHA256:" + ":".join(["AB"] * 32))
    assert stat.S_IMODE(avctl_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((avctl_home / "known_devices").stat().st_mode) == 0o600


def test_job_database_and_its_wal_files_are_born_private(tmp_path: Path) -> None:
    """SQLite creates its -wal/-shm files with the database's mode: with the database created 0600
    (not 0666 & ~umask, then chmod), the WAL files, which hold recent rows, are private too."""
    from avctl.fleet.store import SqliteJobStore

    old = os.umask(0)
    try:
        store = SqliteJobStore(tmp_path / "db" / "avctl.db")
        try:
            store.create_job(action="x", selection="all", params={}, devices=["a"], user="u")
            files = sorted(p.name for p in (tmp_path / "db").iterdir())
            assert {"avctl.db", "avctl.db-wal", "avctl.db-shm"} <= set(files)
            assert {p: oct(stat.S_IMODE((tmp_path / "db" / p).stat().st_mode)) for p in files} == {
                p: "0o600" for p in files}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
