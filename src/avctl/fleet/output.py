"""Fleet results as data: JSON, CSV, the summary line and the cell text tables are built from.

Everything written here goes through the redactor first: an error message that quotes a device's
answer must not carry a password to a terminal, a CSV file or a CI log. JSON escapes device text
(``ensure_ascii``), and CSV cells are neutralised and cannot start a formula. Presentation (rich
tables, the progress bar) is the command line's: ``avctl.cli.output``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from avctl.capabilities import STATUS_FIELDS
from avctl.fleet.credentials import redact
from avctl.fleet.results import Outcome
from avctl.redact import printable


def short_text(value: Any) -> str:
    """A value as one short table cell: yes/no, compact JSON cut at 60 characters."""
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


def is_status(outcomes: Sequence[Outcome]) -> bool:
    return any(isinstance(o.data, dict) and "reachable" in o.data for o in outcomes)


def status_columns(outcomes: Sequence[Outcome]) -> list[str]:
    seen: list[str] = []
    for o in outcomes:
        if isinstance(o.data, dict):
            for k in o.data:
                if k not in seen and k != "unavailable":
                    seen.append(k)
    # the usual fields first, in a fixed order; whatever a family adds after them
    return [f for f in STATUS_FIELDS if f in seen] + [k for k in seen if k not in STATUS_FIELDS]


def summary_line(counts: dict[str, int]) -> str:
    return (f"{counts['total']} device(s): {counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['unreachable']} unreachable, {counts['skipped']} skipped")


def to_json(outcomes: Iterable[Outcome], counts: dict[str, int], **meta: Any) -> str:
    doc = {**meta, "summary": counts, "devices": [redact(o.as_dict()) for o in outcomes]}
    # ensure_ascii: control characters and bidi overrides from devices leave as \u escapes
    return json.dumps(doc, indent=2, default=str, ensure_ascii=True)


def to_csv(outcomes: Sequence[Outcome]) -> str:
    """One row per device; status fields become columns, other data one JSON column."""
    status_mode = is_status(outcomes)
    extra = status_columns(outcomes) if status_mode else ["data"]
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
