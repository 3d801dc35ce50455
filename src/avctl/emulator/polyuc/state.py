"""State of an emulated Poly UC phone: lines, calls, mute, config parameters, input events, logs.

Plain data and the rules that change it; the HTTP side (`handlers.py`) maps requests onto these
methods and turns `UcStatus` into `{"Status": code}` answers. Field names and value forms follow
the captures in apiref/polyuc.md (strings everywhere, "True"/"False", "0x..." handles in v1).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from avctl.emulator.polyuc.params import ParamInfo, catalogue, is_secret, lookup
from avctl.spec.model import Variable


class UcStatus(Exception):
    """A non-2000 answer: `code` and optional `data` (e.g. the unknown parameter names)."""

    def __init__(self, code: str, data: Any = None) -> None:
        super().__init__(code)
        self.code = code
        self.data = data


# --- configuration parameters ---------------------------------------------------------------------

#: parameters per config/set and config/get: "setConfig API has limit of 20 parameters in each
#: request" (eupubs/vvxme vvxme.py, setConfig, tested on UC Software 6.1); a larger one is refused
#: with Status 4009, "Parameter count exceeded limit of 20 parameters" (AVT PolycomTrio.java, listed
#: among config/get's return codes too)
CONFIG_SET_LIMIT = 20

#: defaults a model family reports other than the templates' (which are VVX-era UC Software 5.x):
#: a Trio answers config/get of video.callRate with {"Value": "2048", "Source": "default"} (AVT
#: PolycomTrio.java, retrieveConfigData); the templates say 512
MODEL_DEFAULTS: dict[str, dict[str, str]] = {"Trio": {"video.callRate": "2048"}}


def model_defaults(model: str) -> Mapping[str, str]:
    """The defaults `model` reports other than the table's (shared, never copied per phone)."""
    return next((d for family, d in MODEL_DEFAULTS.items() if model.startswith(family)), {})


class ConfigParam:
    """One parameter of one phone: the shared table's entry and the phone's own value and source.

    A view, made on each lookup: the value lives in the phone's `PhoneConfig`, and only while it
    differs from the default (a fleet of phones shares one table)."""

    __slots__ = ("_own", "info", "name")

    def __init__(self, name: str, info: ParamInfo, own: dict[str, list[str | None]]) -> None:
        self.name, self.info, self._own = name, info, own

    @property
    def variable(self) -> Variable | None:
        return self.info.variable

    @property
    def default(self) -> str:
        return self.info.default

    def _get(self, index: int) -> str | None:
        entry = self._own.get(self.name)
        return None if entry is None else entry[index]

    def _put(self, index: int, item: str | None) -> None:
        entry = self._own.setdefault(self.name, [None, "default"])
        entry[index] = item
        if entry == [None, "default"]:
            del self._own[self.name]

    @property
    def value(self) -> str | None:
        return self._get(0)

    @value.setter
    def value(self, value: str | None) -> None:
        self._put(0, value)

    @property
    def source(self) -> str:
        return self._get(1) or "default"

    @source.setter
    def source(self, source: str) -> None:
        self._put(1, source)

    @property
    def current(self) -> str:
        value = self.value
        return self.default if value is None else value

    @property
    def shown(self) -> str:
        """What config/get answers: a password parameter reads back empty."""
        return "" if is_secret(self.name, self.info) else self.current

    def check(self, value: str) -> bool:
        return self.info.accepts(value)


class PhoneConfig(Mapping[str, ConfigParam]):
    """One phone's parameters: every name the shared table knows, holding only this phone's own
    values. Iterating yields the spec's catalogue (the parameters avctl reads and writes); a lookup
    by name reaches every parameter of the table."""

    def __init__(self, defaults: Mapping[str, str] | None = None) -> None:
        self._defaults = defaults or {}  # the model's own defaults (model_defaults)
        self._own: dict[str, list[str | None]] = {}  # name -> [value or None, source]

    def __getitem__(self, name: str) -> ConfigParam:
        info = lookup(name)
        if info is None:
            raise KeyError(name)
        if name in self._defaults:
            info = replace(info, default=self._defaults[name])
        return ConfigParam(name, info, self._own)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue())

    def __len__(self) -> int:
        return len(catalogue())

    def own(self) -> dict[str, tuple[str | None, str]]:
        """The parameters this phone holds a value or a source of its own for."""
        return {name: (entry[0], entry[1] or "default") for name, entry in self._own.items()}

    def reset(self, source: str | None) -> None:
        """Back to the defaults: every parameter, or those last set from `source`."""
        for name in [n for n, entry in self._own.items() if source is None or entry[1] == source]:
            del self._own[name]


# --- lines and calls ----------------------------------------------------------------------------------


@dataclass
class Line:
    number: int
    user: str
    registered: bool = True
    label: str = ""
    server: str = "sip.example.invalid"

    @property
    def sip_address(self) -> str:
        return f"{self.user}@{self.server}"


@dataclass
class Call:
    handle: int
    line: int
    sequence: int
    direction: str  # Incoming | Outgoing
    protocol: str  # Sip | Tel | H323
    remote_number: str
    remote_name: str
    state: str  # Offering | RingBack | Connected | Hold
    created: float = field(default_factory=time.monotonic)
    connect_at: float | None = None  # outgoing: RingBack until then
    connected_at: float | None = None
    ringing: bool = False
    ignored: bool = False
    dtmf: list[str] = field(default_factory=list)

    @property
    def hex(self) -> str:
        return f"{self.handle:x}"

    def refresh(self, now: float) -> None:
        """Outgoing calls are answered by the far end `connect_after` seconds after dialling."""
        if self.state == "RingBack" and self.connect_at is not None and now >= self.connect_at:
            self.state = "Connected"
            self.connected_at = self.connect_at

    def duration(self, now: float) -> int:
        return int(now - self.connected_at) if self.connected_at is not None else 0


def uc_duration(seconds: int) -> str:
    """A span as phones write it: "4 mins 49 secs", "26 secs", "1 day 2 hours 3 mins 1 sec".

    Zero parts are left out (MIV call logs: "4 secs", "4 mins 49 secs"); the order and the
    singulars follow the format Posh-UCS parses (UcsRestUtil.psm1 Convert-UcsRestDuration)."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}"
             for n, unit in ((days, "day"), (hours, "hour"), (minutes, "min"), (secs, "sec")) if n]
    return " ".join(parts) or "0 secs"


def uc_time(wall: float) -> str:
    """A wall-clock instant in the phones' form ("2022-06-29T12:51:46", MIV callLogs StartTime)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall))


@dataclass
class LogEntry:
    line: int
    number: str
    name: str
    start: float  # wall-clock
    seconds: int | None  # None: the call was never connected

    def to_json(self) -> dict[str, str]:
        return {
            "LineNumber": str(self.line),
            # a call that never connected has an empty Duration (MIV: every Missed entry and the
            # unanswered Placed ones)
            "Duration": "" if self.seconds is None else uc_duration(self.seconds),
            "StartTime": uc_time(self.start),
            "RemotePartyName": self.name,
            "RemotePartyNumber": self.number,
        }


KEY_NAMES = frozenset(
    [f"Dialpad{d}" for d in range(10)]
    + ["DialpadStar", "DialpadPound"]
    + [f"SoftKey{n}" for n in range(1, 5)]
    + [f"Line{n}" for n in range(1, 7)]
    + ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Select", "Delete", "Home", "Back", "MicMute",
       "Redial", "VolUp", "VolDown", "Headset", "Handsfree", "Hold", "Transfer", "Conference",
       "Messages", "Directories", "Applications", "DoNotDisturb"]
)
DTMF_CHARS = set("0123456789*#ABCDabcd")


@dataclass
class UcPhone:
    """Everything the phone remembers. `clock` is monotonic time (handlers may pass their own)."""

    name: str
    rng: random.Random
    model: str = "VVX 450"
    firmware: str = "6.4.3.5156"
    mac: str = ""
    ip: str = "127.0.0.1"
    screen: tuple[int, int] = (480, 272)
    connect_after: float = 0.0  # seconds an outgoing call rings before the far end answers
    booted_at: float = field(default_factory=time.monotonic)
    lines: list[Line] = field(default_factory=list)
    calls: dict[int, Call] = field(default_factory=dict)
    muted: bool = False
    volume: int = 8
    config: PhoneConfig = field(default_factory=PhoneConfig)
    key_events: list[dict[str, str]] = field(default_factory=list)
    touch_events: list[dict[str, Any]] = field(default_factory=list)
    text_inputs: list[dict[str, str]] = field(default_factory=list)
    logs: dict[str, list[LogEntry]] = field(
        default_factory=lambda: {"Placed": [], "Received": [], "Missed": []}
    )
    transfers: list[tuple[str, str]] = field(default_factory=list)
    skype_user: str | None = None
    skype_address: str | None = None
    restarts: int = 0
    reboots: int = 0
    factory_resets: int = 0
    config_resets: list[str] = field(default_factory=list)
    provisioning_checks: int = 0
    #: the software build the provisioning server offers; a check that finds another one installs it
    provisioned_firmware: str | None = None
    captures_uploaded: list[str] = field(default_factory=list)
    pending_restart: str | None = None  # "restart"/"reboot" waiting for calls to end
    last_call_at: float | None = None  # wall clock of the last call's end (pollForStatus)
    next_handles: list[int] = field(default_factory=list)  # test hook: handles the next calls get

    def __post_init__(self) -> None:
        if not self.mac:
            self.mac = "64167f" + "".join(self.rng.choice("0123456789abcdef") for _ in range(6))
        # a phone on a desk has been up a while (0.5 to 3 days)
        self.booted_at -= self.rng.uniform(43200, 259200)
        if not self.lines:
            self.lines = [Line(1, "1001", True, "1001"), Line(2, "1002", False, "1002")]
        self.config = PhoneConfig(model_defaults(self.model))
        # an emulated phone has its REST API switched on (set from the web UI), as a usable phone must
        self.config["apps.restapi.enabled"].value = "1"
        self.config["apps.restapi.enabled"].source = "web"

    # -- time --

    def uptime(self, now: float | None = None) -> float:
        return max(0.0, (time.monotonic() if now is None else now) - self.booted_at)

    def uptime_parts(self) -> tuple[int, int, int, int]:
        total = int(self.uptime())
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return days, hours, minutes, seconds

    @property
    def rest_enabled(self) -> bool:
        return self.config["apps.restapi.enabled"].current == "1"

    # -- lines --

    def line(self, number: int) -> Line:
        for line in self.lines:
            if line.number == number:
                return line
        raise UcStatus("4005")

    # -- calls --

    def active_calls(self) -> list[Call]:
        now = time.monotonic()
        for call in self.calls.values():
            call.refresh(now)
        return sorted(self.calls.values(), key=lambda c: (c.line, c.sequence))

    def _new_handle(self) -> int:
        if self.next_handles:
            return self.next_handles.pop(0)
        while True:
            handle = self.rng.randrange(0x1000000, 0xFFFFFFFF)
            if handle not in self.calls:
                return handle

    def _next_sequence(self, line: int) -> int:
        used = {c.sequence for c in self.calls.values() if c.line == line}
        return next(n for n in range(1, 100) if n not in used)

    def dial(self, dest: str, line_number: int, call_type: str) -> Call:
        line = self.line(line_number)
        if not line.registered:
            raise UcStatus("4002")
        protocol = {"SIP": "Sip", "TEL": "Sip", "H323": "H323"}[call_type]
        now = time.monotonic()
        call = Call(
            handle=self._new_handle(),
            line=line_number,
            sequence=self._next_sequence(line_number),
            direction="Outgoing",
            protocol=protocol,
            remote_number=dest,
            remote_name=dest,
            state="RingBack",
            connect_at=now + self.connect_after,
        )
        call.refresh(now)
        self.calls[call.handle] = call
        return call

    def incoming(self, number: str, name: str = "", line_number: int = 1) -> Call:
        """Test hook: a call arrives and rings (answer, ignore or reject it)."""
        line = self.line(line_number)
        if not line.registered:
            raise UcStatus("4002")
        call = Call(
            handle=self._new_handle(),
            line=line_number,
            sequence=self._next_sequence(line_number),
            direction="Incoming",
            protocol="Sip",
            remote_number=number,
            remote_name=name or number,
            state="Offering",
            ringing=True,
        )
        self.calls[call.handle] = call
        return call

    def find(self, handle_digits: str | None) -> Call:
        if handle_digits is None:
            raise UcStatus("4000")
        try:
            handle = int(handle_digits, 16)
        except ValueError:
            raise UcStatus("4000") from None
        call = self.calls.get(handle)
        if call is None:
            raise UcStatus("4007")
        call.refresh(time.monotonic())
        return call

    def current_call(self, *states: str) -> Call:
        """The call a request without `Ref` acts on: the first in one of `states`, else any call
        (whose state then refuses the action with 4003); no call at all is 4007."""
        calls = self.active_calls()
        for call in calls:
            if call.state in states:
                return call
        if calls:
            return calls[0]
        raise UcStatus("4007")

    def answer(self, call: Call) -> None:
        if call.state != "Offering":
            raise UcStatus("4003")
        call.state, call.ringing, call.connected_at = "Connected", False, time.monotonic()

    def ignore(self, call: Call) -> None:
        if call.state != "Offering":
            raise UcStatus("4003")
        call.ringing, call.ignored = False, True

    def reject(self, call: Call) -> None:
        if call.state != "Offering":
            raise UcStatus("4003")
        self._log("Missed", call, None)
        del self.calls[call.handle]

    def hold(self, call: Call) -> None:
        if call.state != "Connected":
            raise UcStatus("4003")
        call.state = "Hold"

    def resume(self, call: Call) -> None:
        if call.state != "Hold":
            raise UcStatus("4003")
        call.state = "Connected"

    def end(self, call: Call) -> None:
        now = time.monotonic()
        call.refresh(now)
        seconds = None if call.connected_at is None else call.duration(now)
        if call.direction == "Outgoing":
            self._log("Placed", call, seconds)
        else:
            self._log("Received" if seconds is not None else "Missed", call, seconds)
        del self.calls[call.handle]

    def transfer(self, call: Call, dest: str) -> None:
        if call.state not in ("Connected", "Hold"):
            raise UcStatus("4003")
        self.transfers.append((call.remote_number, dest))
        self.end(call)

    def send_dtmf(self, digits: str) -> Call:
        if not digits or any(ch not in DTMF_CHARS for ch in digits):
            raise UcStatus("4000")
        for call in self.active_calls():
            if call.state == "Connected":
                call.dtmf.append(digits)
                return call
        raise UcStatus("4007")

    def _log(self, kind: str, call: Call, seconds: int | None) -> None:
        self.last_call_at = time.time()
        start = self.last_call_at - (time.monotonic() - call.created)
        self.logs[kind].insert(0, LogEntry(call.line, call.remote_number, call.remote_name, start, seconds))

    # -- configuration --

    def config_get(self, names: list[str]) -> dict[str, dict[str, str]]:
        if len(names) > CONFIG_SET_LIMIT:
            raise UcStatus("4009")
        unknown = [n for n in names if n not in self.config]
        if unknown:
            raise UcStatus("4000", {"UnknownParameters": unknown})
        return {n: {"Value": self.config[n].shown, "Source": self.config[n].source} for n in names}

    def config_set(self, values: dict[str, str]) -> None:
        if len(values) > CONFIG_SET_LIMIT:
            raise UcStatus("4009")
        unknown = [n for n in values if n not in self.config]
        if unknown:
            raise UcStatus("4000", {"UnknownParameters": unknown})
        bad = [n for n, v in values.items() if not self.config[n].check(v)]
        if bad:
            raise UcStatus("4000", {"InvalidValues": bad})
        for name, value in values.items():
            if self._needs_device_set(name) and not self._device_set_allowed(name, values):
                continue  # device.* parameters only apply with device.set and <name>.set at "1"
            param = self.config[name]
            param.value, param.source = value, "web"

    @staticmethod
    def _needs_device_set(name: str) -> bool:
        return name.startswith("device.") and name != "device.set" and not name.endswith(".set")

    def _device_set_allowed(self, name: str, values: dict[str, str]) -> bool:
        def flag(key: str) -> str:
            return values.get(key) or (self.config[key].current if key in self.config else "0")

        return flag("device.set") == "1" and flag(f"{name}.set") == "1"

    def config_reset(self, source: str | None) -> None:
        self.config.reset(source)
        self.config_resets.append(source or "all")

    def factory_reset(self) -> None:
        # the REST API is off by default: a reset phone refuses /api
        self.config = PhoneConfig(model_defaults(self.model))
        self.calls.clear()
        self.logs = {"Placed": [], "Received": [], "Missed": []}
        self.skype_user = self.skype_address = None
        self.muted = False
        self.factory_resets += 1

    def restarted(self, reboot: bool, downtime: float) -> None:
        """Everything volatile is lost; uptime counts from the end of the downtime."""
        self.calls.clear()
        self.pending_restart = None
        self.booted_at = time.monotonic() + downtime
        if reboot:
            self.reboots += 1
        else:
            self.restarts += 1
