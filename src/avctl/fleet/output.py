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
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from avctl.capabilities import STATUS_FIELDS
from avctl.durations import human_duration
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


#: readings a table shows in words (JSON and CSV keep the number, in the unit of `READING_UNITS`)
_SHOWN_AS = {"uptime": human_duration}


def reading_text(name: str, value: Any) -> str:
    """One status reading as a table cell: an uptime as ``3 d 4 h``, others as `short_text`."""
    how = _SHOWN_AS.get(name)
    if how is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return how(value)
    return short_text(value)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def result_flags(data: Any) -> dict[str, Any]:
    """What an answer says must happen next (``reboot_required``, ``restartRequired``,
    ``rebootNeeded``): its true/false members named ``*_required`` or ``*_needed``, by snake-case
    name, so that a table never cuts them off."""
    if not isinstance(data, Mapping):
        return {}
    flags = {}
    for key, value in data.items():
        name = _CAMEL.sub("_", str(key)).lower()
        if isinstance(value, bool) and name.endswith(("_required", "_needed")):
            flags[name] = value
    return flags


def detail_text(data: Any) -> str:
    """The detail cell of a result: its flags in full (``restart_required: yes``), then the rest of the
    answer as `short_text`."""
    flags = result_flags(data)
    if not flags:
        return short_text(data)
    rest = {k: v for k, v in data.items() if _CAMEL.sub("_", str(k)).lower() not in flags}
    shown = ", ".join(f"{k}: {short_text(v)}" for k, v in flags.items())
    return shown + (f"; {short_text(rest)}" if rest else "")


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
