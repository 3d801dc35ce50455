"""The adapter interface: what the shared behaviour tests need to know about one device family.

A family (built in or from another package) is covered by the shared suite once it has one
`FamilyAdapter` subclass listed in `tests/functional/families.py`. Everything the tests can learn
from the spec itself (query actions, response types, disruptive marks, Feedbacks, Macros) is read
from the spec; the adapter only says what the spec cannot: how to start the emulator, how to look
into its state, and how its logins, sessions and busy answers show on the emulator's side.

Observations are made on the emulator (its request log and state), never on the client: a test
must be able to fail when the client sends something it should not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from avctl import Credentials, Device, Result
from avctl.emulator.core import EmulatedDevice, EmulatorThread
from avctl.errors import AccountLockedError, AuthenticationError, AvctlError
from avctl.families import builtin_spec
from avctl.fleet.inventory import DeviceEntry, parse_address
from avctl.spec import Spec
from avctl.transport.tls import TLSPolicy

#: (emulator) -> parameters, computed from its state (after any setup the callable does)
Params = Callable[[Any], dict[str, Any]]


def no_params(emu: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Probe:
    """A read: call `action` with `params(emu)`; `check(emu, result)` compares the answer with the
    emulator's state and raises AssertionError when they differ."""

    action: str
    check: Callable[[Any, Result], None]
    params: Params = no_params


@dataclass(frozen=True)
class Change:
    """A state change: `observe(emu)` reads one state value; after `action(**params)` it must equal
    `expected` (and must not have equalled it before, or the test proves nothing)."""

    action: str
    params: Mapping[str, Any]
    observe: Callable[[Any], Any]
    expected: Any


@dataclass(frozen=True)
class Disruption:
    """A disruptive action and how its effect shows in the emulator (`happened(emu)`)."""

    action: str
    happened: Callable[[Any], bool]
    params: Mapping[str, Any] = field(default_factory=dict)


class FamilyAdapter:
    """One family as the shared suite sees it. Subclass, fill in the class attributes, override
    `logins` (and the optional hooks), and add an instance to `ADAPTERS` in `families.py`."""

    #: the family name (the spec's `family`, the emulator registry's key)
    family: ClassVar[str]
    #: the right password; `wrong_password` is what a user might mistype
    password: ClassVar[str] = "functional-pw-1"
    wrong_password: ClassVar[str] = "not-the-password"
    #: user name for the client (None: the spec's default user)
    user: ClassVar[str | None] = None
    #: emulator constructor arguments every test uses (e.g. a short reboot downtime)
    emulator_options: ClassVar[Mapping[str, Any]] = {}
    #: extra emulator arguments for tests about logins and sessions, for a family whose default
    #: needs no login at all (Poly UC answers Basic up front; with Digest it has nonces to lose)
    session_options: ClassVar[Mapping[str, Any]] = {}

    #: query actions a fresh emulator cannot answer without setup, each with the reason; they are
    #: skipped by the every-query test (the family's own action table covers them). Naming an
    #: action the spec does not have fails the suite.
    needs_setup: ClassVar[Mapping[str, str]] = {}
    #: parameters for query actions that take required ones (from the fresh emulator's state)
    query_params: ClassVar[Mapping[str, Params]] = {}

    read: ClassVar[Probe]
    change: ClassVar[Change]
    disruption: ClassVar[Disruption]
    #: calls that must fail validation (and so send nothing), beyond the generic unknown parameter
    invalid_calls: ClassVar[tuple[tuple[str, Mapping[str, Any]], ...]] = ()

    #: what a wrong password ends in, and a fragment its message must carry (the device's reason)
    wrong_password_error: ClassVar[type[AvctlError]] = AuthenticationError
    wrong_password_says: ClassVar[str] = ""
    #: what a locked account ends in (after `lockout_after` rejected logins, even the right password)
    locked_error: ClassVar[type[AvctlError]] = AccountLockedError
    locked_says: ClassVar[str] = ""

    #: Feedback id -> expected value on the emulator after `feedback_setup` (every Feedback of the
    #: spec must be listed, so a new Feedback needs a line here); `approx` marks time-like readings
    feedback_approx: ClassVar[frozenset[str]] = frozenset()
    #: Macro id -> (parameters for its $placeholders, how its effect shows in the emulator or None
    #: when running it is left to the family's tests)
    macro_params: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    # -- the emulator --

    @property
    def spec(self) -> Spec:
        return builtin_spec(self.family)

    def make_emulator(self, name: str, **options: Any) -> EmulatedDevice:
        from avctl.emulator.core import emulator_class

        cls = emulator_class(self.family)
        return cls(name, password=self.password, **{**self.emulator_options, **options})

    def spawn(self, emulators: EmulatorThread, *, sessions: bool = False, **options: Any) -> Any:
        """A fresh emulator serving on loopback; `sessions=True` adds `session_options`."""
        extra = {**(self.session_options if sessions else {}), **options}
        return emulators.add(self.make_emulator(f"{self.family}-functional", **extra))

    def client(self, emu: Any, tls: TLSPolicy, password: str | None = None, **options: Any) -> Device:
        """The client for `emu` (with whatever ports the family's extra sockets need)."""
        creds = Credentials(self.user, self.password if password is None else password)
        return Device(self.spec, f"127.0.0.1:{emu.port}", credentials=creds, tls=tls, **options)

    # -- what the emulator saw --

    def logins(self, emu: Any) -> int:
        """Successful logins (sessions or tokens handed out) the emulator has seen."""
        raise NotImplementedError

    def rejected_logins(self, emu: Any) -> int:
        """Logins the emulator refused since the last good one (every built-in emulator counts
        them in its `Lockout`)."""
        return len(emu.lockout.failures)

    def open_sessions(self, emu: Any) -> int | None:
        """Sessions the emulator still holds; None for a family without server-side sessions."""
        return None

    def make_busy(self, emu: Any, count: int) -> bool:
        """Make the next `count` requests meet a busy device; False if the family has no busy state."""
        return False

    def feedback_setup(self, emu: Any) -> None:
        """Put the emulator in a state where every Feedback has something to say."""

    def feedback_expected(self, emu: Any) -> dict[str, Any]:
        raise NotImplementedError

    def macro_effect(self, emu: Any, macro: str) -> Callable[[Any], bool] | None:
        """How running `macro` shows in the emulator (None: the suite only validates it)."""
        return None

    def start_call(self, emu: Any) -> None:
        """Put the room in use as its family shows it (a call, content being shared)."""
        raise NotImplementedError

    def end_call(self, emu: Any) -> None:
        """The room is idle again."""
        raise NotImplementedError

    def entry(self, emu: Any, password_ref: str) -> DeviceEntry:
        """The emulator as an inventory device (the fleet runner's view of it)."""
        return DeviceEntry(emu.name, self.family, parse_address(f"127.0.0.1:{emu.port}"), user=self.user,
                           password=password_ref)

    def download_dir(self, tmp_path: Path) -> dict[str, Any]:
        return {"download_to": tmp_path}

    def __repr__(self) -> str:
        return self.family
