"""The fleet's view of avctl's state home (decided in :mod:`avctl.paths`, one place for the pins,
the secrets file and the job/audit database) and the OS user for the audit log."""

from __future__ import annotations

import os

from avctl.paths import avctl_home, ensure_home

__all__ = ["avctl_home", "ensure_home", "os_user"]


def os_user() -> str:
    """The OS user for the audit log ("who"): login name, falling back to the uid."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - non-POSIX or odd containers
        return os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid())
