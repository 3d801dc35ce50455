"""Issue 8, secrets part: redaction for `avctl call`, secret parameters from @env/@file/@prompt,
all-or-nothing ip-pass imports, and device text printed as text (no escapes, no emoji, no formulas).

Devices are real: the emulators, or a small hostile HTTP server on loopback that answers what the
test tells it to (an error quoting the request, garbage, escape sequences).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.certs import make_certificate
from avctl.emulator.core import EmulatorThread
from avctl.fleet.credentials import REDACTOR, generate_key
from avctl.fleet.output import csv_cell, to_csv
from avctl.fleet.store import Outcome
from avctl.redact import MASK, printable, shown
from tests.ports import free_port

from .test_fleet_runner import SPEC_PATH, spawn

SPEC_OPT = f"--spec=videoos={SPEC_PATH}"
CONTROL_BYTES = (b"\x1b", b"\x07", b"\r", b"\x9b", "\u202e".encode())


# --- a hostile device --------------------------------------------------------------------------------


class HostileHTTP:
    """Loopback TCP server; ``answer(request_bytes) -> response_bytes`` decides every reply."""

    def __init__(self, answer: Callable[[bytes], bytes], tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    if self.tls is not None:
                        conn = self.tls.wrap_socket(conn, server_side=True)
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    self.requests.append(head + b"\r\n\r\n" + body)
                    conn.sendall(self.answer(head + b"\r\n\r\n" + body))
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def http_answer(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def echo_error(request: bytes) -> bytes:
    """A device whose error message quotes the whole request it got (URL, body: the password)."""
    return http_answer(500, json.dumps({"message": "cannot parse " + request.decode("latin-1")}).encode())


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[[Callable[[bytes], bytes]], HostileHTTP]]:
    """Hostile devices over HTTPS (a self-signed certificate, pinned on first use like any device)."""
    cert_pem, key_pem = make_certificate("127.0.0.1", "hostile")
    (tmp_path / "hostile.crt").write_bytes(cert_pem)
    (tmp_path / "hostile.key").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "hostile.crt", tmp_path / "hostile.key")
    servers: list[HostileHTTP] = []

    def make(answer: Callable[[bytes], bytes]) -> HostileHTTP:
        servers.append(HostileHTTP(answer, ctx))
        return servers[-1]

    yield make
    for s in servers:
        s.close()



def run_avctl(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "avctl.cli.main", *args], env=env, input=stdin.encode(),
                          capture_output=True, timeout=120, check=False)


def child_env(avctl_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVCTL_")}
    env.update(AVCTL_HOME=str(avctl_home), COLUMNS="200", **extra)
    return env


def avctl(*args: str, input: str | None = None, code: int | None = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result.output


# --- 1. every secret of `avctl call` is redacted -------------------------------------------------------


PASSWORD = "Pod pw&7=x/y"  # URL-encoding changes it: the query string carries another form


@pytest.mark.parametrize("server", ["echo", "garbage", "closed"])
def test_call_never_shows_or_audits_its_password(server: str, hostile: Callable[..., HostileHTTP],
                                                 avctl_home: Path) -> None:
    if server == "closed":
        port = free_port()
    else:
        answer = echo_error if server == "echo" else (lambda _req: b"garbage \x1b[2J\r\n\r\n")
        port = hostile(answer).port
    env = child_env(avctl_home, POD_PW=PASSWORD)
    outputs = []
    for action, params in (("v1_config_get", []), ("v1_config_update", ['config={"m_displayInformation": {}}'])):
        proc = run_avctl("call", "-f", "solstice", "127.0.0.1", action, *params, "--password-env", "POD_PW",
                         "--scheme-map", "http=https", "--port", f"https={port}", "--timeout", "5", "-y",
                         env=env)
        assert proc.returncode != 0
        assert b"avctl: error:" in proc.stderr and b"Traceback" not in proc.stderr
        outputs += [proc.stdout, proc.stderr]
    audit = run_avctl("audit", "--json", env=env)
    outputs += [audit.stdout, audit.stderr, run_avctl("audit", env=env).stdout]
    rows = json.loads(audit.stdout)
    assert [r["action"] for r in rows] == ["v1_config_update"]  # the failed change is audited
    files = [p for p in avctl_home.rglob("*") if p.is_file()]
    for blob in [*outputs, *(p.read_bytes() for p in files)]:
        # in clear or URL-encoded in any way
        assert PASSWORD not in unquote_plus(blob.decode("latin-1")) and PASSWORD.encode() not in blob
    if server == "echo":  # the device did quote it: the redactor, not luck, kept it out
        assert b"?password=" + MASK.encode() in outputs[1] and b"password" in outputs[3]


def test_handle_errors_redacts_message_and_hint() -> None:
    from avctl.cli.common import handle_errors
    from avctl.errors import DeviceError

    REDACTOR.add("hint-and-message-pw")

    import click

    @click.command()
    @handle_errors
    def boom() -> None:
        raise DeviceError("login failed for ?password=hint-and-message-pw \x1b]0;pwned\x07",
                          hint="retry with hint-and-message-pw", status=500)

    result = CliRunner().invoke(boom, [])
    assert result.exit_code == 1, result.output
    assert f"hint: retry with {MASK}" in result.output
    assert "hint-and-message-pw" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]0;pwned\\x07" in result.output


# --- 2. secret parameters from @env, @file, @prompt ----------------------------------------------------


def test_secret_parameter_sources(tmp_path: Path, emulators: EmulatorThread, avctl_home: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pod = emulators.spawn("solstice", password="pod-secret-55")[0]
    addr = f"127.0.0.1:{pod.port}"
    monkeypatch.setenv("AVCTL_PASSWORD", "pod-secret-55")
    monkeypatch.setenv("POD_SECRET", "pod-secret-55")
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text("pod-secret-55\nsecond line ignored\n")
    for value in ("@env:POD_SECRET", f"@file:{pw_file}"):
        out = avctl("call", "-f", "solstice", addr, "token_request", f"password={value}", "--json")
        assert "access_token" in out and "visible in 'ps'" not in out
    # a literal still works, with a one-line warning naming the safe forms
    out = avctl("call", "-f", "solstice", addr, "token_request", "password=pod-secret-55", "--json")
    assert "access_token" in out
    warning = [line for line in out.splitlines() if "warning" in line]
    assert len(warning) == 1 and "@env:VAR" in warning[0] and "@file:PATH" in warning[0] and "@prompt" in warning[0]
    assert "pod-secret-55" not in out
    # and the value is registered: nothing shows it afterwards
    assert shown("x pod-secret-55 y") == f"x {MASK} y"


@pytest.mark.parametrize(("value", "fragment"), [
    ("@env:NOT_SET_ANYWHERE", "environment variable NOT_SET_ANYWHERE is not set"),
    ("@file:{missing}", "cannot read the file for password="),
    ("@file:{binary}", "is binary (NUL byte at offset 0)"),
    ("@prompt", "needs a terminal"),
    ("@keyring:x", "unknown value source '@keyring'"),
])
def test_secret_parameter_errors(value: str, fragment: str, tmp_path: Path) -> None:
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x00\x01\xffpw")
    value = value.format(missing=tmp_path / "nope", binary=binary)
    for args in (["call", "-f", "solstice", "127.0.0.1:1", "token_request", f"password={value}"],
                 ["fleet", "run", "token_request", f"password={value}", "-i", str(tmp_path / "none.yaml")],
                 ["jobs", "resume", "1", f"password={value}"]):
        out = avctl(*args, code=2)
        assert fragment in out and "Traceback" not in out, args
        assert len([line for line in out.splitlines() if line.startswith("avctl: error:")]) == 1


def test_at_sign_literal_is_doubled() -> None:
    from avctl.cli.common import param_text

    assert param_text("label", "@@home", secret=False) == "@home"
    assert param_text("label", "plain", secret=False) == "plain"


# --- 3. ip-pass imports: all or nothing --------------------------------------------------------------------


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    k = generate_key()
    monkeypatch.setenv("AVCTL_SECRETS_KEY", k)
    return k


def _snapshot(*paths: Path) -> list[bytes | None]:
    return [p.read_bytes() if p.exists() else None for p in paths]


def test_refused_import_leaves_secrets_and_inventory_byte_identical(tmp_path: Path, key: str,
                                                                    avctl_home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inv, secrets = tmp_path / "inventory.yaml", avctl_home / "secrets.json"
    first = tmp_path / "first.txt"
    first.write_text("10.0.0.1,original-pw-1\n")
    avctl("inventory", "import", "ip-pass", str(first), "-o", str(inv))
    before = _snapshot(inv, secrets)
    # a name clash on the last line: before the fix, 10.0.0.1's password was replaced already
    clash = tmp_path / "clash.txt"
    clash.write_text("10.0.0.2,new-pw-2\n10.0.0.1,REPLACED-pw\n")
    out = avctl("inventory", "import", "ip-pass", str(clash), "-o", str(inv), code=2)
    assert "already present: videoos-10-0-0-1" in out and "nothing was imported" in out
    assert _snapshot(inv, secrets) == before
    # a secret of that name already in the store (another inventory uses it)
    other = tmp_path / "other.yaml"
    out = avctl("inventory", "import", "ip-pass", str(first), "-o", str(other), code=2)
    assert "secrets already present: videoos-10-0-0-1" in out
    assert _snapshot(inv, secrets) == before and not other.exists()
    # the same address under another name
    out = avctl("inventory", "import", "ip-pass", str(first), "-o", str(inv), "--prefix", "x-", code=2)
    assert "importing x-10-0-0-1" in out and "already listed as devices.videoos-10-0-0-1" in out
    assert _snapshot(inv, secrets) == before
    # the inventory cannot be written after the secrets were: the secrets file is put back
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("10.0.0.9,pw-9\n")

    def fail(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("avctl.fleet.inventory.write_inventory", fail)
    with pytest.raises(OSError):
        CliRunner().invoke(cli, ["inventory", "import", "ip-pass", str(fresh), "-o", str(inv)],
                           catch_exceptions=False)
    assert _snapshot(inv, secrets) == before


# --- 4. device text is printed as text ---------------------------------------------------------------------


def test_printable_neutralises_controls_and_bidi() -> None:
    hostile = "a\x1b[31mred\x07\rb\x9b\x7f\u202egnp.exe\u2066\t\nend"
    out = printable(hostile)
    assert out == "a\\x1b[31mred\\x07\\x0db\\x9b\\x7f\\u202egnp.exe\\u2066\\x09\\x0aend"
    assert printable(hostile, multiline=True).endswith("\\u2066\t\nend")
    assert printable("AB:CD:EF café") == "AB:CD:EF café"


def test_csv_cells_are_neutralised_and_never_formulas() -> None:
    assert csv_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert [csv_cell(v) for v in ("+1", "-1", "@SUM(A1)", "ok", 5)] == ["'+1", "'-1", "'@SUM(A1)", "ok", 5]
    text = to_csv([Outcome("=cmd|' /C calc'!A0", "videoos", "failed", reason="device",
                           message="bad \x1b[2J answer")])
    assert "\x1b" not in text and "'=cmd" in text and "\\x1b[2J" in text


def evil_videoos(request: bytes) -> bytes:
    if request.startswith(b"POST /rest/session"):
        return http_answer(200, b'{"success": true}').replace(
            b"Connection: close", b"Set-Cookie: session_id=evil-session; Path=/\r\nConnection: close")
    return http_answer(500, json.dumps(
        {"message": f"certificate {FINGERPRINT} \x1b[31mchanged\x1b[0m\r\u202e"}).encode())


ESC_NAME = "evil\x1b]0;owned\x07\x1b[2J\rroom\u202e"
FINGERPRINT = "sha256:AB:CD:12:AB:EF"


def _no_control_bytes(blob: bytes) -> None:
    for b in CONTROL_BYTES:
        assert b not in blob, (b, blob[:2000])


def test_escape_sequences_never_reach_the_terminal(emulators: EmulatorThread, tmp_path: Path,
                                                   hostile: Callable[..., HostileHTTP], avctl_home: Path) -> None:
    devs = spawn(emulators, 2, password="esc-pw-1")
    for d in devs:
        d.state.model = ESC_NAME
        d.state.firmware = "9.9\x1b[5m" + FINGERPRINT
    # a third device logs in fine and answers changes with escapes and a fingerprint in the error
    evil = hostile(evil_videoos)
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos, password: env:ESC_PW}\ndevices:\n"
                   + "".join(f"  room-{i}: {{address: '127.0.0.1:{d.port}'}}\n" for i, d in enumerate(devs))
                   + f"  evil-0: {{address: '127.0.0.1:{evil.port}'}}\n")
    env = child_env(avctl_home, ESC_PW="esc-pw-1")
    outs = []
    for args in (["fleet", "status"], ["fleet", "status", "--json"], ["fleet", "status", "--csv"],
                 ["fleet", "run", "audio_volume_set", "volume=5"]):
        proc = run_avctl(*args, "-i", str(inv), SPEC_OPT, env=env)
        outs.append(proc)
    table = outs[0].stdout.decode()
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x0droom\\u202e" in "".join(table.split())  # shown, visibly
    for args in (["audit"], ["audit", "--json"], ["jobs", "show", "1"], ["jobs", "show", "2"],
                 ["jobs", "show", "2", "--csv"], ["jobs", "list"]):
        outs.append(run_avctl(*args, env=env))
    outs.append(run_avctl("call", "-f", "videoos", f"127.0.0.1:{evil.port}", "audio_volume_set", "volume=3",
                          "--password-env", "ESC_PW", env=env))
    for proc in outs:
        _no_control_bytes(proc.stdout)
        _no_control_bytes(proc.stderr)
        assert b"Traceback" not in proc.stderr
    # fingerprints print literally (rich would have turned :AB: into an emoji)
    audit_table = outs[4].stdout.decode()
    assert "AB:CD:12:AB:EF" in "".join(audit_table.split()) and "\N{NEGATIVE SQUARED AB}" not in audit_table
    run_table = outs[3].stdout.decode()
    assert "AB:CD:12:AB:EF" in "".join(run_table.split()) and "\N{NEGATIVE SQUARED AB}" not in run_table
    assert "AB:CD:12:AB:EF" in outs[-1].stderr.decode()


def test_single_call_output_is_neutralised(emulators: EmulatorThread, avctl_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pod = emulators.spawn("solstice", password="pod-pw-esc")[0]
    pod.state.config["display"]["name"] = ESC_NAME
    env = child_env(avctl_home, POD_PW="pod-pw-esc")
    proc = run_avctl("call", "-f", "solstice", f"127.0.0.1:{pod.port}", "config_get", "--password-env", "POD_PW",
                     env=env)
    assert proc.returncode == 0, proc.stderr
    _no_control_bytes(proc.stdout)
    _no_control_bytes(proc.stderr)


def test_changed_certificate_fingerprints_print_literally(emulators: EmulatorThread, tmp_path: Path,
                                                          avctl_home: Path) -> None:
    """A fingerprint is hex pairs joined by colons: rich read ':AB:' and ':CD:' as emoji codes."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    dev = spawn(emulators, 1, password="cert-pw-1")[0]
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"devices:\n  room: {{family: videoos, address: '127.0.0.1:{dev.port}', password: env:C_PW}}\n")
    env = child_env(avctl_home, C_PW="cert-pw-1")
    assert run_avctl("fleet", "status", "-i", str(inv), SPEC_OPT, env=env).returncode == 0  # pins
    # a new certificate whose fingerprint has emoji codes in it (the search is short: many have)
    while True:
        dev.reset_certificate()
        der = x509.load_pem_x509_certificate(dev.cert_pem).public_bytes(Encoding.DER)
        digest = hashlib.sha256(der).hexdigest().upper()
        pairs = [digest[i:i + 2] for i in range(0, 64, 2)]
        # rich reads ":P0:", ":P2:", ... after "SHA256" (each match eats its closing colon)
        if {"AB", "CD"} & set(pairs[0::2]):
            break
    new_fp = ":".join(pairs)
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(dev))
    for args in (["fleet", "status", "-i", str(inv), SPEC_OPT], ["jobs", "show", "2"]):
        proc = run_avctl(*args, env=env)
        out = proc.stdout.decode()
        assert new_fp in "".join(out.split()), out  # a long detail may be folded over lines
        assert "\N{NEGATIVE SQUARED AB}" not in out and "\N{OPTICAL DISC}" not in out


def test_prompt_reads_a_hidden_secret_on_a_real_terminal(emulators: EmulatorThread, avctl_home: Path) -> None:
    """`password=@prompt` on a real pseudo-terminal: asked once, not echoed, used, never shown."""
    import pty
    import select

    pod = emulators.spawn("solstice", password="pod-secret-77")[0]
    env = {**os.environ, "AVCTL_HOME": str(avctl_home), "AVCTL_PASSWORD": "pod-secret-77"}
    argv = [sys.executable, "-m", "avctl.cli.main", "call", "-f", "solstice", f"127.0.0.1:{pod.port}",
            "token_request", "password=@prompt", "--json"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: avctl with the pseudo-terminal as its controlling terminal
        os.execve(sys.executable, argv, env)
    seen = b""

    def read_until(done: Callable[[bytes], bool]) -> None:
        nonlocal seen
        while not done(seen):
            ready, _, _ = select.select([fd], [], [], 60)  # a bound, not a race: returns on data
            assert ready, seen
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            seen += chunk

    try:
        read_until(lambda b: b"password:" in b.lower())
        os.write(fd, b"pod-secret-77\n")
        read_until(lambda b: False)  # to the end
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"access_token" in seen and b"pod-secret-77" not in seen, seen
    assert seen.lower().count(b"password:") == 1
