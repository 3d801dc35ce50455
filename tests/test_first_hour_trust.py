"""Certificates as a new user meets them (issue 15): a first pin is said once, with its fingerprint;
`trust --replace` leaves one line per device; `trust list` and `trust remove`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.transport.tls import KnownHosts

from .first_hour_fleet import avctl, mixed_fleet


def pin_lines(home: Path) -> list[str]:
    return [line for line in (home / "known_devices").read_text().splitlines() if line.strip()]


def test_first_pin_is_said_once_per_device(emulators: EmulatorThread, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    first = avctl("fleet", "status", "-i", str(fleet.inventory))
    said = [line for line in first.stderr.splitlines() if "pinned NEW fingerprint" in line]
    pins = KnownHosts().pins()
    # one line per endpoint avctl met: the codec, the phone, the pod's v2 and v1 sockets
    endpoints = {f"127.0.0.1:{fleet.codec.port}", f"127.0.0.1:{fleet.phone.port}", f"127.0.0.1:{fleet.pod.port}",
                 f"127.0.0.1:{fleet.pod.extra_ports['https']}"}
    assert set(pins) == endpoints
    assert sorted(said) == sorted(f"avctl: pinned NEW fingerprint {pins[e].fingerprint} for {e} (first use; "
                                  "'avctl trust list' shows the pins)" for e in endpoints), first.stderr
    assert "pinned" not in first.stdout  # stdout is the table (or the JSON), nothing else
    again = avctl("fleet", "status", "-i", str(fleet.inventory))
    assert "pinned" not in again.stderr, again.stderr


def test_replace_leaves_one_line(emulators: EmulatorThread, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    codec, other = f"127.0.0.1:{fleet.codec.port}", f"127.0.0.1:{fleet.phone.port}"
    avctl("trust", codec)
    avctl("trust", other)
    old = KnownHosts().get(codec)
    fleet.codec.reset_certificate()
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(fleet.codec))
    refused = avctl("trust", codec, code=2)
    assert "--replace" in refused.stderr
    out = avctl("trust", codec, "--replace").stdout
    new = KnownHosts().get(codec)
    assert new != old and out.strip() == f"{codec}: pinned {new} (was {old})"
    lines = pin_lines(avctl_home)
    assert [line.split()[0] for line in lines] == [codec, other]  # one line each, order kept
    assert old not in (avctl_home / "known_devices").read_text()
    assert lines[0] == f"{codec} {new}"
    # the replaced pin is the one checked from now on
    avctl("call", "-f", "videoos", codec, "system_get", "--password-env", "FLEET_PW")


def test_trust_list_and_remove(emulators: EmulatorThread, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    assert avctl("trust", "list").stdout == ""  # nothing pinned yet: said on stderr
    codec, phone = f"127.0.0.1:{fleet.codec.port}", f"127.0.0.1:{fleet.phone.port}"
    avctl("trust", codec)
    avctl("trust", "pin", phone)  # the subcommand by name is the same
    pins = KnownHosts().pins()
    listed = avctl("trust", "list").stdout.splitlines()
    assert listed == [f"{codec}  {pins[codec].fingerprint}", f"{phone}  {pins[phone].fingerprint}"]
    doc = json.loads(avctl("trust", "list", "--json").stdout)
    assert doc == [{"endpoint": e, "fingerprint": pins[e].fingerprint, "note": ""} for e in (codec, phone)]

    assert avctl("trust", "remove", codec).stdout.strip() == f"{codec}: pin removed"
    assert [line.split()[0] for line in pin_lines(avctl_home)] == [phone]
    gone = avctl("trust", "remove", codec, code=2)
    assert gone.stderr.startswith(f"avctl: error: {codec}: no pin to remove in ") and "Traceback" not in gone.output
    assert "'avctl trust list'" in gone.stderr
    # the older spelling still works
    assert avctl("trust", phone, "--remove").stdout.strip() == f"{phone}: pin removed"
    assert pin_lines(avctl_home) == []


def test_remove_takes_port_443_by_default(avctl_home: Path) -> None:
    kh = KnownHosts()
    kh.set("pod.example:443", "SHA256:" + ":".join(["AB"] * 32))
    kh.set("pod.example:8443", "SHA256:" + ":".join(["CD"] * 32))
    avctl("trust", "remove", "POD.example")
    assert list(KnownHosts().pins()) == ["pod.example:8443"]
    bad = avctl("trust", "remove", "pod.example", "--port", "x", code=2)
    assert "--port: port 'x' is not a number" in bad.stderr


def test_a_note_with_device_text_is_listed_escaped(avctl_home: Path) -> None:
    KnownHosts().set("room:443", "SHA256:" + ":".join(["EF"] * 32), note="issued for evil\x1b[31m")
    out = avctl("trust", "list").stdout
    assert "\x1b" not in out and "room:443" in out


def test_a_pin_written_while_another_process_rewrites_the_file_is_kept(
        avctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--replace` and `remove` write a new file: a writer that waited for the old one's lock must not
    append its line to the file that lost its name (that pin would be gone)."""
    import contextlib

    import avctl.transport.tls as tls

    kh = KnownHosts()
    kh.set("a:443", "SHA256:" + ":".join(["AB"] * 32))
    real_lock = tls.exclusive_lock
    other = KnownHosts()  # another process: its own cache

    @contextlib.contextmanager
    def lock_after_a_rewrite(fh: IO[str]) -> Iterator[None]:
        # the first time: while this writer waits, the other process replaces a's pin
        monkeypatch.setattr(tls, "exclusive_lock", real_lock)
        other.set("a:443", "SHA256:" + ":".join(["CD"] * 32), replace=True)
        with real_lock(fh):
            yield

    monkeypatch.setattr(tls, "exclusive_lock", lock_after_a_rewrite)
    kh.set("b:443", "SHA256:" + ":".join(["EF"] * 32))
    fresh = KnownHosts().pins()
    assert {k: p.fingerprint[7:9] for k, p in fresh.items()} == {"a:443": "CD", "b:443": "EF"}
