"""Firmware compliance: each device's reported firmware against the inventory's baseline.

Pure logic (no I/O): ``avctl firmware report`` reads status with a fleet job and hands every
outcome to :func:`assess`; ``avctl firmware update`` keeps the outdated devices whose family has an
update verb. The rules (docs/firmware.md):

* **Versions** are compared by their dotted numeric parts. Text before the first digit is a vendor
  prefix and skipped ("UC Software 6.4.3", "v5.5"); the version is the run of numbers joined by
  ``.`` or ``-`` that follows ("4.6.2-520058" is 4.6.2.520058), and whatever comes after it is
  ignored ("5.5.2.12 (beta)"). Parts the baseline does not name are builds under it: 8.0.2.1234
  meets the baseline 8.0.2 exactly; parts missing on the device count as 0.
* **Baselines** are found by model: an exact name first, then the globs in the order the inventory
  gives them, then ``*``. Model names are compared ignoring case, spaces, ``-`` and ``_`` (the
  inventory's "Studio X30" is the StudioX30 a codec reports).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import Outcome

Compliance = Literal["compliant", "outdated", "unknown"]
COMPLIANCE: tuple[Compliance, ...] = ("compliant", "outdated", "unknown")

#: the verb each family's spec defines (Macros) to install a firmware update
UPDATE_VERB = "firmware_update"

#: families whose API has no update action at all: what to tell the operator instead
NO_UPDATE_ACTION = {
    "videoos": "no update action in the VideoOS REST API: update from Poly Lens, the web UI or a "
               "provisioning server",
}

#: a device may report anything: more parts or longer numbers than any real version are not one
_MAX_PARTS = 8
_MAX_DIGITS = 12
_VERSION = re.compile(r"\d+(?:[.-]\d+)*")
_MODEL_NOISE = re.compile(r"[\s_-]+")


def parse_version(text: str) -> tuple[int, ...] | None:
    """The numeric parts of a version text, or None when it holds no version."""
    match = _VERSION.search(text)
    if match is None:
        return None
    parts = re.split(r"[.-]", match.group())
    if len(parts) > _MAX_PARTS or any(len(p) > _MAX_DIGITS for p in parts):
        return None
    return tuple(int(p) for p in parts)


def compare_versions(device: tuple[int, ...], baseline: tuple[int, ...]) -> int:
    """-1 older, 0 the same, 1 newer: the device's version against the baseline's parts."""
    mine = (device + (0,) * len(baseline))[:len(baseline)]
    return (mine > baseline) - (mine < baseline)


def _model_key(name: str) -> str:
    return _MODEL_NOISE.sub("", name).casefold()


def baseline_for(model: str | None, baseline: Mapping[str, str]) -> tuple[str, str] | None:
    """(the baseline's model key, its version) for a model: exact name, then globs in order, then ``*``."""
    if model is not None:
        key = _model_key(model)
        for name, version in baseline.items():
            if name != "*" and _model_key(name) == key:
                return name, version
        for name, version in baseline.items():
            if name != "*" and fnmatchcase(key, _model_key(name)):
                return name, version
    if "*" in baseline:
        return "*", baseline["*"]
    return None


@dataclass(frozen=True)
class FirmwareRow:
    """One device in the firmware report."""

    device: str
    family: str
    site: str | None
    model: str | None
    firmware: str | None
    #: the baseline version and the inventory key it came from (model, glob or "*")
    baseline: str | None
    baseline_model: str | None
    compliance: Compliance
    detail: str
    #: how this device is updated: the update verb's label, or why there is none
    update: str
    #: True when ``avctl firmware update`` can update it (its family has the update verb)
    updatable: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def update_path(family: str, verbs: Mapping[str, str] | None) -> tuple[str, bool]:
    """(what the report says about updating a device of this family, whether avctl can do it).
    ``verbs``: the family spec's Macros, id -> label (None: the spec could not be loaded)."""
    if verbs is not None and UPDATE_VERB in verbs:
        return f"{UPDATE_VERB}: {verbs[UPDATE_VERB]}", True
    if family in NO_UPDATE_ACTION:
        return NO_UPDATE_ACTION[family], False
    return f"no '{UPDATE_VERB}' verb in the {family} spec", False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def assess(entry: DeviceEntry, outcome: Outcome | None, verbs: Mapping[str, str] | None) -> FirmwareRow:
    """Classify one device from its status outcome (None: it has none) and its inventory baseline."""
    update, updatable = update_path(entry.family, verbs)
    data = outcome.data if outcome is not None and isinstance(outcome.data, dict) else {}
    model, firmware = _text(data.get("model")), _text(data.get("firmware"))
    unavailable: dict[str, Any] = data.get("unavailable") or {}

    def missing(reading: str) -> str:
        why = unavailable.get(reading)  # the read of this one reading failed: say why
        return f"{reading} not reported" + (f" ({why})" if why else "")

    def row(compliance: Compliance, detail: str, found: tuple[str, str] | None = None) -> FirmwareRow:
        return FirmwareRow(entry.name, entry.family, entry.site, model, firmware,
                           found[1] if found else None, found[0] if found else None, compliance, detail,
                           update, updatable)

    if outcome is None:
        return row("unknown", "status not read")
    if outcome.status != "ok":
        why = f"[{outcome.reason}] " if outcome.reason and outcome.reason != outcome.status else ""
        return row("unknown", f"{outcome.status}: {why}{outcome.message or ''}".rstrip())
    if not entry.firmware:
        return row("unknown", f"no firmware baseline for {entry.family} in the inventory")
    found = baseline_for(model, entry.firmware)
    if found is None:
        return row("unknown", missing("model") if model is None else f"no baseline for model {model}")
    if firmware is None:
        return row("unknown", missing("firmware"), found)
    want = parse_version(found[1])
    if want is None:
        return row("unknown", f"baseline {found[1]!r} for {found[0]!r} is not a version", found)
    have = parse_version(firmware)
    if have is None:
        return row("unknown", "firmware version not parseable", found)
    order = compare_versions(have, want)
    if order < 0:
        return row("outdated", f"older than the baseline {found[1]}", found)
    return row("compliant", f"{'newer than' if order else 'same as'} the baseline {found[1]}", found)


def counts(rows: Iterable[FirmwareRow]) -> dict[str, Any]:
    """``total``, and the same counts per (family, model) and per site (None: not reported, no site)."""
    total = _zero()
    models: dict[tuple[str, str | None], dict[str, int]] = {}
    sites: dict[str | None, dict[str, int]] = {}
    for r in rows:
        for bucket in (total, models.setdefault((r.family, r.model), _zero()), sites.setdefault(r.site, _zero())):
            bucket[r.compliance] += 1
            bucket["total"] += 1
    return {"total": total,
            "models": [{"family": f, "model": m, **c}
                       for (f, m), c in sorted(models.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))],
            "sites": [{"site": s, **c} for s, c in sorted(sites.items(), key=lambda kv: kv[0] or "")]}


def _zero() -> dict[str, int]:
    return {**dict.fromkeys(COMPLIANCE, 0), "total": 0}
