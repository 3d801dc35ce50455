"""`avctl trust`: show, pin, re-pin, list or forget devices' certificates.

``avctl trust HOST[:PORT]`` (the ``pin`` subcommand, named or not) talks to the device; ``list``
and ``remove`` only read and rewrite the pins file.
"""

from __future__ import annotations

import asyncio
import difflib

import click

from avctl.cli.common import emit_json, handle_errors, tls_policy
from avctl.device import parse_address
from avctl.errors import UsageError
from avctl.redact import shown
from avctl.transport.address import check_port
from avctl.transport.tls import certificate_oddities, endpoint_key, fetch_certificate, fingerprint


def _port(option: str, text: str) -> int:
    try:
        return check_port(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _endpoint(address: str, port: str) -> tuple[str, int, str]:
    """(host, port, pin key) of ADDRESS[:PORT], the port from --port when ADDRESS has none."""
    host, p = parse_address(address)
    p = p or _port("--port", port)
    return host, p, endpoint_key(host, p)


def known_hosts_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--known-hosts", type=click.Path(dir_okay=False), envvar="AVCTL_KNOWN_HOSTS",
                        help="The pins file [default: $AVCTL_HOME/known_devices].")(fn)


def port_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--port", type=str, default="443", show_default=True,
                        help="Port when ADDRESS has none.")(fn)


class TrustGroup(click.Group):
    """`avctl trust ADDRESS` stays the short form of `avctl trust pin ADDRESS`; a word close to a
    subcommand (`avctl trust lst`) is a typo, not a host to connect to (`avctl trust pin lst` is)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            word = args[0]
            if not any(c in word for c in ".:[") and difflib.get_close_matches(word, list(self.commands), cutoff=0.7):
                raise click.exceptions.NoSuchCommand(word, possibilities=list(self.commands), ctx=ctx)
            args = ["pin", *args]
        return super().parse_args(ctx, args)


@click.group("trust", cls=TrustGroup)
def trust_cmd() -> None:
    """Show, pin or re-pin the certificate of the device at ADDRESS[:PORT].

    \b
    avctl trust 10.0.0.5            pin (or show) the certificate it presents
    avctl trust 10.0.0.5 --replace  accept a new certificate (after a reset or re-key)
    avctl trust list                every pin
    avctl trust remove 10.0.0.5     forget a pin

    Pins are kept per name as typed: `localhost:8443` and `127.0.0.1:8443` are two entries.
    """


@trust_cmd.command("pin")
@click.argument("address")
@click.option("--replace", is_flag=True, help="Replace an existing pin (after a reset or re-key).")
@click.option("--remove", is_flag=True, help="Forget the pin (the same as 'avctl trust remove').")
@port_option
@known_hosts_option
@handle_errors
def trust_pin(address: str, replace: bool, remove: bool, port: str, known_hosts: str | None) -> None:
    """Show or pin the certificate the device at ADDRESS[:PORT] presents (the default subcommand)."""
    if remove:
        _remove(address, port, known_hosts)
        return
    tls = tls_policy(known_hosts, None, False)
    host, p, endpoint = _endpoint(address, port)
    der = asyncio.run(fetch_certificate(host, p))
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


@trust_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the pins as JSON.")
@known_hosts_option
@handle_errors
def trust_list(as_json: bool, known_hosts: str | None) -> None:
    """Every pinned certificate: HOST:PORT, fingerprint, and what was odd about it when pinned."""
    kh = tls_policy(known_hosts, None, False).known_hosts
    pins = kh.pins()
    if as_json:
        emit_json([{"endpoint": k, "fingerprint": pin.fingerprint, "note": pin.note} for k, pin in pins.items()])
        return
    if not pins:
        click.echo(f"no pinned certificates in {kh.path}", err=True)
        return
    for endpoint, pin in pins.items():
        # the note may quote names from a device's certificate
        click.echo(f"{endpoint}  {pin.fingerprint}" + (f"  # {shown(pin.note)}" if pin.note else ""))


@trust_cmd.command("remove")
@click.argument("address")
@port_option
@known_hosts_option
@handle_errors
def trust_remove(address: str, port: str, known_hosts: str | None) -> None:
    """Forget the pin of ADDRESS[:PORT] (the next connection pins what the device presents)."""
    _remove(address, port, known_hosts)


def _remove(address: str, port: str, known_hosts: str | None) -> None:
    kh = tls_policy(known_hosts, None, False).known_hosts
    endpoint = _endpoint(address, port)[2]
    if not kh.remove(endpoint):
        raise UsageError(f"{endpoint}: no pin to remove in {kh.path}", hint="'avctl trust list' shows the pins")
    click.echo(f"{endpoint}: pin removed")
