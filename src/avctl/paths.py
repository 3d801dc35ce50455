"""Where avctl keeps its state, and how its private files are created.

One function decides the state home for everything avctl writes (pinned certificates, the secrets
file, the job and audit database), so no two parts of avctl can disagree about it:

1. ``$AVCTL_HOME`` (``~`` expanded); a path that is still relative after expansion is refused,
   because it would be resolved against whatever directory avctl happens to run in, and a pin
   file that moves with the current directory re-pins changed certificates silently;
2. ``$XDG_CONFIG_HOME/avctl`` (ignored when relative, as the XDG spec says);
3. ``~/.config/avctl``.

Private files are 0600 in a 0700 directory whatever the umask: modes are given at creation and set
again explicitly, since ``mkdir``/``open`` modes are filtered through the umask.

This module sits in the lowest layer (it imports only :mod:`avctl.errors`): the transport (pins)
and the fleet (secrets, jobs, audit) both use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from avctl.errors import UsageError

__all__ = ["avctl_home", "ensure_home", "ensure_private_dir", "make_private_file", "open_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def avctl_home() -> Path:
    """The state directory (absolute; not created here: writers call :func:`ensure_private_dir`)."""
    env = os.environ.get("AVCTL_HOME")
    if env:
        home = Path(env).expanduser()
        if not home.is_absolute():
            raise UsageError(
                f"AVCTL_HOME={env!r} is a relative path; avctl's state would move with the current directory",
                hint="set AVCTL_HOME to an absolute path (e.g. \"$HOME/.config/avctl\")")
        return home
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else None
    if base is None or not base.is_absolute():
        base = Path.home() / ".config"
    return base / "avctl"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and missing parents 0700 (``mkdir(parents=True)`` would make them
    0777 & ~umask). Existing directories are left alone, except the state home itself: an older
    avctl created it 0755, so it is tightened to 0700 when it is ours."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another avctl process made it meanwhile
            d.mkdir(mode=DIR_MODE)
        os.chmod(d, DIR_MODE)
    if not missing:
        _tighten_home(path)
    return path


def _tighten_home(path: Path) -> None:
    try:
        if path != avctl_home():
            return
        st = path.stat()
    except (UsageError, OSError):
        return
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, DIR_MODE)


def ensure_home() -> Path:
    """The state directory, created private (0700) if missing."""
    return ensure_private_dir(avctl_home())


def make_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing, e.g. before SQLite opens it (SQLite
    then creates its -wal and -shm files with the database's mode). An existing file is left alone.
    """
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for a private file: created 0600 (umask-independent) in a 0700 directory."""
    ensure_private_dir(path.parent)
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    with contextlib.suppress(OSError):  # not our file: leave its mode alone
        os.fchmod(fd, FILE_MODE)
    return fd


def child_environment() -> dict[str, str]:
    """This process's environment for a Python child that runs this avctl: the same variables (a
    child resolves ``env:`` secret references in them), with this avctl first on the module path."""
    here = str(Path(__file__).resolve().parent.parent)  # the folder that holds this avctl package
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": here if not rest else os.pathsep.join((here, rest))}
