"""An exclusive lock on an open file, for several avctl processes writing one file (the pins).

POSIX has ``fcntl.flock``, Windows ``msvcrt.locking``; neither module exists on the other system, so
each is imported only where it is used and ``import avctl`` works on both.

On Windows the lock is a byte range, and a locked range is closed to other readers too. The lock
therefore covers one byte far beyond the end of any real file, never the content: readers that do
not lock (avctl reads the pins without locking) are never refused.

Depends on nothing in avctl.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["exclusive_lock"]

#: where the Windows lock byte lies: past the end of any file avctl locks
_WINDOWS_LOCK_OFFSET = 2**31 - 2


@contextlib.contextmanager
def exclusive_lock(fh: IO[Any]) -> Iterator[None]:
    """Hold an exclusive lock on the open file `fh` for the block, waiting for other holders.

    What the block wrote is flushed before the lock is released, so the next holder reads it.
    """
    _lock(fh.fileno())
    try:
        yield
    finally:
        if not fh.closed:  # a closed file has released its lock
            try:
                fh.flush()
            finally:
                _unlock(fh.fileno())


def _lock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        with _at_lock_byte(fd):
            while True:  # LK_LOCK gives up after 10 tries a second apart; keep waiting as flock does
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    return
                except OSError as exc:
                    if exc.errno != errno.EDEADLOCK:
                        raise
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        with _at_lock_byte(fd):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _at_lock_byte(fd: int) -> Iterator[None]:
    """msvcrt locks from the file position: move there, and back (appends go to the end anyway)."""
    position = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        yield
    finally:
        os.lseek(fd, position, os.SEEK_SET)
