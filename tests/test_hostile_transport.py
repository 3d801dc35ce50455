"""The client against a hostile device (avctl.emulator.hostile) over real HTTP(S) on loopback.

Each test switches on one misbehaviour and checks that avctl reads no more than its cap, writes no
file it was not asked to, puts no credential into a message, and answers with one error line.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from avctl.auth import Credentials
from avctl.cli.main import cli
from avctl.device import Device
from avctl.emulator.certs import make_certificate, server_context
from avctl.emulator.hostile import HostileDevice
from avctl.errors import DeviceError, ResponseTooLarge, UsageError, ValidationError
from avctl.families.solstice import token_expiry
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import parse_inventory
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.verbs import ActionTask
from avctl.request import Request
from avctl.spec import load_spec, read_spec
from avctl.transport.http import HttpTransport
from avctl.transport.tls import TLSPolicy

from .conftest import DATA

PASSWORD = "hostile-pw-Xy7!"
MIB = 1 << 20


@pytest.fixture
def pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_PW", PASSWORD)


def device(family: str, hostile: HostileDevice, tls: TLSPolicy, **kwargs: Any) -> Device:
    return Device(family, hostile.address("https"), credentials=Credentials(None, PASSWORD), tls=tls,
                  ports={"https": hostile.ports["https"]}, **kwargs)


def avctl(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(code: int, err: str, expected_code: int = 1) -> str:
    """The error line of a failed `avctl` run, after checking it is the only one and no traceback."""
    assert code == expected_code, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("avctl: error:")]
    assert len(errors) == 1, err
    return errors[0]


# --- the server itself ----------------------------------------------------------------------


@pytest.mark.parametrize(("family", "action"), [("videoos", "audio_get"), ("solstice", "info_get"),
                                                 ("polyuc", "device_info"), ("solstice", "v1_config_get")])
async def test_hostile_server_gets_past_each_login(hostile: HostileDevice, tls: TLSPolicy, family: str,
                                                   action: str) -> None:
    async with device(family, hostile, tls) as dev:
        result = await dev.call(action)
    assert result.data == {"ok": True}
    seen = [r.path_qs for r in hostile.requests]
    assert any(dev.spec.action(action).path in p for p in seen)


async def test_hostile_server_records_a_bounded_log(hostile: HostileDevice) -> None:
    transport = HttpTransport(TLSPolicy.insecure())
    try:
        for i in range(300):
            await transport.send(hostile_endpoint(hostile), Request("POST", f"/n/{i}", body=b"x" * 10_000),
                                 timeout=5)
    finally:
        await transport.close()
    assert len(hostile.requests) == 256
    assert hostile.requests[0].path_qs == "/n/44" and hostile.requests[-1].path_qs == "/n/299"
    assert {len(r.body) for r in hostile.requests} == {4096}


# --- response size caps (item 2) --------------------------------------------------------------


async def test_huge_body_stops_at_the_cap(hostile: HostileDevice, tls: TLSPolicy) -> None:
    hostile.hostility.body_bytes = 64 * MIB
    async with device("videoos", hostile, tls, max_response_bytes=MIB) as dev:
        with pytest.raises(ResponseTooLarge) as caught:
            await dev.call("audio_get")
    err = caught.value
    assert err.cap == MIB and not err.transient and err.kind == "response_too_large"
    assert "audio_get" in err.message and str(MIB) in err.message
    assert err.hint and "--max-response" in err.hint


async def test_endless_chunked_body_stops_at_the_spec_cap(hostile: HostileDevice, tls: TLSPolicy) -> None:
    hostile.hostility.endless = True
    async with device("polyuc", hostile, tls) as dev:
        with pytest.raises(ResponseTooLarge) as caught:
            await dev.call("device_info")
    assert caught.value.cap == dev.spec.transport.max_response_bytes == 4 * MIB


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_bomb_is_capped_after_inflating(hostile: HostileDevice, tls: TLSPolicy,
                                                         encoding: str) -> None:
    hostile.hostility.gzip_bomb = 1 << 30
    hostile.hostility.encoding = encoding
    async with device("videoos", hostile, tls, max_response_bytes=2 * MIB) as dev:
        with pytest.raises(ResponseTooLarge):
            await dev.call("audio_get")


#: runs `avctl ARGV` and prints its exit code and peak RSS. Linux charges a child started with vfork
#: (as subprocess does) the peak RSS of the process it was forked from, so avctl is started from this
#: small interpreter rather than from pytest, whose own RSS grows over the suite past avctl's
_MEASURE_RSS = """
import os, subprocess, sys
with subprocess.Popen([sys.executable, "-m", "avctl.cli.main", *sys.argv[1:]], stdout=subprocess.DEVNULL) as p:
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
print(p.returncode, usage.ru_maxrss)
"""


def _peak_rss_mib(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run `avctl ARGS` in a child process; its exit code, stderr and peak RSS (MiB, Linux KiB units)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE_RSS, *args], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    code, rss_kib = done.stdout.split()
    return int(code), done.stderr, int(rss_kib) / 1024


def test_gzip_bomb_keeps_peak_memory_near_the_cap(hostile: HostileDevice, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "HOSTILE_PW": PASSWORD, "AVCTL_HOME": str(tmp_path / "home")}
    args = ["call", "-f", "videoos", hostile.address("https"), "audio_get", "--password-env", "HOSTILE_PW"]
    code, err, baseline = _peak_rss_mib(args, env)
    assert code == 0, err
    hostile.hostility.gzip_bomb = 4 << 30  # 4 GiB inflated, about 4 MB on the wire
    code, err, bomb = _peak_rss_mib(args, env)  # default cap: the spec's 16 MiB
    assert code == 1 and "Traceback" not in err, err
    assert "larger than 16777216 bytes" in err
    # the measurement sees what is read: with a cap of 160 MiB the peak grows by about that much
    code, err, wide = _peak_rss_mib([*args, "--max-response", "160M"], env)
    assert code == 1 and "larger than 167772160 bytes" in err, err
    with capsys.disabled():
        print(f"\n[gzip bomb 4 GiB] peak RSS: cap 16 MiB {bomb:.0f} MiB, cap 160 MiB {wide:.0f} MiB; "
              f"a normal call {baseline:.0f} MiB")
    # about the cap (plus aiohttp's read buffers), not gigabytes; a normal call's peak varies by
    # tens of MiB from run to run, so the sensitivity check compares the two capped runs
    assert bomb - baseline < 64, (bomb, baseline)
    assert wide - bomb > 96, (wide, bomb)


async def test_three_bombs_in_a_fleet_end_failed(tmp_path: Path, tls: TLSPolicy,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_PW", PASSWORD)
    with HostileDevice() as a, HostileDevice() as b, HostileDevice() as c:
        lines = ["defaults: {family: videoos, password: env:HOSTILE_PW}", "devices:"]
        for name, dev in (("a", a), ("b", b), ("c", c)):
            dev.hostility.gzip_bomb = 1 << 30
            lines.append(f"  bomb-{name}: {{address: '{dev.address('https')}'}}")
        inv = parse_inventory("\n".join(lines) + "\n")
        runner = FleetRunner(tls=tls, resolver=CredentialResolver(base_dir=tmp_path),
                             options=RunOptions(retries=2, backoff=0.01, max_response_bytes=MIB))
        outcomes = await runner.run(ActionTask("audio_get", {}), list(inv))
        calls = [sum(1 for r in d.requests if r.path_qs == "/rest/audio") for d in (a, b, c)]
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert {o.reason for o in outcomes} == {"response_too_large"}
    assert all(str(MIB) in (o.message or "") for o in outcomes)
    assert calls == [1, 1, 1]  # not transient: the same answer would come again


def test_fleet_cli_caps_and_overwrite(tmp_path: Path, pw: None) -> None:
    with HostileDevice() as bomb, HostileDevice() as cam:
        bomb.hostility.gzip_bomb = 1 << 30
        cam.hostility.filename = "snap.jpg"
        inv = tmp_path / "inventory.yaml"
        inv.write_text("defaults: {family: videoos, password: env:HOSTILE_PW}\ndevices:\n"
                       f"  bomb: {{address: '{bomb.address()}'}}\n  cam: {{address: '{cam.address()}'}}\n")
        common = ["-i", str(inv), "--json", "--store", str(tmp_path / "avctl.db")]
        code, out, err = avctl("fleet", "run", "audio_get", "--name", "bomb", "--max-response", "1M", *common)
        assert code == 1 and "Traceback" not in err, err
        [outcome] = json_outcomes(out)
        assert (outcome["status"], outcome["reason"]) == ("failed", "response_too_large")
        assert "1048576" in outcome["message"]
        folder = tmp_path / "out"
        (folder / "cam").mkdir(parents=True)
        (folder / "cam" / "snap.jpg").write_text("mine")
        snap = ["fleet", "run", "cameras_snapshot_get", "snapshot_id=near_image_1.jpg", "--name", "cam",
                "-o", str(folder), *common]
        code, out, err = avctl(*snap)
        assert code == 1 and json_outcomes(out)[0]["status"] == "failed"
        assert (folder / "cam" / "snap.jpg").read_text() == "mine"
        code, out, err = avctl(*snap, "--overwrite")
        assert code == 0 and json_outcomes(out)[0]["status"] == "ok", out + err
    assert (folder / "cam" / "snap.jpg").read_text() == "hostile download\n"


def json_outcomes(out: str) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = json.loads(out)["devices"]
    return outcomes


def test_caps_come_from_the_spec_transport_block(tmp_path: Path) -> None:
    text = (DATA / "videoos_min.md").read_text()
    good = text.replace("max_body_bytes: 10485760", "max_body_bytes: 10485760\nmax_response_bytes: 1234\n"
                        "max_download_bytes: 5678")
    (tmp_path / "good.md").write_text(good)
    spec = load_spec(tmp_path / "good.md")
    assert (spec.transport.max_response_bytes, spec.transport.max_download_bytes) == (1234, 5678)
    bad = text.replace("max_body_bytes: 10485760", "max_body_bytes: 10485760\nmax_response_bytes: -1")
    (tmp_path / "bad.md").write_text(bad)
    issues = [i.message for i in read_spec(tmp_path / "bad.md").issues]
    assert any("max_response_bytes must be a positive number of bytes" in m for m in issues), issues
    with pytest.raises(UsageError):
        Device(spec, "127.0.0.1", max_response_bytes=0)


def test_cli_max_response_option(hostile: HostileDevice, pw: None) -> None:
    hostile.hostility.body_bytes = 300_000
    addr = hostile.address("https")
    code, _, err = avctl("call", "-f", "videoos", addr, "audio_get", "--password-env", "HOSTILE_PW",
                         "--max-response", "256K")
    assert "larger than 262144 bytes" in one_error_line(code, err)
    assert "--max-response BYTES" in err
    code, _, err = avctl("call", "-f", "videoos", addr, "audio_get", "--password-env", "HOSTILE_PW",
                         "--max-response", "1M")
    assert code == 0, err
    code, _, err = avctl("call", "-f", "videoos", addr, "audio_get", "--max-response", "lots")
    assert code == 2 and "not a positive byte count" in err


# --- downloads (item 3) -------------------------------------------------------------------------

HOSTILE_NAMES = ["../../x", ".bashrc", ".", "..", "a" * 300, "dir/name.jpg", "a\\b.jpg", "nul\x00.jpg",
                 "esc\x1b[31m.jpg", "line\r\nbreak.jpg", "\u202egpj.exe"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_download_names_are_refused(hostile: HostileDevice, tls: TLSPolicy, tmp_path: Path,
                                                  name: str) -> None:
    base = tmp_path / "dl"
    out = base / "one" / "out"  # "../../x" would land in base
    out.mkdir(parents=True)
    hostile.hostility.filename = name
    async with device("videoos", hostile, tls) as dev:
        with pytest.raises(DeviceError) as caught:
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=out)
    message = str(caught.value)
    assert "refused" in message and "-o FILE" in message
    assert repr(name[:80]) in message  # the name as sent, escaped
    assert not any(c in message for c in "\x00\x1b\r\n\u202e")
    assert [p for p in base.rglob("*") if not p.is_dir()] == []


async def test_download_never_replaces_a_file_unless_asked(hostile: HostileDevice, tls: TLSPolicy,
                                                           tmp_path: Path) -> None:
    tmp_path = tmp_path / "dl"
    tmp_path.mkdir()
    mine = tmp_path / "snap.jpg"
    mine.write_text("mine")
    hostile.hostility.filename = "snap.jpg"
    async with device("videoos", hostile, tls) as dev:
        with pytest.raises(UsageError) as caught:
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path)
        assert "exists; not replaced" in str(caught.value) and "--overwrite" in str(caught.value)
        assert mine.read_text() == "mine"
        with pytest.raises(UsageError):  # a file named explicitly is not replaced either
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=mine)
        assert mine.read_text() == "mine"
        result = await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path,
                                overwrite=True)
    assert result.file == mine and mine.read_text() == "hostile download\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.jpg"]  # no temporary file left


async def test_download_publish_cannot_clobber_a_file_created_meanwhile(
        hostile: HostileDevice, tls: TLSPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The existence check comes first; a file that appears during the download still wins."""
    tmp_path = tmp_path / "dl"
    tmp_path.mkdir()
    hostile.hostility.filename = "race.jpg"
    raced = tmp_path / "race.jpg"
    real_lexists = os.path.lexists

    def lexists_then_create(path: Any) -> bool:
        found = real_lexists(path)
        if Path(path) == raced:
            raced.write_text("created meanwhile")
        return found

    monkeypatch.setattr("avctl.transport.files.os.path.lexists", lexists_then_create)
    async with device("videoos", hostile, tls) as dev:
        with pytest.raises(UsageError):
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path)
    assert raced.read_text() == "created meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.jpg"]


async def test_download_without_hard_links_claims_the_name_exclusively(
        hostile: HostileDevice, tls: TLSPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File systems without hard links (FAT, some network shares): an O_EXCL claim, then a rename."""
    tmp_path = tmp_path / "dl"
    tmp_path.mkdir()

    def no_links(src: Any, dst: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("avctl.transport.files.os.link", no_links)
    hostile.hostility.filename = "snap.jpg"
    async with device("videoos", hostile, tls) as dev:
        result = await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path)
        assert result.file == tmp_path / "snap.jpg" and result.file.read_text() == "hostile download\n"
        result.file.write_text("mine")
        real_lexists = os.path.lexists
        monkeypatch.setattr("avctl.transport.files.os.path.lexists",
                            lambda p: False if Path(p).name == "snap.jpg" else real_lexists(p))
        with pytest.raises(UsageError, match="exists; not replaced"):  # caught by the claim itself
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path)
    assert (tmp_path / "snap.jpg").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.jpg"]


async def test_download_cap_removes_the_partial_file(hostile: HostileDevice, tls: TLSPolicy,
                                                     tmp_path: Path) -> None:
    tmp_path = tmp_path / "dl"
    tmp_path.mkdir()
    hostile.hostility.body_bytes = 8 * MIB
    async with device("videoos", hostile, tls, max_download_bytes=MIB) as dev:
        with pytest.raises(ResponseTooLarge) as caught:
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path)
    assert "download is larger than 1048576 bytes" in str(caught.value) and "--max-download" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_download_refusals_are_one_line(hostile: HostileDevice, pw: None, tmp_path: Path) -> None:
    addr = hostile.address("https")
    base = ["call", "-f", "videoos", addr, "cameras_snapshot_get", "snapshot_id=near_image_1.jpg",
            "--password-env", "HOSTILE_PW", "-o", str(tmp_path)]
    hostile.hostility.filename = "../../\x1b]52;c;ZXZpbA==\x07x"
    line = one_error_line(*avctl(*base)[::2])
    assert "refused: it contains a path separator" in line and "\x1b" not in line
    hostile.hostility.filename = "snap.jpg"
    (tmp_path / "snap.jpg").write_text("mine")
    code, _, err = avctl(*base)
    assert "exists; not replaced" in one_error_line(code, err, expected_code=2)
    assert (tmp_path / "snap.jpg").read_text() == "mine"
    code, _, err = avctl(*base, "--overwrite")
    assert code == 0, err
    assert (tmp_path / "snap.jpg").read_text() == "hostile download\n"


async def test_fleet_run_overwrite_option(hostile: HostileDevice, tls: TLSPolicy, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_PW", PASSWORD)
    hostile.hostility.filename = "snap.jpg"
    inv = parse_inventory("defaults: {family: videoos, password: env:HOSTILE_PW}\ndevices:\n"
                          f"  cam: {{address: '{hostile.address('https')}'}}\n")
    (tmp_path / "out" / "cam").mkdir(parents=True)
    (tmp_path / "out" / "cam" / "snap.jpg").write_text("mine")
    task = ActionTask("cameras_snapshot_get", {"snapshot_id": "near_image_1.jpg"})

    async def run(**opts: Any) -> Any:
        runner = FleetRunner(tls=tls, resolver=CredentialResolver(base_dir=tmp_path),
                             options=RunOptions(output_dir=str(tmp_path / "out"), **opts))
        return (await runner.run(task, list(inv)))[0]

    refused = await run()
    assert refused.status == "failed" and "exists; not replaced" in (refused.message or "")
    assert (tmp_path / "out" / "cam" / "snap.jpg").read_text() == "mine"
    replaced = await run(overwrite=True)
    assert replaced.status == "ok"
    assert (tmp_path / "out" / "cam" / "snap.jpg").read_text() == "hostile download\n"


def test_raw_escape_sequences_in_content_disposition_reach_no_terminal(tmp_path: Path, tls: TLSPolicy) -> None:
    """Header bytes an aiohttp server would refuse to send, from a raw TLS socket."""
    disposition = b'attachment; filename*=x\x1b[31mred; filename="snap\x1b[31m.jpg"'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session_id=s1\r\n"
              b"Content-Disposition: " + disposition + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    cert, key = make_certificate("127.0.0.1", "raw")
    context = server_context(cert, key)
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
                with context.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.recv(65536)
                    tls_conn.sendall(answer)
            except OSError:
                if server.fileno() < 0:
                    return

    threading.Thread(target=serve, daemon=True).start()
    out = tmp_path / "dl"
    out.mkdir()

    async def download() -> None:
        async with Device("videoos", f"127.0.0.1:{server.getsockname()[1]}", tls=tls,
                          credentials=Credentials(None, PASSWORD)) as dev:
            await dev.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=out)

    try:
        with warnings.catch_warnings(record=True) as seen, pytest.raises(DeviceError) as caught:
            warnings.simplefilter("always")
            asyncio.run(download())
    finally:
        server.close()
    assert "'snap\\x1b[31m.jpg'" in str(caught.value) and "\x1b" not in str(caught.value)
    assert [str(w.message) for w in seen if "\x1b" in str(w.message)] == []
    assert list(out.iterdir()) == []


# --- no credentials in messages (item 4) --------------------------------------------------------


@pytest.fixture
def garbage_port() -> Iterator[int]:
    """A plain TCP server that answers every connection with a line of garbage."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"garbage \x1b[31m\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("where", ["closed", "garbage"])
@pytest.mark.parametrize("action", ["v1_config_get", "v1_control_resetkey"])
def test_solstice_v1_password_never_in_error_text(where: str, action: str, garbage_port: int, pw: None,
                                                  avctl_home: Path) -> None:
    port = _closed_port() if where == "closed" else garbage_port
    # v1 over plain HTTP (the password in the query string) needs both the mapping and the opt-in
    code, out, err = avctl("call", "-f", "solstice", f"127.0.0.1:{port}", action, "--yes",
                           "--scheme-map", "https=http", "--port", f"http={port}", "--allow-cleartext",
                           "--password-env", "HOSTILE_PW")
    line = one_error_line(code, err)
    assert PASSWORD not in out + err and "password=" not in err
    assert f"127.0.0.1:{port}" in line
    if where == "garbage":
        assert "Bad status line" in line
    # the audit log (state-changing calls) keeps the message: without the password
    written = [p for p in avctl_home.rglob("*") if p.is_file()]
    assert written or action == "v1_config_get"
    assert not any(PASSWORD.encode() in p.read_bytes() for p in written)


async def test_library_error_texts_lose_query_and_userinfo(garbage_port: int) -> None:
    transport = HttpTransport(TLSPolicy.insecure())
    from avctl.transport.http import Endpoint, scrub

    request = Request("GET", "/api/config", query=(("password", PASSWORD),))
    try:
        with pytest.raises(Exception) as caught:
            await transport.send(Endpoint("http", "127.0.0.1", garbage_port), request, timeout=5)
    finally:
        await transport.close()
    assert PASSWORD not in str(caught.value) and "\n" not in str(caught.value)
    text = scrub(f"url='http://admin:{PASSWORD}@h:80/api/x?password={PASSWORD}#frag' and "
                 f"/api/config?password={PASSWORD}", request)
    assert PASSWORD not in text and text == "url='http://h:80/api/x' and /api/config"


async def test_an_address_the_url_cannot_hold_is_a_usage_error(tls: TLSPolicy) -> None:
    """A 300-character host name: `Device` refuses it up front; the transport too, before any I/O
    (yarl/idna raise a ValueError), for callers that build endpoints themselves."""
    with pytest.raises(UsageError, match="not an IP address or host name"):
        Device("solstice", "x" * 300, credentials=Credentials(None, ""), tls=tls)
    from avctl.transport.http import Endpoint

    transport = HttpTransport(tls)
    try:
        with pytest.raises(UsageError, match="not a usable address"):
            await transport.send(Endpoint("http", "x" * 300, 80), Request("GET", "/api/config"), timeout=5)
    finally:
        await transport.close()


# --- one-line errors for hostile answers (item 5) ----------------------------------------------


def test_deeply_nested_json_is_one_line(hostile: HostileDevice, pw: None) -> None:
    hostile.hostility.nested_json = 100_000
    code, _, err = avctl("call", "-f", "videoos", hostile.address("https"), "audio_get",
                         "--password-env", "HOSTILE_PW")
    assert "nested more than 64 levels deep" in one_error_line(code, err)


async def test_nested_json_in_an_error_answer(hostile: HostileDevice, tls: TLSPolicy) -> None:
    hostile.hostility.nested_json = 5000
    hostile.hostility.status = 500
    async with device("videoos", hostile, tls) as dev:
        with pytest.raises(DeviceError, match="nested more than 64"):
            await dev.call("audio_get")
    hostile.hostility.status = 200
    async with device("videoos", hostile, tls) as dev:
        hostile.hostility.nested_json = 65  # parses, but deeper than avctl takes
        with pytest.raises(DeviceError, match="nested more than 64"):
            await dev.call("audio_get")
        hostile.hostility.nested_json = 64  # deep, but within what avctl reads
        result = await dev.call("audio_get")
    assert isinstance(result.data, list)


@pytest.mark.parametrize("exp", [1e30, -1e30, "nan", "a string", 10**400, float("nan"), float("inf")])
def test_jwt_exp_out_of_range_is_ignored(hostile: HostileDevice, pw: None, exp: Any) -> None:
    hostile.hostility.jwt_exp = exp
    code, _, err = avctl("call", "-f", "solstice", hostile.address("https"), "info_get",
                         "--password-env", "HOSTILE_PW")
    assert code == 0 and "Traceback" not in err, err
    assert token_expiry(hostile_token(hostile)) is None  # no plausible time: used until a 401


def hostile_token(hostile: HostileDevice) -> str:
    auth = [r.headers["Authorization"] for r in hostile.requests if "Authorization" in r.headers]
    return auth[-1].removeprefix("Bearer ")


@pytest.mark.parametrize(("switch", "value", "says"), [
    ("cookie", 'session_id="abc\\015\\012X-Injected: 1"; Path=/', "a cookie (session_id)"),
    ("cookie", "session_id=abc; Path=/, XSRF-TOKEN=\"x\\007y\"", "a cookie (XSRF-TOKEN)"),
    ("xsrf_header", "tok\ten", "an XSRF token"),
])
def test_videoos_control_characters_in_session_values(hostile: HostileDevice, pw: None, switch: str,
                                                      value: str, says: str) -> None:
    setattr(hostile.hostility, switch, value)
    code, _, err = avctl("call", "-f", "videoos", hostile.address("https"), "audio_get",
                         "--password-env", "HOSTILE_PW")
    line = one_error_line(code, err)
    assert f"the device sent {says} with control characters" in line
    assert not any(r.path_qs == "/rest/audio" for r in hostile.requests)  # nothing sent with it


def test_solstice_token_with_crlf_is_refused(hostile: HostileDevice, pw: None) -> None:
    hostile.hostility.token = "eyJ0eXAi.e30.sig\r\nX-Injected: 1"
    code, _, err = avctl("call", "-f", "solstice", hostile.address("https"), "info_get",
                         "--password-env", "HOSTILE_PW")
    assert "access token with characters a bearer token cannot carry" in one_error_line(code, err)
    assert "X-Injected" not in err


async def test_transport_refuses_a_header_that_would_split_the_request(hostile: HostileDevice) -> None:
    transport = HttpTransport(TLSPolicy.insecure())
    try:
        with pytest.raises(ValidationError, match="line break"):
            await transport.send(hostile_endpoint(hostile),
                                 Request("GET", "/x", headers=(("X-Note", "a\r\nX-Injected: 1"),)), timeout=5)
    finally:
        await transport.close()
    assert list(hostile.requests) == []


def hostile_endpoint(hostile: HostileDevice) -> Any:
    from avctl.transport.http import Endpoint

    return Endpoint("http", hostile.host, hostile.ports["http"])
