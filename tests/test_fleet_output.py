"""Result output: table, JSON, CSV, and a progress bar only on terminals."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console

from avctl.cli.output import ProgressBar, render_table
from avctl.fleet.credentials import REDACTOR
from avctl.fleet.output import to_csv, to_json
from avctl.fleet.results import Outcome, summarize

OUTCOMES = [
    Outcome("a", "ok", family="videoos", data={"reachable": True, "model": "G7500", "volume": 40,
                                                "serial": "X1", "unavailable": {"in_call": "x"}}),
    Outcome("b", "failed", family="polyuc", reason="auth", message="login rejected for out-secret-5"),
    Outcome("c", "unreachable", family="solstice", reason="timeout", message="no answer"),
    Outcome("d", "skipped", family="solstice", reason="no_such_action", message="no such verb"),
]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_json_csv_agree_and_redact() -> None:
    REDACTOR.add("out-secret-5")
    counts = summarize(OUTCOMES)
    assert counts == {"ok": 1, "failed": 1, "unreachable": 1, "skipped": 1, "total": 4}
    buf = io.StringIO()
    render_table(OUTCOMES, counts, title="t", console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert "G7500" in text and "[auth] login rejected" in text and "not available: in_call" in text
    assert "4 device(s): 1 ok, 1 failed, 1 unreachable, 1 skipped" in text
    doc = json.loads(to_json(OUTCOMES, counts, job=3))
    assert doc["job"] == 3 and [d["status"] for d in doc["devices"]] == ["ok", "failed", "unreachable", "skipped"]
    rows = list(csv.DictReader(io.StringIO(to_csv(OUTCOMES))))
    assert rows[0]["model"] == "G7500" and rows[0]["serial"] == "X1" and rows[1]["reason"] == "auth"
    for out in (text, json.dumps(doc), to_csv(OUTCOMES)):
        assert "out-secret-5" not in out


def test_progress_bar_only_on_a_terminal() -> None:
    piped = io.StringIO()
    with ProgressBar(4, "status", stream=piped) as bar:
        for o in OUTCOMES:
            bar.update(o)
    assert piped.getvalue() == "" and bar.done == 4 and bar.failed == 2
    tty = Tty()
    with ProgressBar(4, "status", stream=tty) as bar:
        for o in OUTCOMES:
            bar.update(o)
    assert bar.enabled and "4/4 done" in tty.getvalue() and "2 failed" in tty.getvalue()
