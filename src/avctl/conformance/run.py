"""Running the conformance suite: the same checks against the emulator and a device, side by side.

The device is read-only: it is captured (`avctl.capture`, reads only, one login) and probed with
requests that carry no credentials. The emulator is started in this process, as the device's model
and firmware, on loopback, and captured the same way. The report has each check's outcome on both
sides, and every read whose answers differ in form (a member one side lacks, another type, another
status): the places where the emulator does not yet answer as the device does.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avctl.auth import Credentials
from avctl.capture import capture
from avctl.conformance.checks import Check, Outcome, Target, checks_for
from avctl.conformance.shape import ShapeDiff, compare
from avctl.device import Device
from avctl.emulator.core import EmulatedDevice, EmulatorServer, emulator_class
from avctl.emulator.profiled import attach, profile_settings
from avctl.errors import AuthenticationError
from avctl.profile import Profile
from avctl.transport.tls import TLSPolicy

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    check: Check
    emulator: Outcome
    #: None when only the emulator was checked
    device: Outcome | None = None

    @property
    def differs(self) -> bool:
        return self.device is not None and self.device.ok != self.emulator.ok


@dataclass
class Report:
    family: str
    #: what the device side was ("10.0.0.7", "profile trio-8800"), None for the emulator alone
    device: str | None
    model: str = ""
    firmware: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    shapes: list[ShapeDiff] = field(default_factory=list)
    compared: int = 0

    @property
    def failed(self) -> list[CheckResult]:
        """Checks that fail on the emulator alone (no device), or that differ between the two."""
        if self.device is None:
            return [c for c in self.checks if c.emulator.ok is False]
        return [c for c in self.checks if c.differs]

    @property
    def clean(self) -> bool:
        return not self.failed and not self.shapes

    def to_json(self) -> dict[str, Any]:
        def outcome(o: Outcome | None) -> dict[str, Any] | None:
            return None if o is None else {"ok": o.ok, "detail": o.detail}

        return {
            "family": self.family, "device": self.device, "model": self.model, "firmware": self.firmware,
            "clean": self.clean,
            "checks": [{"id": c.check.id, "title": c.check.title, "evidence": c.check.evidence,
                        "emulator": outcome(c.emulator), "device": outcome(c.device), "differs": c.differs}
                       for c in self.checks],
            "reads_compared": self.compared,
            "differences": [{"read": d.read, "at": d.at, "device": d.device, "emulator": d.emulator}
                            for d in self.shapes],
        }


async def run_conformance(family: str, device: Device | None = None, *, profile: Profile | None = None,
                          profile_name: str = "", progress: Progress | None = None) -> Report:
    """Check the emulator of `family`; with `device` (or a `profile` served as the device), check
    that too and compare the two."""
    tell = progress or (lambda _: None)
    async with EmulatorServer() as server, _trusted_folder() as folder:
        if device is None and profile is not None:
            served = attach(emulator_class(family)("profile", "127.0.0.1", 0, password=_password(),
                                                   **profile_settings(profile, {})), profile)
            await server.add(served)
            async with _client(served, folder) as client:
                return await _compare(family, client, f"profile {profile_name or profile.model}", server,
                                      folder, tell)
        label = None if device is None else device.name
        return await _compare(family, device, label, server, folder, tell)


async def _compare(family: str, device: Device | None, label: str | None, server: EmulatorServer,
                   folder: Path, tell: Progress) -> Report:
    report = Report(family, label)
    device_side: Target | None = None
    settings: dict[str, Any] = {}
    if device is not None:
        tell(f"reading {label} (reads only)")
        captured = await capture(device)
        device_side = Target(label or "device", device, captured)
        report.model, report.firmware, settings = captured.model, captured.firmware, dict(captured.settings)
    emulated = emulator_class(family)("emulator", "127.0.0.1", 0, password=_password(), **settings)
    await server.add(emulated)
    async with _client(emulated, folder) as client:
        tell("reading the emulator" + (f" as {report.model}" if report.model else ""))
        emulator_side = Target("emulator", client, await capture(client))
        if device_side is None:
            report.model, report.firmware = emulator_side.profile.model, emulator_side.profile.firmware
        for item in checks_for(family):
            report.checks.append(CheckResult(
                item, await _outcome(item, emulator_side),
                None if device_side is None else await _outcome(item, device_side)))
    if device_side is not None:
        report.compared, report.shapes = _shapes(device_side.profile, emulator_side.profile)
    return report


async def _outcome(item: Check, target: Target) -> Outcome:
    try:
        return await item.run(target)
    except AuthenticationError:
        raise  # a rejected login is never worked around, and ends the run
    except Exception as exc:  # a device that breaks a check has failed it; the suite goes on
        return Outcome(False, f"error: {exc}")


def _shapes(device: Profile, emulator: Profile) -> tuple[int, list[ShapeDiff]]:
    theirs = {e.key(): e for e in emulator.exchanges}
    out: list[ShapeDiff] = []
    compared = 0
    for mine in device.exchanges:
        other = theirs.get(mine.key())
        if other is None:
            out.append(ShapeDiff(mine.action, "", f"HTTP {mine.status}", "not read"))
            continue
        compared += 1
        if mine.status != other.status:
            out.append(ShapeDiff(mine.action, "", f"HTTP {mine.status}", f"HTTP {other.status}"))
        elif mine.is_json and other.is_json:
            out.extend(compare(mine.action, mine.answer, other.answer))
        elif mine.is_json != other.is_json:
            out.append(ShapeDiff(mine.action, "", "JSON" if mine.is_json else "text",
                                 "JSON" if other.is_json else "text"))
    return compared, out


def _password() -> str:
    return secrets.token_urlsafe(12)


@asynccontextmanager
async def _trusted_folder() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="avctl-conformance-") as name:
        yield Path(name)


def _client(dev: EmulatedDevice, folder: Path) -> Device:
    """A client of an emulator started here, trusting exactly that emulator's certificate."""
    bundle = folder / f"{dev.name}.pem"
    bundle.write_bytes(dev.cert_pem)
    return Device(dev.family, dev.host, port=dev.port, name=dev.name,
                  credentials=Credentials(dev.user, dev.password), tls=TLSPolicy.ca_bundle(str(bundle)),
                  ports=dict(dev.extra_ports) or None)
