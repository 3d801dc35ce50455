"""Byte counts on the command line: `16777216`, `16M`, `16MiB`, `2G` (binary units, as caps are)."""

from __future__ import annotations

import re

import click

_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class ByteSize(click.ParamType[int]):
    name = "BYTES"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        size = int(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0
        if size <= 0:
            self.fail(f"{value!r} is not a positive byte count (e.g. 1048576, 64K, 16M, 2G)", param, ctx)
        return size


BYTES = ByteSize()
