"""`avctl trust`: show, pin, re-pin or forget a device's certificate."""

from __future__ import annotations

import asyncio

import click

from avctl.cli.common import handle_errors, tls_policy
from avctl.device import parse_address
from avctl.errors import UsageError
from avctl.transport.address import check_port
from avctl.transport.tls import certificate_oddities, endpoint_key, fetch_certificate, fingerprint


def _port(option: str, text: str) -> int:
    try:
        return check_port(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


@click.command("trust")
@click.argument("address")
@click.option("--replace", is_flag=True, help="Replace an existing pin (after a reset or re-key).")
@click.option("--remove", is_flag=True, help="Forget the pin.")
@click.option("--port", type=str, default="443", show_default=True, help="Port when ADDRESS has none.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), envvar="AVCTL_KNOWN_HOSTS")
@handle_errors
def trust_cmd(address: str, replace: bool, remove: bool, port: str, known_hosts: str | None) -> None:
    """Show, pin or re-pin the certificate of the device at ADDRESS[:PORT].

    Pins are kept per name as typed: `localhost:8443` and `127.0.0.1:8443` are two entries.
    """
    tls = tls_policy(known_hosts, None, False)
    host, p = parse_address(address)
    endpoint = endpoint_key(host, p or _port("--port", port))
    if remove:
        found = tls.known_hosts.remove(endpoint)
        click.echo(f"{endpoint}: pin {'removed' if found else 'was not present'}")
        return
    der = asyncio.run(fetch_certificate(host, p or _port("--port", port)))
    fp = fingerprint(der)
    odd = "; ".join(certificate_oddities(der, host))
    if odd:
        click.echo(f"avctl: warning: the certificate of {endpoint} is odd: {odd}", err=True)
    old = tls.known_hosts.get(endpoint)
    if old == fp:
        note = tls.known_hosts.note(endpoint)
        click.echo(f"{endpoint}: already pinned {fp}" + (f" ({note})" if note else ""))
    elif old and not replace:
        raise UsageError(
            f"{endpoint}: pinned {old} but the device presents {fp}",
            hint="add --replace to accept the new certificate",
        )
    else:
        tls.known_hosts.set(endpoint, fp, replace=True, note=odd)
        click.echo(f"{endpoint}: pinned {fp}" + (f" (was {old})" if old else ""))
