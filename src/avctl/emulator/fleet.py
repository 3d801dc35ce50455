"""Emulated fleets: many emulated devices of every family in worker processes, plus their inventory.

:class:`EmulatedFleet` starts worker processes (each an ``EmulatorServer`` hosting a share of the
devices on 127.0.0.1), then writes

- an inventory file (sites and rooms so selections have something to bite on; each room holds one
  device of each family),
- a password file beside it (0600) that the inventory references as ``file:...``: no plaintext
  password in the inventory,
- the devices' certificate pins into the known-devices file, so the first sweep does not need a
  trust-on-first-use handshake per device,

and, when asked (:class:`Variety`), gives the fleet what a real one has: several models, one device
per family on firmware older than the inventory's baseline, rooms in a call, devices that are
offline and devices whose password is not the inventory's.

``avctl emulate fleet`` (``avctl.cli.emulate_fleet``) is the command line around it; tests and the
benchmark use the class directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import secrets
import signal
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from avctl.emulator.core import check_listen_address
from avctl.errors import UsageError
from avctl.families import family_names
from avctl.safeyaml import write_yaml

FLEET_REQUEST_LOG = 50

#: models a mixed fleet cycles through per family, spelled as the devices report them
MODELS = {"videoos": ("StudioX30", "G7500", "StudioX50"), "polyuc": ("VVX 450", "Trio 8800"),
          "solstice": ("Solstice Pod",)}
#: per family: (the firmware a mixed fleet runs, the baseline the inventory asks for, an older one)
FIRMWARE = {"videoos": ("4.6.2", "4.6.2", "4.5.0"), "polyuc": ("6.4.3.5156", "6.4.3", "6.3.1.8427"),
            "solstice": ("5.5.3.14", "5.5.3", "5.4.1.10")}
#: whom a room's codec is in a call with
CALL_ADDRESS = "weekly-sync@example.com"

# the traits a device can have (FleetDevice.traits)
IN_CALL, OFFLINE, WRONG_PASSWORD, OLD_FIRMWARE = "in a call", "offline", "wrong password", "older firmware"
_FIRST_TO_GET = {OFFLINE: ("polyuc", "solstice", "videoos"), WRONG_PASSWORD: ("videoos", "solstice", "polyuc")}


@dataclass(frozen=True)
class Variety:
    """What makes an emulated fleet look like a real one (all off by default: a uniform fleet)."""

    #: several models per family, and one device per family (its second) on older firmware
    mixed: bool = False
    #: this many rooms' video systems are in a call (families without calls are left alone)
    in_call: int = 0
    #: this many devices are listed but answer nothing (every connection is closed)
    offline: int = 0
    #: this many devices have a password that is not the inventory's (a login is refused)
    wrong_password: int = 0

    @classmethod
    def story(cls) -> Variety:
        """One of everything: what `avctl emulate fleet --variety` and the demo start."""
        return cls(mixed=True, in_call=1, offline=1, wrong_password=1)


@dataclass(frozen=True)
class FleetDevice:
    name: str
    family: str
    host: str
    port: int
    scheme: str
    fingerprint: str
    site: str
    room: str
    #: other sockets of the device by scheme (Solstice's v1 API on http)
    ports: tuple[tuple[str, int], ...] = ()
    #: what sets the device apart (IN_CALL, OFFLINE, WRONG_PASSWORD, OLD_FIRMWARE)
    traits: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Planned:
    family: str
    name: str
    site: str
    room: str
    #: emulator settings (model, firmware)
    settings: dict[str, Any] = field(default_factory=dict)
    traits: tuple[str, ...] = ()


def _plan(counts: Mapping[str, int], sites: int, variety: Variety = Variety()) -> list[_Planned]:
    """Every device; device i of each family shares room i."""
    out = []
    for family in sorted(counts):
        for i in range(counts.get(family, 0)):
            settings: dict[str, Any] = {}
            traits: list[str] = []
            if variety.mixed and family in MODELS:
                models, (current, _baseline, older) = MODELS[family], FIRMWARE[family]
                settings = {"model": models[i % len(models)], "firmware": older if i == 1 else current}
                if i == 1:
                    traits.append(OLD_FIRMWARE)
            out.append(_Planned(family, f"{family}-{i + 1:05d}", f"site-{i % max(sites, 1) + 1}",
                                f"room-{i + 1:05d}", settings, tuple(traits)))
    return _with_faults(out, variety)


def _with_faults(plan: list[_Planned], variety: Variety) -> list[_Planned]:
    """Mark rooms in a call (the first codecs), then offline devices and wrong passwords: taken from
    the end of the list, families in turn (phones go offline first, codecs get the wrong password
    first), each fault on a different device."""
    traits = {p.name: list(p.traits) for p in plan}
    taken = set()
    for p in [p for p in plan if p.family == "videoos"][:variety.in_call]:
        traits[p.name].append(IN_CALL)
        taken.add(p.name)
    for trait, count in ((OFFLINE, variety.offline), (WRONG_PASSWORD, variety.wrong_password)):
        first = _FIRST_TO_GET[trait]
        order = [*first, *sorted({p.family for p in plan} - set(first))]
        queues = [[p for p in reversed(plan) if p.family == family and p.name not in taken] for family in order]
        rounds = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
        for p in rounds[:count]:
            traits[p.name].append(trait)
            taken.add(p.name)
    return [_Planned(p.family, p.name, p.site, p.room, p.settings, tuple(traits[p.name])) for p in plan]


def _worker(conn: Connection, devices: list[_Planned], password: str, faults: dict[str, Any],
            spec_paths: dict[str, str], host: str) -> None:
    """Process entry point: host `devices` [(family, name)], report their ports, serve until told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_serve(conn, devices, password, faults, spec_paths, host))


async def _serve(conn: Connection, devices: list[_Planned], password: str, faults: dict[str, Any],
                 spec_paths: dict[str, str], host: str) -> None:
    from avctl.emulator.core import EmulatorServer, Faults, emulator_class
    from avctl.spec import load_spec
    from avctl.transport.tls import fingerprint

    specs = {fam: load_spec(Path(p)) for fam, p in spec_paths.items()}
    # thousands of devices per process: a short request log each keeps a long-running fleet small
    server = EmulatorServer(request_log=FLEET_REQUEST_LOG)
    await server.start()
    report = []
    try:
        for planned in devices:
            family, name = planned.family, planned.name
            cls = emulator_class(family)
            # a wrong password: the device's own differs from the one the inventory hands out
            kwargs: dict[str, Any] = {
                **planned.settings,
                "password": password + "-changed" if WRONG_PASSWORD in planned.traits else password}
            if family in specs:
                kwargs["spec"] = specs[family]
            dev = cls(name, host, 0, **kwargs)
            dev.faults = Faults(**faults, down=OFFLINE in planned.traits)
            if IN_CALL in planned.traits:
                _join_call(dev)
            await server.add(dev)
            der = ssl.PEM_cert_to_DER_cert(dev.cert_pem.decode())
            extra = tuple(sorted((getattr(dev, "extra_ports", None) or {}).items()))
            report.append((name, family, dev.host, dev.port, dev.scheme, fingerprint(der), extra))
    except Exception as exc:  # tell the parent, do not hang it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        await server.close()
        return
    conn.send(("ok", report))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # the parent closing its end of the pipe also means stop (it died or finished)
    loop.add_reader(conn.fileno(), stop.set)
    await stop.wait()
    await server.close()


def _join_call(dev: Any) -> None:
    """Put an emulated video system in a call, as dialling it would (its state, not a request)."""
    state = dev.state
    state.calls.dial(state.now_ms(), CALL_ADDRESS)


class EmulatedFleet:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, counts: Mapping[str, int], *, latency_ms: float = 0.0, workers: int = 0,
                 password: str | None = None, sites: int = 4, spec_paths: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", faults: Mapping[str, Any] | None = None,
                 allow_remote: bool = False, variety: Variety = Variety()) -> None:
        """``faults``: further `avctl.emulator.core.Faults` fields for every device (error_rate, ...).
        A ``host`` beyond loopback needs ``allow_remote`` (see `check_listen_address`). ``variety``:
        models, firmware, calls, offline devices and wrong passwords (see :class:`Variety`)."""
        self.warning = check_listen_address(host, allow_remote)
        unknown = sorted(set(counts) - set(family_names()) - set(spec_paths or {}))
        if unknown:
            raise UsageError(f"unknown families: {', '.join(unknown)}")
        self.counts = {k: v for k, v in counts.items() if v}
        if not self.counts:
            raise UsageError("an emulated fleet needs at least one device", hint="e.g. --videoos 10")
        total = sum(self.counts.values())
        self.workers = workers or max(1, min(os.cpu_count() or 1, (total + 499) // 500))
        self.faults: dict[str, Any] = {**(faults or {}), "latency": latency_ms / 1000.0}
        self.password = password or secrets.token_urlsafe(12)
        self.sites = sites
        self.spec_paths = {k: str(Path(v).resolve()) for k, v in (spec_paths or {}).items()}
        self.host = host
        self.variety = variety
        self.devices: list[FleetDevice] = []
        self._procs: list[tuple[Any, Connection]] = []

    def start(self, timeout: float = 120.0) -> list[FleetDevice]:
        plan = _plan(self.counts, self.sites, self.variety)
        where = {p.name: p for p in plan}
        shares: list[list[_Planned]] = [[] for _ in range(self.workers)]
        for i, planned in enumerate(plan):
            shares[i % self.workers].append(planned)
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited loops, threads or sockets
        for share in shares:
            if not share:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, share, self.password, self.faults,
                                                     self.spec_paths, self.host), daemon=True)
            proc.start()
            child.close()
            self._procs.append((proc, parent))
        deadline = time.monotonic() + timeout
        try:
            for _proc, conn in self._procs:
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    raise UsageError("emulator workers did not start in time")
                try:
                    status, payload = conn.recv()
                except EOFError:
                    raise UsageError("an emulator worker process exited while starting",
                                     hint="scripts using EmulatedFleet need an `if __name__ == '__main__':` guard "
                                          "(worker processes are spawned)") from None
                if status != "ok":
                    raise UsageError(f"emulator worker failed: {payload}")
                for name, family, host, port, scheme, fp, extra in payload:
                    p = where[name]
                    self.devices.append(FleetDevice(name, family, host, port, scheme, fp, p.site, p.room,
                                                    tuple(extra), p.traits))
        except BaseException:
            self.stop()
            raise
        order = {p.name: i for i, p in enumerate(plan)}
        self.devices.sort(key=lambda d: order[d.name])
        return self.devices

    def stop(self) -> None:
        for proc, conn in self._procs:
            with contextlib.suppress(Exception):
                conn.close()
            if proc.is_alive():
                proc.terminate()
        for proc, _conn in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        self._procs = []

    def __enter__(self) -> EmulatedFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def with_trait(self, trait: str) -> list[FleetDevice]:
        return [d for d in self.devices if trait in d.traits]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p, _c in self._procs if p.pid is not None]

    def write_inventory(self, path: str | os.PathLike[str], *, known_hosts: Path | None = None) -> Path:
        """Write the inventory and the password file beside it; pin every device's certificate."""
        from avctl.transport.tls import KnownHosts

        inv = Path(path)
        inv.parent.mkdir(parents=True, exist_ok=True)
        pw_file = inv.with_name(inv.stem + ".password")
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password + "\n")
        doc: dict[str, Any] = {
            "defaults": {"password": f"file:{pw_file.name}"},
            **({"firmware": {f: {"*": FIRMWARE[f][1]} for f in self.counts if f in FIRMWARE}}
               if self.variety.mixed else {}),
            "sites": {f"site-{i + 1}": {"tags": [f"region-{i % 2 + 1}"]} for i in range(max(self.sites, 1))},
            "devices": {
                d.name: {"family": d.family, "address": f"{d.host}:{d.port}", "site": d.site, "room": d.room,
                         **({"scheme": d.scheme} if d.scheme != "https" else {}),
                         **({"ports": dict(d.ports)} if d.ports else {}),
                         "tags": ["emulated"]}
                for d in self.devices
            },
        }
        write_yaml(inv, doc)
        kh = KnownHosts(known_hosts)
        for d in self.devices:
            if d.scheme == "https":
                kh.set(f"{d.host}:{d.port}", d.fingerprint, replace=True)
            for scheme, port in d.ports:
                if scheme == "https" and port:  # the device's other TLS sockets serve the same certificate
                    kh.set(f"{d.host}:{port}", d.fingerprint, replace=True)
        return inv
