"""The types the server's parts share: what a poll observed, a device as the service shows it, who asks.

Kept small and free of I/O so that the poller, the state store, the alert engine, the API (and
later the dashboard and the agent interface) agree on them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

#: the states of a device as the server sees it
DeviceStateName = Literal["unknown", "online", "offline", "auth_failed", "error", "disabled"]
DEVICE_STATES: tuple[DeviceStateName, ...] = ("unknown", "online", "offline", "auth_failed", "error", "disabled")


@dataclass(frozen=True)
class Observation:
    """What one poll of one device found. Made by the poller, applied by the state store."""

    device: str
    ts: float
    #: online: answered; offline: unreachable (connection, timeout, TLS); auth_failed: login
    #: rejected (polling stops until credentials change); error: answered, but not usably
    state: DeviceStateName
    #: reading id -> value (the spec's Feedbacks and the health readings); empty unless online
    readings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: why the poll failed, one line, already redacted
    error: str | None = None
    #: how long the poll took
    poll_seconds: float | None = None


#: a reading the server derives itself rather than polls: the device's drifted configuration keys in
#: the newest drift check (``service.config``); rules, metrics and the device page see it as any other
DRIFT_READING = "config_drift"


@dataclass(frozen=True)
class DeviceView:
    """One device as the service shows it: its inventory facts and its current state."""

    name: str
    family: str
    site: str | None
    room: str | None
    tags: frozenset[str]
    address: str
    state: DeviceStateName
    since: float
    last_poll: float | None = None
    last_ok: float | None = None
    error: str | None = None
    readings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


# --- who asks ---------------------------------------------------------------------------------------

Role = Literal["admin", "operator", "helpdesk", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "operator", "helpdesk", "viewer")

#: what each role may do. read: see devices, state, history, jobs, alerts, audit, rules;
#: act: run non-disruptive actions and jobs; act_disruptive: run disruptive ones (reboot, reset...);
#: alerts: acknowledge and silence alerts; admin: users, tokens of others, rules, certificate pins
PERMISSIONS: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "helpdesk": frozenset({"read", "act", "alerts"}),
    "operator": frozenset({"read", "act", "act_disruptive", "alerts"}),
    "admin": frozenset({"read", "act", "act_disruptive", "alerts", "admin"}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated user of the server, by browser session or API token."""

    user_id: int
    user: str
    role: Role
    #: sites the user is limited to; empty: every site
    sites: frozenset[str] = frozenset()
    #: "session" | "token" | "local" (the server's own work, e.g. schedules) | "mcp" (the agent interface)
    via: str = "session"
    #: the program acting for the user, as it names itself (the agent interface's MCP client)
    client: str = ""

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    def sees_site(self, site: str | None) -> bool:
        """Whether a device of `site` is in scope (a device without a site: only for unscoped users)."""
        return not self.sites or (site is not None and site in self.sites)

    @property
    def audit_name(self) -> str:
        """How the audit log names this user: ``web:alice``, ``token:alice``, ``mcp:alice/claude-code``."""
        if self.via == "mcp":
            return f"mcp:{self.user}" + (f"/{self.client}" if self.client else "")
        return f"{'token' if self.via == 'token' else 'web' if self.via == 'session' else self.via}:{self.user}"
