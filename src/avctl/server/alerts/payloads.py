"""What a notification says: the generic JSON, Slack, Teams and e-mail forms of one alert event.

Device- and inventory-supplied text (device names, readings, messages) is made printable (control
characters shown as escapes), capped, and escaped for the receiver's markup: Slack's ``&<>`` (no
``<!channel>`` or link injection; blocks use ``plain_text``), Markdown in Teams' Adaptive Cards.
Pure functions: the dispatcher sends what these return.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from avctl.redact import printable
from avctl.server.alerts.engine import AlertInfo
from avctl.timestamps import iso_time

MAX_TEXT = 1000
MAX_TITLE = 150
_TEAMS_MARKDOWN_RE = re.compile(r"([\\`*_\[\]()~#>|!])")
_TEAMS_COLOR = {"critical": "Attention", "warning": "Warning", "info": "Default"}


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    """One line of text a person may read: controls escaped, capped."""
    s = printable(str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def title(alert: AlertInfo, event: str) -> str:
    what = "RESOLVED" if event == "resolved" else alert.severity.upper()
    return clean(f"[{what}] {alert.rule} on {alert.device}", MAX_TITLE)


def _facts(alert: AlertInfo, event: str) -> list[tuple[str, str]]:
    facts = [("Event", event), ("Severity", alert.severity), ("Device", alert.device),
             ("Site", alert.site or "-"), ("Rule", alert.rule), ("Opened", iso_time(alert.opened) or "-")]
    if alert.resolved is not None:
        facts.append(("Resolved", iso_time(alert.resolved) or "-"))
    if alert.value is not None:
        facts.append(("Value", str(alert.value)))
    facts.append(("Alert", f"#{alert.id}"))
    return [(k, clean(v, 200)) for k, v in facts]


def generic(alert: AlertInfo, event: str) -> dict[str, Any]:
    """The generic webhook body (JSON; version 1)."""
    return {
        "version": 1, "source": "avctl", "event": event,
        "alert": {
            "id": alert.id, "rule": alert.rule, "device": alert.device, "site": alert.site,
            "severity": alert.severity, "state": alert.state, "message": clean(alert.message),
            "opened": alert.opened, "opened_iso": iso_time(alert.opened),
            "resolved": alert.resolved, "resolved_iso": iso_time(alert.resolved),
            "value": clean(alert.value, 200) if isinstance(alert.value, str) else alert.value,
            "acked_by": alert.acked_by,
        },
    }


def _slack_escape(text: str) -> str:
    # Slack's own escaping: without it "<!channel>" pings everyone and "<url|text>" makes a link
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(alert: AlertInfo, event: str) -> dict[str, Any]:
    """A Slack incoming-webhook body: fallback ``text`` (escaped) and ``blocks`` in plain_text."""
    head = title(alert, event)
    return {
        "text": _slack_escape(f"{head}: {clean(alert.message, 300)}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": head}},
            {"type": "section", "text": {"type": "plain_text", "text": clean(alert.message)}},
            {"type": "section", "fields": [{"type": "plain_text", "text": f"{k}: {v}"}
                                           for k, v in _facts(alert, event)[:10]]},
        ],
    }


def _md(text: str) -> str:
    return _TEAMS_MARKDOWN_RE.sub(r"\\\1", text)


def teams(alert: AlertInfo, event: str) -> dict[str, Any]:
    """A Teams incoming-webhook (Workflows) body: one Adaptive Card in a message envelope."""
    color = "Good" if event == "resolved" else _TEAMS_COLOR.get(alert.severity, "Default")
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": _md(title(alert, event)), "weight": "Bolder", "size": "Medium",
             "color": color, "wrap": True},
            {"type": "TextBlock", "text": _md(clean(alert.message)), "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": _md(v)} for k, v in _facts(alert, event)]},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def email(alert: AlertInfo, event: str, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """A plain-text e-mail; the subject names severity, rule and device."""
    msg = EmailMessage()
    msg["Subject"] = f"[avctl] {title(alert, event)}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [clean(alert.message), "", *(f"{k}: {v}" for k, v in _facts(alert, event)), "",
             "-- avctl server"]
    msg.set_content("\n".join(lines))
    return msg
