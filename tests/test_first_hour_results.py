"""Results as a new user reads them (issue 15): one unit per reading, uptime in words in tables and
in seconds in data, result flags never cut off, `avctl call` says "ok", one format for times."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from avctl.cli.output import render_table
from avctl.durations import human_duration
from avctl.emulator.core import EmulatorThread
from avctl.fleet.audit import AuditLog
from avctl.fleet.output import detail_text, reading_text, result_flags
from avctl.fleet.results import Outcome, summarize
from avctl.timestamps import iso_time, table_time

from .first_hour_fleet import avctl, mixed_fleet

CODEC_UP = 3 * 86400 + 4 * 3600 + 1000  # "3 d 4 h" for the next 40 minutes
PHONE_UP = 2 * 86400 + 5 * 3600 + 1000  # "2 d 5 h"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def data_of(out: str) -> dict[str, dict[str, object]]:
    doc = json.loads(out[out.index("{"):])
    return {d["device"]: d["data"] for d in doc["devices"]}


def test_uptime_is_seconds_in_data_and_words_in_the_table(emulators: EmulatorThread, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    fleet.codec.state.booted_at = time.time() - CODEC_UP
    fleet.phone.phone.booted_at = time.monotonic() - PHONE_UP
    data = data_of(avctl("fleet", "status", "-i", str(fleet.inventory), "--json").stdout)
    # the same unit for both families: seconds (Poly UC's {"Days", "Hours", ...} summed)
    for device, up in (("codec-1", CODEC_UP), ("phone-1", PHONE_UP)):
        uptime = data[device]["uptime"]
        assert isinstance(uptime, (int, float)) and up <= uptime < up + 600, (device, uptime)
    assert "uptime" not in data["pod-1"]  # a pod reports none
    rows = list(csv.DictReader(io.StringIO(avctl("fleet", "status", "-i", str(fleet.inventory), "--csv").stdout)))
    by_device = {r["device"]: r for r in rows}
    assert CODEC_UP <= float(by_device["codec-1"]["uptime"]) < CODEC_UP + 600
    table = avctl("fleet", "status", "-i", str(fleet.inventory)).stdout
    # piped: one line per row, no trailing blanks (rich pads every row to the widest), title on the left
    assert table.splitlines()[0].startswith("job ") and all(line == line.rstrip() for line in table.splitlines())
    codec_row = next(line for line in table.splitlines() if line.startswith("codec-1"))
    phone_row = next(line for line in table.splitlines() if line.startswith("phone-1"))
    assert "3 d 4 h" in codec_row and "2 d 5 h" in phone_row
    assert str(int(CODEC_UP)) not in table


@pytest.mark.parametrize(("seconds", "words"), [
    (5.86, "6 s"), (59, "59 s"), (600, "10 min"), (3 * 3600 + 300, "3 h 5 min"),
    (120473, "1 d 9 h"), (None, "-"),
])
def test_human_duration(seconds: float | None, words: str) -> None:
    assert human_duration(seconds) == words


def test_reading_text_words_only_numbers_it_knows() -> None:
    assert reading_text("uptime", 90061.5) == "1 d 1 h"
    assert reading_text("uptime", None) == "" and reading_text("uptime", "n/a") == "n/a"
    assert reading_text("volume", 40) == "40" and reading_text("in_call", True) == "yes"


def test_result_flags_are_never_cut() -> None:
    answer = {"message": "success! " * 20, "device_id": "95472b46-bcf4-4163-9e53-a50e03c9c134",
              "reboot_required": False, "restartRequired": True, "rebootNeeded": False, "count": 3}
    assert result_flags(answer) == {"reboot_required": False, "restart_required": True, "reboot_needed": False}
    text = detail_text(answer)
    assert text.startswith("reboot_required: no, restart_required: yes, reboot_needed: no; {")
    assert text.endswith("...") and "restartRequired" not in text
    assert detail_text({"a": 1}) == '{"a":1}' and result_flags([True]) == {}


def test_the_table_shows_the_flags_in_full_on_a_narrow_terminal() -> None:
    answer = {"device_id": "x" * 80, "message": "success!", "reboot_required": False, "restart_required": True}
    outcomes = [Outcome("pod-1", "ok", family="solstice", data=answer)]
    buf = io.StringIO()
    render_table(outcomes, summarize(outcomes), title="t", console=Console(file=buf, width=60))
    packed = re.sub(r"\s+", "", buf.getvalue())  # the cell wraps: every character of it is there
    assert "reboot_required:no,restart_required:yes" in packed
    assert "x" * 80 not in packed  # the rest of the answer is what gets cut


def test_a_change_the_table_and_json_report_with_its_flags(emulators: EmulatorThread, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    change = 'config={"sharing": {"airplay": {"enabled": false}}}'
    out = avctl("fleet", "run", "config_update", change, "-i", str(fleet.inventory), "--family", "solstice",
                "-y").stdout
    row = next(line for line in out.splitlines() if line.startswith("pod-1"))
    assert "reboot_required: no, restart_required: yes" in row
    assert fleet.pod.state.restart_required


def test_call_says_ok_for_a_change_without_an_answer(emulators: EmulatorThread, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    addr = f"127.0.0.1:{fleet.codec.port}"
    result = avctl("call", "-f", "videoos", addr, "audio_volume_set", "volume=33", "--password-env", "FLEET_PW")
    assert result.stdout == "ok\n" and fleet.codec.state.volume == 33
    assert "audio_volume_set: HTTP 200" in result.stderr
    result = avctl("call", "-f", "videoos", addr, "audio_volume_get", "--password-env", "FLEET_PW")
    assert result.stdout == "33\n"  # a query prints its answer, never "ok"


@pytest.fixture
def zurich(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host in Central European Time: local differs from UTC by an hour in November."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


NOON_UTC = 1796040000.0  # 2026-11-30 12:00:00 UTC


def test_one_time_format(zurich: None) -> None:
    assert table_time(NOON_UTC) == "2026-11-30 13:00:00"
    assert iso_time(NOON_UTC) == "2026-11-30T12:00:00Z"
    assert table_time(None) == "" and iso_time(None) is None


def test_audit_json_is_iso_with_zone(avctl_home: Path, zurich: None) -> None:
    with AuditLog() as audit:
        audit.record(device="room-1", action="system_reboot", params={}, outcome="ok", ts=NOON_UTC)
    rows = json.loads(avctl("audit", "--json").stdout)
    assert rows[0]["time"] == "2026-11-30T12:00:00Z" and ISO_Z.match(rows[0]["time"])
