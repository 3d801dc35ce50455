"""The alerts, audit and admin pages' small parts, without a browser."""

from __future__ import annotations

import pytest

from avctl.errors import UsageError
from avctl.server.web.pages.alerts import silence_seconds
from avctl.server.web.pages.audit import AuditFilters


def test_silence_choices_and_custom_durations() -> None:
    assert silence_seconds("3600", "") == 3600
    assert silence_seconds("custom", "90m") == 5400
    for choice, custom in (("123", ""), ("custom", "soon"), ("custom", "91d"), ("custom", "")):
        with pytest.raises(UsageError):
            silence_seconds(choice, custom)


def test_audit_filters_are_the_cli_options() -> None:
    filters = AuditFilters(device="room-*", outcome="failed", job="12", since="2h")
    assert filters.cli() == "avctl audit --device 'room-*' --outcome failed --job 12 --since 2h"
    assert AuditFilters().cli() == "avctl audit"
