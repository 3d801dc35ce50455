#!/usr/bin/env python3
"""Build the shipped device profiles (src/avctl/profile/shipped/NAME.json) from public recordings.

    .venv/bin/python scripts/build_profiles.py            # write every profile
    .venv/bin/python scripts/build_profiles.py --check    # exit 1 if a shipped file differs
    .venv/bin/python scripts/build_profiles.py --diff     # also list where the emulator differs

For each model: an emulator configured as that model (`model=`, `firmware=` as the recordings
show) is captured with `avctl.capture` over real HTTPS on loopback; then the answer of every read
for which a public recording exists (scripts/profile_sources/NAME.json, each with its provenance)
replaces the emulator's, run through the same `Scrubber` as the capture, so one value gets one
placeholder in the whole file. A recorded request that `avctl capture` does not send itself (a
public client's own config read) is added after the captured reads. Each read's `source` says
where its answer comes from.

Reproducible: the emulators run on a fixed clock and a fixed random seed, and `created` is a
constant, so running the script twice writes the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avctl import Credentials, Device
from avctl.capture import capture, finish_exchange
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.families import builtin_spec
from avctl.profile import Exchange, Profile, Redaction, Scrubber, save_profile
from avctl.transport.tls import KnownHosts, TLSPolicy

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "profile_sources"
SHIPPED = ROOT / "src" / "avctl" / "profile" / "shipped"
#: the date the shipped profiles say they were made (a constant: the files must not change by themselves)
CREATED = "2026-11-30T00:00:00Z"
#: the emulators' clock while they are captured (wall time 2026-11-30T00:00:00Z; a monotonic origin)
FIXED_EPOCH = 1_796_083_200.0
FIXED_MONOTONIC = 10_000_000.0
SEED = 1414
PASSWORD = "build-profiles"
NO_RECORDING = "emulator: no public recording"
#: modules of the emulators that read the clock
CLOCK_MODULES = ("avctl.emulator.videoos", "avctl.emulator.videoos.state", "avctl.emulator.polyuc",
                 "avctl.emulator.polyuc.state", "avctl.emulator.polyuc.handlers", "avctl.emulator.solstice",
                 "avctl.emulator.solstice.state")


@dataclass(frozen=True)
class Model:
    family: str
    settings: dict[str, Any]
    #: how long the emulated device has been up when it is captured (where no recording says)
    uptime: float
    user: str | None = "admin"
    sources: tuple[str, ...] = field(default=())
    #: (path, key) of a recorded answer naming the device: the emulator takes that name, so its own
    #: answers and the recorded ones name the device with the same placeholder
    name_from: tuple[str, str] | None = None


MODELS: dict[str, Model] = {
    # AVI's recordings: /rest/system says "model":"StudioX30", "softwareVersion":"3.12.0", uptime 693845 s
    "studio-x30": Model("videoos", {"model": "StudioX30", "firmware": "3.12.0"}, 693845.31,
                        sources=("studio-x30.json",), name_from=("/rest/system", "systemName")),
    # no public recording of a G7500 was found: the emulator's answers, as that model
    "g7500": Model("videoos", {"model": "G7500", "firmware": "4.6.2"}, 2 * 86400.0),
    # MIV's recordings: v2 device/info says "ModelNumber":"Trio 8800", "Application":"7.2.2.1094 ...",
    # UpTime 1 day 1:41:28
    "trio-8800": Model("polyuc", {"model": "Trio 8800", "firmware": "7.2.2.1094"}, 92488.0, user=None,
                       sources=("trio-8800.json",)),
    "vvx-450": Model("polyuc", {"model": "VVX 450", "firmware": "6.4.3.5156"}, 3 * 86400.0, user=None),
    "solstice-pod-gen3": Model("solstice", {"model": "Solstice Pod", "firmware": "5.5.3.14"}, 86400.0),
}


class _FixedClock:
    """Stands in for the `time` module inside the emulators while they are captured."""

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)

    @staticmethod
    def time() -> float:
        return FIXED_EPOCH

    @staticmethod
    def monotonic() -> float:
        return FIXED_MONOTONIC


@contextlib.contextmanager
def fixed_clock() -> Iterator[None]:
    """The emulators' uptimes and timestamps from a fixed clock, so every run answers the same.
    Only the emulators' modules see it: the client and the event loop keep the real clock."""
    modules = [importlib.import_module(name) for name in CLOCK_MODULES]
    saved = [(m, m.time) for m in modules if hasattr(m, "time")]
    for module, _ in saved:
        module.time = _FixedClock()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in saved:
            module.time = original  # type: ignore[attr-defined]


def _set_uptime(dev: EmulatedDevice, uptime: float) -> None:
    """Boot the device `uptime` seconds before the fixed clock (VideoOS counts wall time, Poly UC
    monotonic time; a Solstice pod reports no uptime)."""
    state = getattr(dev, "state", None) or getattr(dev, "phone", None)
    if state is not None and hasattr(state, "booted_at"):
        origin = FIXED_MONOTONIC if dev.family == "polyuc" else FIXED_EPOCH
        state.booted_at = origin - uptime


def load_sources(model: Model) -> list[dict[str, Any]]:
    """The recorded reads of `model`, each tagged with the source it comes from."""
    reads = []
    for name in model.sources:
        doc = json.loads((SOURCES / name).read_text("utf-8"))
        for read in doc["reads"]:
            reads.append({**read, "source": f"recorded: {doc['source']}"})
    return reads


def recorded_key(dev: EmulatedDevice, read: dict[str, Any]) -> str:
    exchange = Exchange(action="", method=read["method"], path=read["path"], status=0, answer=None,
                        body=read.get("body"))
    return exchange.key(dev.ignore_case)


def merge(dev: EmulatedDevice, captured: Profile, recorded: list[dict[str, Any]],
          scrubber: Scrubber) -> list[Exchange]:
    """The captured reads with the recorded answers put in, then the recorded reads capture lacks."""
    by_key = {recorded_key(dev, r): r for r in recorded}
    out: list[Exchange] = []
    for exchange in captured.exchanges:
        read = by_key.pop(exchange.key(dev.ignore_case), None)
        out.append(_recorded(exchange, read, scrubber) if read else replace(exchange, source=NO_RECORDING))
    for read in by_key.values():  # requests of public clients that avctl capture does not send
        resolved = dev.router.resolve(read["method"], dev.normalize_path(read["path"]))
        if isinstance(resolved, int):
            raise SystemExit(f"{read['method']} {read['path']}: no such route in the {dev.family} spec")
        action = resolved[0]
        base = Exchange(action=action.id, method=read["method"], path=read["path"], status=0, answer=None,
                        params=scrubber.scrub(read.get("params", {}), f"{action.id} (parameters)"),
                        body=scrubber.scrub(read.get("body"), f"{action.id} (request)"))
        out.append(_recorded(base, read, scrubber))
    return [finish_exchange(e, scrubber) for e in out]


def _recorded(exchange: Exchange, read: dict[str, Any], scrubber: Scrubber) -> Exchange:
    is_json = "json" in read
    answer = read["json"] if is_json else read["text"]
    return replace(exchange, status=read["status"], is_json=is_json, content_type=read["content_type"],
                   answer=scrubber.scrub(answer, f"{exchange.action} "), source=read["source"])


async def _capture(dev: EmulatedDevice, model: Model, scrubber: Scrubber, known: Path) -> Profile:
    ports = {"https": dev.v1_https_port} if dev.family == "solstice" else None  # type: ignore[attr-defined]
    async with Device(builtin_spec(dev.family), f"127.0.0.1:{dev.port}",
                      credentials=Credentials(model.user, PASSWORD),
                      tls=TLSPolicy.pinned(KnownHosts(known)), ports=ports) as client:
        return await capture(client, scrubber=scrubber)


def build(name: str, model: Model, differences: list[str] | None = None) -> Profile:
    spec = builtin_spec(model.family)
    scrubber = Scrubber.for_spec(spec)
    recorded = load_sources(model)
    with tempfile.TemporaryDirectory() as tmp, fixed_clock(), EmulatorThread() as emulators:
        device_name = next((r["json"][model.name_from[1]] for r in recorded
                            if model.name_from and r["path"] == model.name_from[0]), name)
        dev = emulators.add(emulator_class(model.family)(device_name, password=PASSWORD, seed=SEED,
                                                         **model.settings))
        _set_uptime(dev, model.uptime)
        captured = asyncio.run(_capture(dev, model, scrubber, Path(tmp) / "known_devices"))
        if differences is not None:
            differences.extend(compare(dev, name, captured, recorded))
        exchanges = merge(dev, captured, recorded, scrubber)
    sources = sorted({e.source for e in exchanges if e.source != NO_RECORDING})
    settings = ", ".join(f"{k}={v}" for k, v in model.settings.items())
    return Profile(
        family=model.family,
        model=str(model.settings["model"]),
        firmware=str(model.settings["firmware"]),
        exchanges=exchanges,
        settings=dict(model.settings),
        redactions=still_there(scrubber.report(), exchanges),
        skipped=captured.skipped,
        source="; ".join([*sources, f"emulator: avctl {model.family} emulator ({settings}) for every read "
                          "with no public recording"]),
        created=CREATED,
    )


def still_there(report: list[Redaction], exchanges: list[Exchange]) -> list[Redaction]:
    """The report without the places of emulator answers a recording replaced: each place kept is
    one where the file holds the placeholder."""
    answers: dict[str, list[Any]] = {}
    for e in exchanges:
        answers.setdefault(e.action, []).append(e.answer)
    kept = []
    for item in report:
        where = tuple(w for w in item.where if _holds(answers, w, item.placeholder))
        if where:
            kept.append(replace(item, where=where))
    return kept


def _holds(answers: dict[str, list[Any]], where: str, placeholder: str) -> bool:
    action, _, pointer = where.partition(" ")
    if not pointer.startswith("/") and pointer:
        return True  # a request's parameters or body: not replaced by a recording
    for answer in answers.get(action, ()):
        value = answer
        for part in pointer.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = None
                break
        if isinstance(value, str) and placeholder in value:
            return True
    return False


def compare(dev: EmulatedDevice, name: str, captured: Profile, recorded: list[dict[str, Any]]) -> list[str]:
    """Where the emulator's own answer differs from the recording: keys missing or extra, types."""
    own = {e.key(dev.ignore_case): e for e in captured.exchanges}
    lines = []
    for read in recorded:
        exchange = own.get(recorded_key(dev, read))
        where = f"{name} {read['method']} {read['path']}"
        if exchange is None:
            lines.append(f"{where}: not a read avctl capture sends")
            continue
        if exchange.is_json != ("json" in read):
            lines.append(f"{where}: emulator answers {'JSON' if exchange.is_json else 'text'}, "
                         f"recording {'JSON' if 'json' in read else 'text'}")
            continue
        lines.extend(f"{where}: {d}" for d in _shape_diff(exchange.answer, read.get("json", read.get("text"))))
    return lines


def _shape_diff(own: Any, real: Any, at: str = "") -> list[str]:
    if isinstance(own, dict) and isinstance(real, dict):
        out = [f"{at}/{k}: missing in the emulator" for k in real.keys() - own.keys()]
        out += [f"{at}/{k}: only in the emulator" for k in own.keys() - real.keys()]
        for k in sorted(own.keys() & real.keys()):
            out += _shape_diff(own[k], real[k], f"{at}/{k}")
        return sorted(out)
    if isinstance(own, list) and isinstance(real, list):
        return _shape_diff(own[0], real[0], f"{at}/0") if own and real else []
    if type(own) is not type(real) and not (own is None or real is None):
        return [f"{at or '(answer)'}: emulator {type(own).__name__} {json.dumps(own)[:40]}, "
                f"recording {type(real).__name__} {json.dumps(real)[:40]}"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="profiles to build (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files; write nothing")
    parser.add_argument("--diff", action="store_true", help="list where the emulator differs from the recordings")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="folder to write to (default: the shipped one)")
    args = parser.parse_args()
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names or list(MODELS):
            differences: list[str] | None = [] if args.diff else None
            profile = build(name, MODELS[name], differences)
            target = args.out / f"{name}.json"
            written = Path(tmp) / target.name if args.check else target
            save_profile(profile, written)
            written.chmod(0o644)  # package data: readable by whoever installs avctl
            if args.check and (not target.exists() or target.read_bytes() != written.read_bytes()):
                stale.append(name)
            recorded = sum(e.source != NO_RECORDING for e in profile.exchanges)
            print(f"{name}: {len(profile.exchanges)} reads ({recorded} recorded), "
                  f"{len(profile.redactions)} redacted, {written.stat().st_size // 1024} KB")
            for line in differences or ():
                print(f"  {line}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run scripts/build_profiles.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
