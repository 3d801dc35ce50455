"""Click type for duration options: refuses 0, negatives, nan, inf and absurd values in one line."""

from __future__ import annotations

import click

from avctl.durations import MAX_DEADLINE, MAX_REQUEST_TIMEOUT, check_seconds, parse_duration
from avctl.errors import UsageError


class Seconds(click.ParamType[float, object]):
    name = "seconds"

    def __init__(self, maximum: float, *, allow_zero: bool = False) -> None:
        self.maximum = maximum
        self.allow_zero = allow_zero

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            number = float(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        try:
            # 0, negatives, nan and inf would switch the timeout off
            return check_seconds("duration", number, maximum=self.maximum, allow_zero=self.allow_zero)
        except UsageError as exc:
            self.fail(f"{value!r} is not usable: {exc.hint}", param, ctx)


#: --timeout (per request)
REQUEST_SECONDS = Seconds(MAX_REQUEST_TIMEOUT)
#: --device-timeout, --wait-timeout
DEADLINE_SECONDS = Seconds(MAX_DEADLINE)
#: --wait-grace (0: take the first answer at face value)
GRACE_SECONDS = Seconds(MAX_DEADLINE, allow_zero=True)


class Duration(click.ParamType[float, object]):
    """``90``, ``90s``, ``30m``, ``4h``, ``2d`` -> seconds (more than 0, at most ``maximum``)."""

    name = "duration"

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value))
        except UsageError as exc:
            self.fail(f"{exc.message} ({exc.hint})", param, ctx)
        if seconds > self.maximum:
            self.fail(f"{value!r} is longer than {self.maximum / 3600:g} h", param, ctx)
        return seconds


#: --wait-idle, --soak: minutes to hours
WAIT_DURATION = Duration(MAX_DEADLINE)
