"""Unit tests that need no network: auth flow edge cases (MockTransport), params, requests, known hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avctl import AccountLockedError, AuthenticationError, Credentials, Device, DeviceError, SyncDevice
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.request import Request, Response, build_request
from avctl.spec import coerce_text, load_spec, validate
from avctl.transport.http import Endpoint
from avctl.transport.mock import MockTransport
from avctl.transport.tls import KnownHosts, TLSPolicy, fingerprint

from .conftest import DATA

SPEC = load_spec(DATA / "videoos_min.md")
LOGIN_OK = json.dumps({"success": True, "session": {"sessionId": "abc"}}).encode()


def device(handler: object) -> tuple[Device, MockTransport]:
    transport = MockTransport(handler)  # type: ignore[arg-type]
    return Device(SPEC, "10.9.9.9", credentials=Credentials("admin", "pw"), transport=transport), transport


async def test_old_firmware_token_in_response_header_is_echoed() -> None:
    def handler(ep: Endpoint, req: Request) -> Response:
        if req.path == "/rest/session":
            return Response(200, (("Set-Cookie", "session_id=abc; Path=/; HttpOnly"),
                                  ("X-XSRF-Token", "tok-1")), LOGIN_OK)
        return Response(200, body=b"17")

    dev, transport = device(handler)
    assert (await dev.call("audio_volume_get")).data == 17
    sent = transport.requests[-1]
    assert sent.header("X-XSRF-TOKEN") == "tok-1" and "session_id=abc" in (sent.header("Cookie") or "")


async def test_token_refreshed_from_any_set_cookie() -> None:
    tokens = iter(["t1", "t2", "t3"])

    def handler(ep: Endpoint, req: Request) -> Response:
        headers = (("Set-Cookie", f"XSRF-TOKEN={next(tokens)}; Path=/; Secure"),)
        if req.path == "/rest/session":
            return Response(200, (("Set-Cookie", "session_id=abc; Path=/"), *headers), LOGIN_OK)
        return Response(200, headers, b"1")

    dev, transport = device(handler)
    await dev.call("audio_volume_get")
    await dev.call("audio_volume_get")
    assert [r.header("X-XSRF-TOKEN") for r in transport.requests[1:]] == ["t1", "t2"]


async def test_login_server_error_is_not_a_rejected_login() -> None:
    answers = iter([Response(500, body=b"oops"), Response(200, (("Set-Cookie", "session_id=s"),), LOGIN_OK),
                    Response(200, body=b"5")])
    dev, _ = device(lambda ep, req: next(answers))
    with pytest.raises(DeviceError) as exc:
        await dev.call("audio_volume_get")
    assert not isinstance(exc.value, AuthenticationError) and exc.value.transient
    assert (await dev.call("audio_volume_get")).data == 5  # a transient failure may be tried again


@pytest.mark.parametrize(("status", "reason", "error"), [
    (403, None, AuthenticationError), (400, "SessionRequestInvalid", AuthenticationError),
    (400, "SessionPortLockout", AccountLockedError)])
async def test_rejected_login_forms(status: int, reason: str | None, error: type[Exception]) -> None:
    body = json.dumps({"success": False, "reason": reason}).encode() if reason else b"LOG-IN ATTEMPT FAILED"
    dev, transport = device(lambda ep, req: Response(status, body=body))
    for _ in range(3):
        with pytest.raises(error):
            await dev.call("system_get")
    assert len(transport.requests) == 1


def test_validate_adds_constants_and_defaults_and_builds_bare_values() -> None:
    reboot = SPEC.action("system_reboot")
    values = validate(reboot, {"restart_all": True})
    assert values == {"action": "reboot", "restart_all": True}
    req = build_request(reboot, values)
    assert json.loads(req.body or b"") == {"action": "reboot", "restartAll": True}
    vol = SPEC.action("audio_volume_set")
    assert build_request(vol, validate(vol, {"volume": 9})).body == b"9"
    mute = SPEC.action("audio_muted_set")
    assert build_request(mute, validate(mute, {"muted": False})).body == b"false"


def test_cli_coercion_by_declared_type() -> None:
    assert coerce_text(SPEC.action("audio_volume_set"), "volume", "40") == 40
    assert coerce_text(SPEC.action("audio_muted_set"), "muted", "yes") is True
    assert coerce_text(SPEC.action("config_get"), "names", '["a","b"]') == ["a", "b"]
    assert coerce_text(SPEC.action("config_get"), "names", "a,b") == ["a", "b"]
    assert coerce_text(SPEC.action("audio_volume_set"), "volume", "loud") == "loud"  # validation will say why


def test_body_limit_is_enforced_before_sending(tmp_path: Path) -> None:
    from avctl.errors import ValidationError

    with pytest.raises(ValidationError, match="refuses more than 10"):
        build_request(SPEC.action("config_get"), {"names": ["x" * 1000] * 11000}, max_body_bytes=10 * 1024 * 1024)


def test_known_hosts_append_only_last_wins(tmp_path: Path) -> None:
    aa, bb, cc, dd = (fingerprint(x) for x in (b"a", b"b", b"c", b"d"))
    kh = KnownHosts(tmp_path / "kh")
    kh.set("h:1", aa)
    kh.set("h:1", bb)  # not replaced without replace=True
    kh.set("h:2", cc)
    assert KnownHosts(tmp_path / "kh").get("h:1") == aa
    kh.set("h:1", dd, replace=True)
    assert KnownHosts(tmp_path / "kh").get("h:1") == dd
    assert kh.remove("h:1") and KnownHosts(tmp_path / "kh").get("h:1") is None
    assert KnownHosts(tmp_path / "kh").get("h:2") == cc


def test_known_hosts_sees_what_another_process_pinned(tmp_path: Path) -> None:
    """The server and its poller process share the file: each sees the other's pins, and a policy
    told to forget an endpoint checks the replaced pin from then on."""
    aa, bb, cc = (fingerprint(x) for x in (b"a", b"b", b"c"))
    server, poller = KnownHosts(tmp_path / "kh"), KnownHosts(tmp_path / "kh")
    assert server.get("h:1") is None  # read (and cached) before the poller pinned anything
    poller.set("h:1", aa)
    poller.set("h:2", bb)
    assert server.get("h:1") == aa and server.get("h:2") == bb
    policy = TLSPolicy.pinned(poller)
    policy._fingerprints["h:1"] = object()  # type: ignore[assignment]  # what a first connection left
    assert policy.known_ssl_for("h", 1) is not None
    server.set("h:1", cc, replace=True)  # a re-pin by an admin, in the server
    policy.forget("h", 1)
    assert policy.known_ssl_for("h", 1) is None  # the next connection asks for the pin again
    assert poller.get("h:1") == cc


def test_sync_device_for_scripts(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = emulators.add(EmulatedVideoOS("sync", spec=SPEC, password="pw"))
    with SyncDevice(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(password="pw"), tls=tls) as d:
        d.call("audio_volume_set", volume=44)
        assert d.call("audio_volume_get").data == 44


async def test_session_ttl_fault_forces_one_relogin(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = emulators.add(EmulatedVideoOS("ttl", spec=SPEC, password="pw"))
    dev.faults.session_ttl = 60.0
    async with Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(password="pw"), tls=tls) as d:
        await d.call("system_get")
        for session in dev.sessions.values():
            session["created"] -= 61  # the session is past its ttl: time injected, not slept
        await d.call("system_get")
    assert sum(1 for r in dev.requests if r.path == "/rest/session" and r.method == "POST") == 2


class _LogsStudio(EmulatedVideoOS):
    payload = bytes(range(256)) * 4096  # 1 MiB, streamed in chunks

    async def on_system_logs_get(self, ctx: object) -> object:
        from avctl.emulator.core import reply_bytes

        return reply_bytes(self.payload, "application/octet-stream", filename="logs-studio.tar")


async def test_file_download_streams_to_disk(emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path) -> None:
    dev = emulators.add(_LogsStudio("logs", spec=SPEC, password="pw"))
    async with Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(password="pw"), tls=tls) as d:
        into_folder = await d.call("system_logs_get", download_to=tmp_path)
        named = await d.call("system_logs_get", download_to=tmp_path / "mine.tar")
    assert into_folder.file == tmp_path / "logs-studio.tar" and named.file == tmp_path / "mine.tar"
    assert into_folder.file.read_bytes() == _LogsStudio.payload == named.file.read_bytes()
    assert not list(tmp_path.glob(".*part*"))  # nothing half-written left behind


async def test_device_with_two_sockets_and_port_override(emulators: EmulatorThread, tls: TLSPolicy,
                                                         tmp_path: Path) -> None:
    text = (DATA / "videoos_min.md").read_text().replace("```\n\n## Feedbacks", """- id: plain_status
  label: Status over plain HTTP
  kind: query
  method: GET
  path: /plain/status
  scheme: http
  port: 80
  auth: none
```

## Feedbacks""", 1)
    spec_file = tmp_path / "two.md"
    spec_file.write_text(text)
    spec = load_spec(spec_file)

    class TwoSockets(EmulatedVideoOS):
        async def authenticate(self, request, action, body):  # type: ignore[no-untyped-def]
            if request.path == "/plain/status":
                return None if not request.secure else self_refuse()
            return await super().authenticate(request, action, body)

        async def on_plain_status(self, ctx: object) -> object:
            from avctl.emulator.core import reply

            return reply({"plain": True})

    def self_refuse() -> object:
        from avctl.emulator.core import reply

        return reply({"error": "plain only"}, 400)

    dev = TwoSockets("two", spec=spec, password="pw")
    dev.extra_ports = {"http": 0}
    emulators.add(dev)
    assert dev.extra_ports["http"] not in (0, dev.port)
    async with Device(spec, f"127.0.0.1:{dev.port}", credentials=Credentials(password="pw"), tls=tls,
                      ports={"http": dev.extra_ports["http"]}) as d:
        assert (await d.call("plain_status")).data == {"plain": True}
        assert (await d.call("audio_volume_get")).status == 200
