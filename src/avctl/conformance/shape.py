"""Where two answers to the same read differ in form: members, types, status. Never values:
a serial or an uptime differs between any two devices, a missing member breaks a client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShapeDiff:
    read: str
    #: JSON Pointer into the answer ("" for the whole answer); list items merge under "/*"
    at: str
    device: str
    emulator: str

    def line(self) -> str:
        return f"{self.read} {self.at or '(answer)'}: device {self.device}, emulator {self.emulator}"


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def compare(read: str, device: Any, emulator: Any, at: str = "") -> list[ShapeDiff]:
    """The differences in form between two JSON answers. A null on either side matches anything
    (devices send null for what is not set), and so does an empty list (nothing to compare)."""
    dk, ek = kind(device), kind(emulator)
    if "null" in (dk, ek):
        return []
    if dk != ek:
        return [ShapeDiff(read, at, dk, ek)]
    if dk == "object":
        out: list[ShapeDiff] = []
        for key in device:
            where = f"{at}/{_escape(str(key))}"
            if key not in emulator:
                out.append(ShapeDiff(read, where, kind(device[key]), "missing"))
            else:
                out.extend(compare(read, device[key], emulator[key], where))
        out.extend(ShapeDiff(read, f"{at}/{_escape(str(key))}", "missing", kind(emulator[key]))
                   for key in emulator if key not in device)
        return out
    if dk == "array" and device and emulator:
        return compare(read, _merged(device), _merged(emulator), f"{at}/*")
    return []


def _merged(items: list[Any]) -> Any:
    """One item that stands for all of a list: objects merged member by member (first value wins),
    anything else the first item."""
    if not all(isinstance(item, dict) for item in items):
        return items[0]
    merged: dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if merged.get(key) is None:
                merged[key] = value
    return merged


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
