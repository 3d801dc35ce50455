"""Audit rows for changes to users and tokens (who did what to whom; never a secret)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from avctl.db import Database
from avctl.db.models import AuditRow

#: the audit log's `device` column for rows that concern no device
NO_DEVICE = "-"


def record(db: Database, who: str, action: str, params: Mapping[str, object], *, outcome: str = "ok",
           clock: Callable[[], float] = time.time) -> None:
    with db.session() as s:
        s.add(AuditRow(ts=clock(), user=who, device=NO_DEVICE, address=None, family=None, action=action,
                       params=json.dumps(dict(params), sort_keys=True, default=str), outcome=outcome,
                       error_kind=None, message=None, job_id=None))
