"""The files a device's downloads (`response: file` actions such as logs) left on the server.

They are under ``ctx.downloads/<device name>/`` (the runner's own folder per device: inventory
names are plain). A file is served only if it is a regular file directly in that folder, found by
listing it: nothing a request or a device says is ever joined into a path.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.devices import find_device
from avctl.server.service.errors import NotFound, check

#: a device folder lists at most this many files (newest first)
MAX_FILES = 200


@dataclass(frozen=True)
class DownloadedFile:
    name: str
    size: int
    modified: float


def _folder(ctx: ServerContext, principal: Principal, name: str) -> Path:
    check(principal, "read")
    return ctx.downloads / find_device(ctx, principal, name).name


def _files(folder: Path) -> dict[str, tuple[Path, os.stat_result]]:
    found: dict[str, tuple[Path, os.stat_result]] = {}
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        # temporary files of a download under way are dot files; links could point anywhere
        if entry.name.startswith("."):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            found[entry.name] = (Path(entry.path), st)
    return found


def downloads(ctx: ServerContext, principal: Principal, name: str) -> list[DownloadedFile]:
    """The device's downloaded files, newest first."""
    files = _files(_folder(ctx, principal, name))
    items = [DownloadedFile(n, st.st_size, st.st_mtime) for n, (_p, st) in files.items()]
    return sorted(items, key=lambda f: (-f.modified, f.name))[:MAX_FILES]


def download_path(ctx: ServerContext, principal: Principal, name: str, filename: str) -> Path:
    """The file `filename` of the device's downloads (NotFound for anything else: another folder,
    a link, a name with a separator)."""
    found = _files(_folder(ctx, principal, name)).get(filename)
    if found is None:
        raise NotFound(f"no downloaded file {filename!r} for {name}")
    return found[0]
