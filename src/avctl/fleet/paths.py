"""Where avctl keeps its state: AVCTL_HOME, default ~/.config/avctl.

One helper so the secrets file, the job/audit database and anything else land in the same place
and tests can redirect all of it with one environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def avctl_home() -> Path:
    """The state directory (not created here: callers create it when they write)."""
    env = os.environ.get("AVCTL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "avctl"


def ensure_home() -> Path:
    """The state directory, created private (0700) if missing."""
    home = avctl_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def os_user() -> str:
    """The OS user for the audit log ("who"): login name, falling back to the uid."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - non-POSIX or odd containers
        return os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid())
