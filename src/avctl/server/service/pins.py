"""A device's pinned certificates as the service shows them, and re-pinning one (admins only).

The pins are the server's own (`ServerContext.device_tls`, the known-devices file in
``$AVCTL_HOME``), the ones its polls and jobs check. Re-pinning takes the certificate the device
presents now (a TLS handshake; nothing is sent), replaces the pin of each of the device's HTTPS
endpoints, and records who did it, why, and the old and new fingerprints in the audit log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.devices import find_device
from avctl.server.service.errors import check
from avctl.server.service.preview import device_spec
from avctl.transport.tls import certificate_oddities, endpoint_key, fetch_certificate, fingerprint

#: the audit log's action for a re-pin
REPIN_ACTION = "trust.repin"
#: a reason is required, and kept to one short line
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Pin:
    endpoint: str
    #: None: not pinned yet (pinned on the first poll)
    fingerprint: str | None
    note: str = ""


@dataclass(frozen=True)
class Repinned:
    endpoint: str
    old: str | None
    new: str
    #: the new certificate's expiry, None if it cannot be parsed
    expires: dt.datetime | None
    #: what is odd about it (expired, issued for another name), "" for nothing
    odd: str


def https_endpoints(ctx: ServerContext, entry: DeviceEntry) -> list[tuple[str, int]]:
    """(host, port) of each HTTPS endpoint the device's actions use: its address, and the ports the
    inventory gives for actions on HTTPS (Solstice's v1 API)."""
    transport = device_spec(ctx, entry).transport
    scheme = entry.scheme or transport.default_scheme
    found: list[tuple[str, int]] = []
    if entry.schemes.get(scheme, scheme) == "https":
        found.append((entry.host, entry.port or transport.port_for(scheme)))
    for other, port in sorted(entry.ports.items()):
        if entry.schemes.get(other, other) == "https" and (entry.host, port) not in found:
            found.append((entry.host, port))
    return found


def pins(ctx: ServerContext, principal: Principal, name: str) -> list[Pin]:
    check(principal, "read")
    entry = find_device(ctx, principal, name)
    known = ctx.device_tls.known_hosts
    return [Pin(endpoint_key(h, p), known.get(endpoint_key(h, p)), known.note(endpoint_key(h, p)))
            for h, p in https_endpoints(ctx, entry)]


def _expiry(der: bytes) -> dt.datetime | None:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


def _check_audit_writable(ctx: ServerContext) -> None:
    audit = ctx.audit()
    try:
        audit.check_writable()
    finally:
        audit.close()


def _record(ctx: ServerContext, principal: Principal, entry: DeviceEntry, done: list[Repinned], reason: str) -> None:
    audit = ctx.audit()
    try:
        for r in done:
            audit.record(device=entry.name, address=str(entry.address), family=entry.family, action=REPIN_ACTION,
                         params={"endpoint": r.endpoint, "reason": reason, "old": r.old, "new": r.new},
                         user=principal.audit_name, ts=ctx.clock())
    finally:
        audit.close()


async def repin(ctx: ServerContext, principal: Principal, name: str, reason: str) -> list[Repinned]:
    """Pin the certificates device `name` presents now, in place of its pins (admin only)."""
    check(principal, "admin")
    entry = find_device(ctx, principal, name)
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("a re-pin needs a reason", hint="say why the certificate changed (a reset, a new certificate)")
    reason = reason[:MAX_REASON_CHARS]
    await asyncio.to_thread(_check_audit_writable, ctx)  # what cannot be recorded is not done
    fetched = [(h, p, await fetch_certificate(h, p)) for h, p in https_endpoints(ctx, entry)]
    done: list[Repinned] = []
    for host, port, der in fetched:
        fp = fingerprint(der)
        odd = "; ".join(certificate_oddities(der, host))
        old = await asyncio.to_thread(ctx.device_tls.replace_pin, host, port, fp,
                                      note=f"re-pinned by {principal.audit_name}" + (f": {odd}" if odd else ""))
        done.append(Repinned(endpoint_key(host, port), old, fp, _expiry(der), odd))
    ctx.executor.forget_pins([(host, port) for host, port, _der in fetched])
    await asyncio.to_thread(_record, ctx, principal, entry, done, reason)
    return done
