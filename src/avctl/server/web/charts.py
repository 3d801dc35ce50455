"""History charts drawn on the server as inline SVG: no chart library, nothing for the CSP to allow.

`chart(...)` turns a reading's history (`service.history`: raw points, or buckets with their
minimum and maximum) into coordinates, axis ticks and labels; the template only draws them.
Colours come from classes in device.css (light and dark), never from style attributes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from avctl.db.retention import Point

#: the ranges a chart offers: label -> seconds
RANGES = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
DEFAULT_RANGE = "24h"

#: units of the readings the server knows; others by their name's suffix, else none
UNITS = {"cert_days_left": "days", "uptime": "s", "volume": "%", "peripherals": "devices",
         "connected_users": "users"}
_SUFFIX_UNITS = (("_seconds", "s"), ("_ms", "ms"), ("_days", "days"), ("_percent", "%"), ("_pct", "%"),
                 ("_bytes", "B"))

WIDTH, HEIGHT = 640.0, 200.0
LEFT, RIGHT, TOP, BOTTOM = 64.0, 12.0, 24.0, 32.0


def unit_of(metric: str) -> str:
    if metric in UNITS:
        return UNITS[metric]
    return next((unit for suffix, unit in _SUFFIX_UNITS if metric.endswith(suffix)), "")


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the drawing
    label: str


@dataclass(frozen=True)
class Chart:
    metric: str
    unit: str
    #: 0: raw readings, else the width in seconds of the buckets
    resolution: int
    points: int
    #: "x,y x,y ...": the values (averages for buckets)
    line: str
    #: the band between each bucket's minimum and maximum ("" for raw readings)
    band: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    last: float | None
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


def number(value: float) -> str:
    """A tick label: short (1.5k, 2M), no trailing zeros."""
    size = abs(value)
    # thousands from 10,000 on: 2500 stays 2500
    for limit, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= limit:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.4g}"


def _time_label(ts: float, span: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%m-%d %H:%M" if span > 2 * 86400 else "%H:%M")


def chart(metric: str, resolution: int, points: Sequence[Point], start: float, end: float) -> Chart:
    """The chart of `points` over [start, end]: time across, the value up, both axes labelled."""
    span = max(end - start, 1.0)
    lows = [p.minimum for p in points] or [0.0]
    highs = [p.maximum for p in points] or [1.0]
    lo, hi = min(lows), max(highs)
    if hi == lo:  # a flat line sits in the middle
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, 4)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ts: float) -> float:
        return round(LEFT + (ts - start) / span * plot_w, 1)

    def y(value: float) -> float:
        return round(TOP + (hi - value) / (hi - lo) * plot_h, 1)

    line = " ".join(f"{x(p.ts)},{y(p.value)}" for p in points)
    band = ""
    if resolution and points:
        upper = [f"{x(p.ts)},{y(p.maximum)}" for p in points]
        lower = [f"{x(p.ts)},{y(p.minimum)}" for p in reversed(points)]
        band = " ".join(upper + lower)
    y_ticks = []
    value = lo
    while value <= hi + step / 2:
        y_ticks.append(Tick(y(value), number(round(value, 10))))
        value += step
    x_step = span / 4
    x_ticks = tuple(Tick(x(start + i * x_step), _time_label(start + i * x_step, span)) for i in range(5))
    return Chart(metric=metric, unit=unit_of(metric), resolution=resolution, points=len(points), line=line,
                 band=band, x_ticks=x_ticks, y_ticks=tuple(y_ticks), last=points[-1].value if points else None)
