"""The console tables of data are printed on: rich, plain, and tidy when piped.

Kept apart from `avctl.cli.output` (fleet results) so that light commands (`avctl actions`) can use
it without importing the fleet.
"""

from __future__ import annotations

import io
import sys
from typing import IO, cast

from rich.console import Console


class _TrimmedLines(io.TextIOBase):
    """Writes lines without their trailing blanks: a piped table is padded to its full width, which
    leaves every short row ending in spaces (noise in logs, diffs and ``grep``)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._out.write(line.rstrip(" ") + "\n")
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._out.write(self._partial)
            self._partial = ""
        self._out.flush()


def data_console() -> Console:
    """A console for tables of device data: no emoji codes (``:AB:`` in a fingerprint stays text),
    no markup in data; piped, one line per row (200 columns, whatever ``$COLUMNS`` says: rich
    would wrap at 80 and fold device names) and no trailing blanks."""
    console = Console(emoji=False, highlight=False)
    if console.is_terminal:
        return console
    return Console(emoji=False, highlight=False, width=200,
                   file=cast(IO[str], _TrimmedLines(sys.stdout)))
