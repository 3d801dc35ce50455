"""The poll engine against emulators of every family over real HTTPS on loopback.

The clock and the sleep are injected: a test moves time to the next due poll and runs it
(`tick`), so no test waits out an interval or races a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import UsageError
from avctl.server.model import Observation
from avctl.server.poll import PollRunner, PollSettings
from avctl.server.poll.coordinator import Coordinator
from avctl.server.poll.engine import TLS_READ_BUFFER

from .conftest import POLL_PASSWORD
from .polling import Clock, Sink, engine_for, entry_for, logins, tick


def three(emulators: EmulatorThread) -> tuple[EmulatedVideoOS, EmulatedPolyUC, EmulatedSolstice]:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    phone = emulators.add(EmulatedPolyUC("phone-1", password=POLL_PASSWORD))
    pod = emulators.add(EmulatedSolstice("pod-1", password=POLL_PASSWORD))
    assert isinstance(codec, EmulatedVideoOS) and isinstance(phone, EmulatedPolyUC)
    assert isinstance(pod, EmulatedSolstice)
    return codec, phone, pod


async def test_every_family_reports_its_readings_and_health(emulators: EmulatorThread, tmp_path: Path,
                                                            poll_env: str) -> None:
    codec, phone, pod = three(emulators)
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock, slow_interval=180)
    try:
        engine.set_targets([entry_for(d) for d in (codec, phone, pod)])
        assert await tick(engine, clock) == 3
        for dev in (codec, phone, pod):
            obs = sink.last(dev.name)
            assert obs.state == "online", (dev.name, obs.error)
            assert obs.readings["firmware"]
            assert obs.poll_seconds is not None and obs.poll_seconds > 0
            # the emulators' certificates are fresh: about a year left, and the date says when
            assert 300 < obs.readings["cert_days_left"] < 4000
            assert len(obs.readings["cert_expires"]) == 10
        assert sink.last("codec-1").readings["peripherals"] == 3  # touch panel, camera, remote
        assert "peripheral_list" not in sink.last("codec-1").readings
        assert sink.last("phone-1").readings["sip_registered"] is True
        assert sink.last("codec-1").readings["sip_registered"] is False  # no SIP account set up yet
        assert "sip_registered" not in sink.last("pod-1").readings  # Solstice has no SIP
        pod_firmware = sink.last("pod-1").readings["firmware"]
        # the slow readings (`poll: slow` in the spec: peripherals, a pod's model and firmware...) are
        # read every 180 s here: the two polls between report the last values and send one query less
        # to a codec, two less to a pod; a phone reads its uptime with them, so it asks everything.
        # SIP registration is read every poll
        phone.phone.lines[0].registered = False
        codec.state.config["comm.nics.sipnic.sipusername"]["value"] = "room@sip.example.com"
        codec.state.detached = {"CAMERA"}  # someone unplugs the camera
        pod.state.firmware = "9.9.9"  # and updates the pod
        for _ in range(2):
            sent = {d.name: d.requests.total for d in (codec, phone, pod)}
            clock.t += 60
            assert await engine.step() == 3
            assert {d.name: d.requests.total - sent[d.name] for d in (codec, phone, pod)} == {
                "codec-1": 5, "phone-1": 4, "pod-1": 1}  # mute and volume in one read
            assert sink.last("phone-1").readings["sip_registered"] is False
            assert sink.last("codec-1").readings["sip_registered"] is True
            assert sink.last("codec-1").readings["peripherals"] == 3  # the last value read, not a change
            assert sink.last("pod-1").readings["firmware"] == pod_firmware
            assert sink.last("codec-1").readings["firmware"]  # read with the uptime, every poll
        clock.t += 60
        await engine.step()
        assert sink.last("codec-1").readings["peripherals"] == 2
        assert sink.last("pod-1").readings["firmware"] == "9.9.9"
        # a reboot (the uptime went back) reads the slow readings in the same poll
        codec.state.detached = set()
        clock.t += 60
        await engine.step()
        assert sink.last("codec-1").readings["peripherals"] == 2
        codec.state.booted_at = time.time()
        sent_codec = codec.requests.total
        clock.t += 60
        await engine.step()
        assert sink.last("codec-1").readings["peripherals"] == 3
        assert codec.requests.total - sent_codec == 6  # every poll's five and the peripherals
    finally:
        await engine.close()


async def test_a_relogin_reads_the_slow_readings_in_the_same_poll(emulators: EmulatorThread, tmp_path: Path,
                                                                  poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    assert isinstance(codec, EmulatedVideoOS)
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock)  # slow readings every 10 minutes
    try:
        engine.set_targets([entry_for(codec)])
        await tick(engine, clock)
        await tick(engine, clock)
        assert sink.last("codec-1").readings["peripherals"] == 3
        codec.state.detached = {"CAMERA"}
        codec.faults.expire_at_request = codec.requests.total + 1  # the session expires before the next poll
        await tick(engine, clock)
        assert logins(codec) == 2
        assert sink.last("codec-1").readings["peripherals"] == 2
        sent = codec.requests.total
        await tick(engine, clock)
        assert codec.requests.total - sent == 5  # back to the every-poll queries
        assert sink.states("codec-1") == ["online"] * 4
    finally:
        await engine.close()


async def test_no_login_per_poll_and_one_relogin_when_the_session_expires(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    pod = emulators.add(EmulatedSolstice("pod-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    # every reading on every poll: a pod's every-poll query (v1 statistics) needs no session
    engine = engine_for(tmp_path, sink, clock, interval=30, slow_interval=30)
    try:
        engine.set_targets([entry_for(codec), entry_for(pod)])
        for _ in range(5):
            await tick(engine, clock)
        assert sink.states("codec-1") == ["online"] * 5 and sink.states("pod-1") == ["online"] * 5
        assert logins(codec) == 1 and logins(pod) == 1
        # the sessions expire just before the next poll's second request: one re-login each
        codec.faults.expire_at_request = codec.requests.total + 2
        pod.faults.expire_at_request = pod.requests.total + 2
        for _ in range(3):
            await tick(engine, clock)
        assert sink.states("codec-1")[-3:] == ["online"] * 3 and sink.states("pod-1")[-3:] == ["online"] * 3
        assert logins(codec) == 2 and logins(pod) == 2
    finally:
        await engine.close()
    # removing a device logs it out: VideoOS sessions are a scarce resource on the codec
    assert any(r.method == "DELETE" and r.path == "/rest/session" for r in codec.requests)


async def test_a_device_taken_down_goes_offline_backs_off_and_comes_back(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock, interval=60, backoff_max=300)
    try:
        engine.set_targets([entry_for(codec)])
        await tick(engine, clock)
        assert sink.last("codec-1").state == "online"
        codec.faults.down = True
        starts = []
        for _ in range(5):
            await tick(engine, clock)
            starts.append(sink.last("codec-1").ts)
            assert sink.last("codec-1").state == "offline"
            assert "connection dropped" in (sink.last("codec-1").error or "")
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps == [120.0, 240.0, 300.0, 300.0]  # doubling, up to the cap
        codec.faults.down = False
        codec.state.detached = {"CAMERA"}  # unplugged while it was down
        await tick(engine, clock)
        assert sink.last("codec-1").state == "online"
        # back from offline, a device is read whole (it may have rebooted): no carried-over peripherals
        assert sink.last("codec-1").readings["peripherals"] == 2
        first_back = sink.last("codec-1").ts
        await tick(engine, clock)
        assert sink.last("codec-1").ts - first_back == 60.0  # backoff reset by the success
        assert logins(codec) == 1  # the session survived the outage
    finally:
        await engine.close()


async def test_a_rejected_login_is_tried_once_until_the_credentials_change(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    pod = emulators.add(EmulatedSolstice("pod-1", password=POLL_PASSWORD))
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock, interval=30)
    try:
        entries = [entry_for(codec, password="env:WRONG_PW"), entry_for(pod, password="env:WRONG_PW")]
        engine.set_targets(entries)
        await engine.step()
        for _ in range(20):
            clock.t += 30
            await engine.step()
            engine.set_targets(entries)  # a reload with nothing changed changes nothing
        assert sink.states("codec-1") == ["auth_failed"] and sink.states("pod-1") == ["auth_failed"]
        # one request each in 21 rounds: the rejected login (VideoOS: its session; Solstice: the v1
        # query carrying the password)
        assert logins(codec) == 1 and codec.requests.total == 1 and pod.requests.total == 1
        assert engine.next_due() is None
        # the secret behind the same reference changes (a reload after the user fixed it)
        monkeypatch.setenv("WRONG_PW", POLL_PASSWORD)
        engine.set_targets(entries)
        await tick(engine, clock)
        assert sink.last("codec-1").state == "online" and sink.last("pod-1").state == "online"
        # a changed reference restarts it too
        engine.set_targets([entry_for(codec, password="env:POLL_PW"), entries[1]])
        await tick(engine, clock)
        assert sink.last("codec-1").state == "online"
    finally:
        await engine.close()


async def test_solstice_is_polled_at_most_every_10_seconds(emulators: EmulatorThread, tmp_path: Path,
                                                           poll_env: str) -> None:
    pod = emulators.add(EmulatedSolstice("pod-1", password=POLL_PASSWORD))
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock, interval=1, jitter=0.5)
    try:
        engine.set_targets([entry_for(pod), entry_for(codec)])
        first = engine.coordinators["pod-1"]
        for _ in range(400):  # until the pod restarted and was polled twice more (the clock is ours)
            await tick(engine, clock)
            if engine.coordinators["pod-1"] is not first and len(sink.by["pod-1"]) >= 5:
                break
            if len(sink.by["pod-1"]) == 3 and engine.coordinators["pod-1"] is first:
                engine.set_targets([entry_for(pod, room="moved"), entry_for(codec)])  # no restart
                assert engine.coordinators["pod-1"] is first
                engine.set_targets([entry_for(pod, user="admin"), entry_for(codec)])  # a restart
        assert engine.coordinators["pod-1"] is not first and logins(pod) == 2
        assert len(sink.by["pod-1"]) >= 4
        pod_starts = [o.ts for o in sink.by["pod-1"]]
        assert len(pod_starts) >= 2
        assert all(b - a >= 10.0 for a, b in itertools.pairwise(pod_starts))
        codec_starts = [o.ts for o in sink.by["codec-1"]]
        assert any(b - a < 2.0 for a, b in itertools.pairwise(codec_starts))
    finally:
        await engine.close()


async def test_disabled_removed_and_broken_entries(emulators: EmulatorThread, tmp_path: Path,
                                                   poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    phone = emulators.add(EmulatedPolyUC("phone-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock)
    try:
        engine.set_targets([entry_for(codec), entry_for(phone, disabled=True),
                            entry_for(phone, password="env:NOT_SET").__class__(
                                name="ghost", family="videoos", address=entry_for(codec).address,
                                password="env:NOT_SET")])
        await tick(engine, clock)
        engine.set_targets([entry_for(codec), entry_for(phone, disabled=True)])
        clock.t += 60
        await engine.step()
        assert sink.states("phone-1") == ["disabled"]  # once, never polled
        assert not any(r for r in phone.requests)
        assert sink.states("ghost")[0] == "error" and "NOT_SET" in (sink.last("ghost").error or "")
        sent = codec.requests.total
        engine.set_targets([])
        clock.t += 600
        assert await engine.step() == 0
        assert codec.requests.total == sent + 1  # only the logout
    finally:
        await engine.close()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait for a condition the emulators reach (checked every 20 ms), never for a guessed time."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_per_site_cap_and_global_slots_are_not_held_by_a_waiting_site(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    busy = [emulators.add(EmulatedVideoOS(f"a-{i}", password=POLL_PASSWORD)) for i in range(5)]
    calm = [emulators.add(EmulatedVideoOS(f"b-{i}", password=POLL_PASSWORD)) for i in range(3)]
    for dev in busy:
        dev.faults.paused = True  # requests arrive and hang until released
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock, concurrency=3, per_site=2)
    try:
        engine.set_targets([entry_for(d, site="a") for d in busy] + [entry_for(d, site="b") for d in calm])
        clock.t += 1
        step = asyncio.create_task(engine.step())
        # site b's devices get the one global slot site a cannot take
        await until(lambda: all(sink.by[d.name] for d in calm))
        assert [sink.last(d.name).state for d in calm] == ["online"] * 3
        assert sum(1 for d in busy if d.requests.total) == 2  # the site's cap, while they hang
        for dev in busy:
            dev.faults.paused = False
        assert await step == 8
        assert all(sink.last(d.name).state == "online" for d in busy)
    finally:
        await engine.close()


async def test_errors_inside_a_poll_or_the_sink_never_end_the_engine(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    other = emulators.add(EmulatedVideoOS("codec-2", password=POLL_PASSWORD))
    seen: list[str] = []
    observed: list[Observation] = []

    async def fussy_sink(observation: Observation) -> None:
        seen.append(observation.device)
        observed.append(observation)
        if observation.device == "codec-2":
            raise RuntimeError("the sink broke")

    clock = Clock()
    engine = engine_for(tmp_path, Sink(), clock)
    engine.sink = fussy_sink
    try:
        engine.set_targets([entry_for(codec), entry_for(other)])
        await tick(engine, clock)
        broken = engine.coordinators["codec-1"]

        async def crash() -> Observation:
            raise ValueError("a bug")

        broken.poll = crash  # type: ignore[method-assign]
        clock.t += 60
        await engine.step()
        assert engine.internal_errors == 3  # the sink twice, the poll once
        assert broken.due is not None  # still scheduled
        codec.faults.fail_next = 10  # the device answers, but with server errors: "error", not offline
        engine.set_targets([entry_for(codec, user="admin"), entry_for(other)])
        clock.t += 60
        await engine.step()
        assert seen.count("codec-2") == 3
        assert [o.state for o in observed if o.device == "codec-1"] == ["online", "error"]
        assert "500" in ([o for o in observed if o.device == "codec-1"][-1].error or "")
    finally:
        await engine.close()


async def test_run_polls_on_its_own_schedule_with_an_injected_sleep(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    phone = emulators.add(EmulatedPolyUC("phone-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    start = clock.t

    async def advance(seconds: float) -> None:
        await engine.idle()
        clock.t += seconds  # time passes only when the engine sleeps with no poll running
        await asyncio.sleep(0)

    engine = engine_for(tmp_path, sink, clock, interval=60)
    engine._sleep = advance
    runner = PollRunner(engine)
    runner.set_poll_targets([entry_for(codec), entry_for(phone)])
    await runner.start()
    try:
        await until(lambda: len(sink.by["codec-1"]) >= 3 and len(sink.by["phone-1"]) >= 3)
    finally:
        await runner.stop()
    for name in ("codec-1", "phone-1"):
        starts = [o.ts - start for o in sink.by[name][:3]]
        assert starts == [0.0, 60.0, 120.0]
        assert all(o.state == "online" for o in sink.by[name])
    assert logins(codec) == 1


async def test_a_device_removed_during_its_poll_is_logged_out_after_it(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock)
    try:
        engine.set_targets([entry_for(codec)])
        await tick(engine, clock)
        codec.faults.paused = True
        clock.t += 60
        step = asyncio.create_task(engine.step())
        sent = codec.requests.total
        await until(lambda: codec.requests.total > sent)  # the poll hangs in the device
        engine.set_targets([])
        await engine.step()  # housekeeping leaves the running poll alone
        assert not any(r.method == "DELETE" for r in codec.requests)
        codec.faults.paused = False
        await step
        await engine.step()
        assert [r.method for r in codec.requests if r.path == "/rest/session"] == ["POST", "DELETE"]
        assert len(sink.by["codec-1"]) == 1  # a removed device reports nothing more
    finally:
        await engine.close()


async def test_devices_removed_together_are_logged_out_side_by_side(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    codecs = [emulators.add(EmulatedVideoOS(f"codec-{i}", password=POLL_PASSWORD)) for i in (1, 2, 3)]
    sink, clock = Sink(), Clock()
    engine = engine_for(tmp_path, sink, clock)
    closing, most = 0, 0
    close = Coordinator.close

    async def counted(coordinator: Coordinator) -> None:
        nonlocal closing, most
        closing += 1
        most = max(most, closing)
        try:
            await close(coordinator)
        finally:
            closing -= 1

    monkeypatch.setattr(Coordinator, "close", counted)
    try:
        engine.set_targets([entry_for(c) for c in codecs])
        assert await tick(engine, clock) == 3
        engine.set_targets([])
        await engine.step()  # housekeeping logs the three out
        # all three at once: one after the other, each waits for the answer to the one before
        # (10,000 of them took minutes, longer than the server lets its poller take to stop)
        assert most == 3
        assert all([r.method for r in c.requests if r.path == "/rest/session"] == ["POST", "DELETE"] for c in codecs)
    finally:
        await engine.close()


async def test_poll_lag_is_how_late_a_poll_got_its_slot(emulators: EmulatorThread, tmp_path: Path,
                                                        poll_env: str) -> None:
    codec, phone, _pod = three(emulators)
    sink, clock = Sink(), Clock()
    lags: list[tuple[str, float]] = []
    engine = engine_for(tmp_path, sink, clock, interval=60)
    engine._on_lag = lambda family, seconds: lags.append((family, seconds))
    try:
        engine.set_targets([entry_for(codec), entry_for(phone)])
        due = engine.next_due()
        assert due is not None
        clock.t = due + 7.5  # the engine woke 7.5 s after the polls were due
        assert await engine.step() == 2
        assert sorted(lags) == [("polyuc", 7.5), ("videoos", 7.5)]
        lags.clear()
        assert await tick(engine, clock) == 2  # on time: no lag
        assert sorted(lags) == [("polyuc", 0.0), ("videoos", 0.0)]
    finally:
        await engine.close()


def test_idle_connections_outlive_the_longest_jittered_interval() -> None:
    # a device answering every poll keeps its connection: no TCP and TLS handshake per poll
    assert PollSettings(interval=60, jitter=0.1).keepalive() == pytest.approx(60 * 1.1 + 15)
    # Solstice's floor of 10 s is the longest interval when the setting is shorter
    assert PollSettings(interval=5, jitter=0.1).keepalive() == pytest.approx(10 * 1.1 + 15)


async def test_a_large_fleets_first_polls_are_spread_over_the_interval(tmp_path: Path) -> None:
    """A few devices start within jitter x interval; thousands at about `start_rate` a second, over
    at most one interval (a burst of logins would saturate the server and repeat every interval)."""
    from avctl.fleet.inventory import DeviceEntry, parse_address

    def fleet(n: int, prefix: str) -> list[DeviceEntry]:
        return [DeviceEntry(name=f"{prefix}{i}", family="videoos", address=parse_address(f"127.0.0.1:{1000 + i}"))
                for i in range(n)]

    clock = Clock()
    engine = engine_for(tmp_path, Sink(), clock, interval=60, jitter=0.1, start_rate=25)
    try:
        few = fleet(10, "few-")
        engine.set_targets(few)
        first = {d.name: (engine.coordinators[d.name], engine.coordinators[d.name].due) for d in few}
        assert all(0 <= due - clock.t <= 6.0 for _c, due in first.values())  # type: ignore[operator]
        many = fleet(1000, "many-")  # 1,000 new ones at 25 a second: 40 s
        engine.set_targets(few + many)
        delays = sorted(engine.coordinators[d.name].due - clock.t for d in many)  # type: ignore[operator]
        assert delays[0] >= 0 and delays[-1] <= 40.0 and delays[len(delays) // 2] > 10.0
        # the devices already polled keep their coordinators and schedule
        assert {d.name: (engine.coordinators[d.name], engine.coordinators[d.name].due) for d in few} == first
        huge = fleet(5000, "huge-")  # 5,000 at 25 a second would be 200 s: one interval at most
        engine.set_targets(huge)
        delays = sorted(engine.coordinators[d.name].due - clock.t for d in huge)  # type: ignore[operator]
        assert delays[-1] <= 60.0 and delays[len(delays) // 2] > 20.0
    finally:
        await engine.close()
    with pytest.raises(UsageError, match="start_rate"):
        PollSettings(start_rate=0)


async def test_kept_tls_connections_read_through_small_buffers(tmp_path: Path) -> None:
    from asyncio import sslproto

    engine = engine_for(tmp_path, Sink(), Clock())
    try:
        # asyncio's own 256 KiB per connection would be gigabytes for a large fleet kept connected
        assert sslproto.SSLProtocol.max_size == TLS_READ_BUFFER == 4096
    finally:
        await engine.close()
