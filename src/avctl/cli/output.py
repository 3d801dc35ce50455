"""Fleet results for people: the summary table and a progress bar on terminals (rich).

Device text is data: table cells are plain ``Text`` (no markup, no ``:emoji:`` codes) with secrets
masked and control characters neutralised. The data itself (JSON, CSV, cell text) is built by
``avctl.fleet.output``; this module only presents it, so the fleet library does not depend on rich.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from avctl.capabilities import STATUS_FIELDS
from avctl.cli.console import data_console
from avctl.fleet.output import detail_text, is_status, reading_text, status_columns, summary_line
from avctl.fleet.store import Outcome
from avctl.redact import printable, shown

STATUS_STYLE = {"ok": "green", "failed": "red", "unreachable": "yellow", "skipped": "dim"}


def cell(value: Any) -> Text:
    """A table cell from device or user data: secrets masked, controls visible, never markup."""
    return Text(shown(value))


def render_table(outcomes: Sequence[Outcome], counts: dict[str, int], *, title: str,
                 console: Console | None = None) -> None:
    if console is None:
        console = data_console()
    table = Table(title=printable(title), title_justify="left", box=None, pad_edge=False, header_style="bold")
    status_mode = is_status(outcomes)
    # the table keeps to the common fields; --json and --csv carry everything each family reports
    extra = [c for c in status_columns(outcomes) if c in STATUS_FIELDS] if status_mode else []
    for col in ("device", "family", "outcome", *extra, "detail"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        if o.status != "ok":
            detail = o.message or ""
        elif status_mode:
            missing = (o.data or {}).get("unavailable") if isinstance(o.data, dict) else None
            detail = f"not available: {', '.join(sorted(missing))}" if missing else ""
        else:
            detail = detail_text(o.data)
        if o.reason and o.status != "ok":
            detail = f"[{o.reason}] {detail}"
        cells = [reading_text(c, o.data.get(c)) if isinstance(o.data, dict) else "" for c in extra]
        # device text is data, not markup: "[auth] ..." must print as written
        table.add_row(cell(o.device), cell(o.family or ""), Text(o.status, style=STATUS_STYLE[o.status]),
                      *(cell(c) for c in cells), cell(detail))
    console.print(table)
    console.print(summary_line(counts))


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
