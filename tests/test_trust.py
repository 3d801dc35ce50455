"""Trust on first use: every first pin said once (odd ones as a warning, with a note); pins per typed name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from avctl.cli.main import cli
from avctl.emulator.certs import make_certificate
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.spec import load_spec
from avctl.transport.tls import KnownHosts, certificate_oddities

from .conftest import DATA

SPEC = load_spec(DATA / "videoos_min.md")
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def small_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("avctl.cli.call.builtin_spec", lambda family: SPEC)
    monkeypatch.setenv("ROOM_PW", "pw-123")


def device(emulators: EmulatorThread, **cert: Any) -> EmulatedVideoOS:
    """An emulated codec; `cert` makes its certificate odd (see make_certificate)."""
    dev = EmulatedVideoOS("room", spec=SPEC, password="pw-123")
    if cert:
        dev.cert_pem, dev.key_pem = make_certificate("127.0.0.1", "room", **cert)
    emulators.add(dev)
    return dev


def call(address: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["call", "-f", "videoos", address, "system_get", "--password-env", "ROOM_PW"])
    return result.exit_code, result.stderr


ODD = [
    ({"not_before": NOW - 30 * DAY, "not_after": NOW - 2 * DAY}, f"expired {(NOW - 2 * DAY):%Y-%m-%d}"),
    ({"not_before": NOW + 2 * DAY}, f"not valid before {(NOW + 2 * DAY):%Y-%m-%d}"),
    ({"names": ["other-room.example"]}, "issued for other-room.example, not 127.0.0.1"),
]


@pytest.mark.parametrize(("cert", "odd"), ODD, ids=["expired", "not-yet-valid", "other-name"])
def test_odd_certificate_pinned_with_a_warning_once(cert: dict[str, Any], odd: str, emulators: EmulatorThread,
                                                   avctl_home: Path) -> None:
    dev = device(emulators, **cert)
    endpoint = f"127.0.0.1:{dev.port}"
    code, err = call(endpoint)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("avctl: warning:")]
    assert len(warnings) == 1, err
    fp = KnownHosts().get(endpoint)
    assert f"pinned NEW fingerprint {fp} for {endpoint} on first use although the certificate is odd: {odd}" \
        in warnings[0]
    assert f"'avctl trust remove {endpoint}'" in warnings[0]
    assert err.count("pinned NEW") == 1, err
    line = next(ln for ln in (avctl_home / "known_devices").read_text().splitlines() if ln.startswith(endpoint))
    assert line.endswith(f"# first use: {odd}")
    assert KnownHosts().note(endpoint) == f"first use: {odd}"
    code, err = call(endpoint)  # pinned now: silent
    assert code == 0 and "warning" not in err, err


def test_ordinary_self_signed_certificate_is_pinned_silently(emulators: EmulatorThread, avctl_home: Path) -> None:
    dev = device(emulators)
    endpoint = f"127.0.0.1:{dev.port}"
    code, err = call(endpoint)
    assert code == 0 and "warning" not in err, err
    assert "#" not in (avctl_home / "known_devices").read_text()
    # said once, with the fingerprint: the user can compare it with the device's own display
    assert f"avctl: pinned NEW fingerprint {KnownHosts().get(endpoint)} for {endpoint}" in err
    assert err.count("pinned NEW") == 1, err
    code, err = call(endpoint)
    assert code == 0 and "pinned" not in err, err


def test_pins_are_per_typed_name(emulators: EmulatorThread, avctl_home: Path) -> None:
    """The emulator's certificate names 127.0.0.1; typed as localhost it is another pin, and odd."""
    dev = device(emulators)
    assert call(f"127.0.0.1:{dev.port}")[0] == 0
    code, err = call(f"localhost:{dev.port}")
    assert code == 0, err
    assert f"for localhost:{dev.port} on first use although the certificate is odd: issued for 127.0.0.1, " \
           "not localhost" in err
    kh = KnownHosts()
    assert kh.get(f"localhost:{dev.port}") == kh.get(f"127.0.0.1:{dev.port}") is not None
    assert sorted(ln.split()[0] for ln in (avctl_home / "known_devices").read_text().splitlines()) == [
        f"127.0.0.1:{dev.port}", f"localhost:{dev.port}"]


def test_trust_command_names_the_pin_and_says_what_is_odd(emulators: EmulatorThread, avctl_home: Path) -> None:
    dev = device(emulators, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    result = CliRunner().invoke(cli, ["trust", f"127.0.0.1:{dev.port}"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"127.0.0.1:{dev.port}: pinned SHA256:")
    assert f"the certificate of 127.0.0.1:{dev.port} is odd: expired" in result.stderr
    assert "expired" in KnownHosts().note(f"127.0.0.1:{dev.port}")


def test_certificate_changed_names_the_pinned_name(emulators: EmulatorThread) -> None:
    dev = device(emulators)
    assert call(f"localhost:{dev.port}")[0] == 0
    dev.reset_certificate()
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(dev))
    code, err = call(f"localhost:{dev.port}")
    assert code == 1
    assert f"certificate of localhost:{dev.port} changed" in err
    assert f"'avctl trust localhost:{dev.port} --replace' (pins are kept per name as typed" in err


def test_oddities_of_names_wildcards_and_ips() -> None:
    def odd(host: str, names: list[str]) -> list[str]:
        pem, _ = make_certificate("127.0.0.1", "x", names=names)
        return certificate_oddities(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER), host)

    assert odd("Room-1.Example", ["room-1.example"]) == []
    assert odd("room-1.example", ["*.example"]) == []
    assert odd("a.room-1.example", ["*.example"]) == ["issued for *.example, not a.room-1.example"]
    assert odd("::1", ["0:0::1"]) == []
    assert odd("127.0.0.2", ["127.0.0.1"]) == ["issued for 127.0.0.1, not 127.0.0.2"]


def test_pins_of_older_files_are_found_whatever_the_spelling(tmp_path: Path) -> None:
    """Older avctl kept the host's case and wrote IPv6 pins without brackets: still the same pins,
    never a silent re-pin."""
    fp = "SHA256:" + ":".join(["AB"] * 32)
    (tmp_path / "kh").write_text(f"Room-1.Example:443 {fp}\n::1:8443 {fp}\n")
    kh = KnownHosts(tmp_path / "kh")
    assert kh.get("room-1.example:443") == kh.get("[::1]:8443") == fp


def test_names_from_the_certificate_are_printed_as_text() -> None:
    pem, _ = make_certificate("127.0.0.1", "x", names=["\x1b]0;owned\x07evil.example"])
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    (odd,) = certificate_oddities(der, "127.0.0.1")
    assert "\x1b" not in odd and "\x07" not in odd and "\\x1b]0;owned\\x07evil.example" in odd


def test_known_hosts_takes_a_string_path(tmp_path: Path) -> None:
    from avctl.transport.tls import KnownHosts

    pins = KnownHosts(str(tmp_path / "pins"))
    assert pins.path == tmp_path / "pins" and pins.get("h:443") is None
