"""Fleet results for people and programs: summary table, JSON, CSV, and a progress bar on terminals.

Everything written here goes through the redactor first: an error message that quotes a device's
answer must not carry a password to a terminal, a CSV file or a CI log. Device text is data: table
cells are plain ``Text`` (no markup, no ``:emoji:`` codes) with control characters neutralised,
JSON escapes them (``ensure_ascii``), and CSV cells are neutralised and cannot start a formula.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from avctl.capabilities import STATUS_FIELDS
from avctl.fleet.credentials import redact
from avctl.fleet.results import Outcome
from avctl.redact import printable, shown

STATUS_STYLE = {"ok": "green", "failed": "red", "unreachable": "yellow", "skipped": "dim"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def _is_status(outcomes: Sequence[Outcome]) -> bool:
    return any(isinstance(o.data, dict) and "reachable" in o.data for o in outcomes)


def _status_columns(outcomes: Sequence[Outcome]) -> list[str]:
    seen: list[str] = []
    for o in outcomes:
        if isinstance(o.data, dict):
            for k in o.data:
                if k not in seen and k != "unavailable":
                    seen.append(k)
    # the usual fields first, in a fixed order; whatever a family adds after them
    return [f for f in STATUS_FIELDS if f in seen] + [k for k in seen if k not in STATUS_FIELDS]


def data_console() -> Console:
    """A console for tables of device data: no emoji codes (``:AB:`` in a fingerprint stays text),
    no markup in data, one line per row when piped (rich would wrap at 80 columns)."""
    console = Console(emoji=False, highlight=False)
    return console if console.is_terminal else Console(emoji=False, highlight=False, width=200)


def cell(value: Any) -> Text:
    """A table cell from device or user data: secrets masked, controls visible, never markup."""
    return Text(shown(value))


def render_table(outcomes: Sequence[Outcome], counts: dict[str, int], *, title: str,
                 console: Console | None = None) -> None:
    if console is None:
        console = data_console()
    table = Table(title=printable(title), box=None, pad_edge=False, header_style="bold")
    status_mode = _is_status(outcomes)
    # the table keeps to the common fields; --json and --csv carry everything each family reports
    extra = [c for c in _status_columns(outcomes) if c in STATUS_FIELDS] if status_mode else []
    for col in ("device", "family", "outcome", *extra, "detail"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        if o.status != "ok":
            detail = o.message or ""
        elif status_mode:
            missing = (o.data or {}).get("unavailable") if isinstance(o.data, dict) else None
            detail = f"not available: {', '.join(sorted(missing))}" if missing else ""
        else:
            detail = _cell(o.data)
        if o.reason and o.status != "ok":
            detail = f"[{o.reason}] {detail}"
        cells = [_cell((o.data or {}).get(c)) if isinstance(o.data, dict) else "" for c in extra]
        # device text is data, not markup: "[auth] ..." must print as written
        table.add_row(cell(o.device), cell(o.family or ""), Text(o.status, style=STATUS_STYLE[o.status]),
                      *(cell(c) for c in cells), cell(detail))
    console.print(table)
    console.print(summary_line(counts))


def summary_line(counts: dict[str, int]) -> str:
    return (f"{counts['total']} device(s): {counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['unreachable']} unreachable, {counts['skipped']} skipped")


def to_json(outcomes: Iterable[Outcome], counts: dict[str, int], **meta: Any) -> str:
    doc = {**meta, "summary": counts, "devices": [redact(o.as_dict()) for o in outcomes]}
    # ensure_ascii: control characters and bidi overrides from devices leave as \u escapes
    return json.dumps(doc, indent=2, default=str, ensure_ascii=True)


def to_csv(outcomes: Sequence[Outcome]) -> str:
    """One row per device; status fields become columns, other data one JSON column."""
    status_mode = _is_status(outcomes)
    extra = _status_columns(outcomes) if status_mode else ["data"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # no CR: it rewrites a terminal line
    w.writerow(["device", "family", "outcome", "reason", "message", "attempts", "elapsed", *extra])
    for o in outcomes:
        d = redact(o.as_dict())
        if status_mode:
            vals = [_csv_val((d["data"] or {}).get(c)) if isinstance(d["data"], dict) else "" for c in extra]
        else:
            vals = [json.dumps(d["data"], default=str) if d["data"] is not None else ""]
        w.writerow([csv_cell(v) for v in (d["device"], d["family"] or "", d["status"], d["reason"] or "",
                                          d["message"] or "", d["attempts"],
                                          d["elapsed"] if d["elapsed"] is not None else "", *vals)])
    return buf.getvalue()


def csv_cell(value: Any) -> Any:
    """Text cells neutralised, and never a spreadsheet formula (=, +, -, @ get a leading ')."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _csv_val(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return v


class ProgressBar:
    """done/failed/remaining and rate on a terminal (stderr); nothing at all when piped."""

    def __init__(self, total: int, label: str, *, stream: IO[str] | None = None,
                 enabled: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = self.failed = 0
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total} done, [red]{task.fields[failed]} failed[/], "
                           "{task.fields[remaining]} remaining, {task.fields[rate]}/s"),
                TimeElapsedColumn(), console=Console(file=stream), transient=True)
            self._task = self._progress.add_task(label, total=total, failed=0, remaining=total, rate="0.0")

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.status in ("failed", "unreachable"):
            self.failed += 1
        if self._progress is not None and self._task is not None:
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self._progress.update(self._task, completed=self.done, failed=self.failed,
                                  remaining=self.total - self.done, rate=f"{rate:.1f}")
