"""`avctl capture -f FAMILY HOST -o profile.json`: a redacted profile of a real device."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from avctl.cli.common import (
    credential_options,
    emit_json,
    endpoint_maps,
    endpoint_options,
    handle_errors,
    read_credentials,
    tls_options,
    tls_policy,
)
from avctl.cli.durations import REQUEST_SECONDS
from avctl.errors import UsageError
from avctl.families import builtin_spec
from avctl.profile import Profile, save_profile
from avctl.redact import install_log_redaction, shown

#: places shown per placeholder in the report (the file has them all)
SHOWN_PLACES = 3


@click.command("capture")
@click.argument("host")
@click.option("--family", "-f", required=True, help="Device family, e.g. polyuc ('avctl actions' lists them).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The profile file to write (JSON).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@credential_options
@tls_options
@click.option("--scheme", type=click.Choice(["https", "http"]), help="Override the spec's scheme.")
@endpoint_options
@click.option("--timeout", type=REQUEST_SECONDS, default=15.0, show_default=True, help="Seconds per request.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (reads, skipped, redacted) as JSON.")
@handle_errors
def capture_cmd(host: str, family: str, output: str, overwrite: bool, user: str | None,
                password_env: str | None, password_file: str | None, known_hosts: str | None,
                ca_bundle: str | None, insecure: bool, scheme: str | None, port_map: tuple[str, ...],
                scheme_map: tuple[str, ...], allow_cleartext: bool, timeout: float, as_json: bool) -> None:
    """Read everything the device at HOST[:PORT] answers without changing it, into a profile.

    Only reads are sent (the spec's queries; each once, one login). Serial numbers, MAC and IP
    addresses, host, room and user names, and every secret are replaced by placeholders before
    the file is written; the report says what was replaced and where. Serve the profile with
    'avctl emulate FAMILY --profile FILE'; compare it with 'avctl conformance'.

    \b
    Example: avctl capture -f polyuc 10.0.0.7 -o trio.json --password-env PHONE_PW
    """
    from avctl.capture import capture
    from avctl.device import Device

    target = Path(output)
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists", hint="add --overwrite to replace it, or choose another -o")
    spec = builtin_spec(family)
    tls = tls_policy(known_hosts, ca_bundle, insecure)
    ports, schemes = endpoint_maps(port_map, scheme_map)
    creds = read_credentials(user, password_env, password_file, needed=spec.transport.auth_type != "none")
    install_log_redaction()

    def progress(action: str, what: str) -> None:
        if not as_json:
            click.echo(f"  {action}: {what}", err=True)

    async def run() -> Profile:
        async with Device(spec, host, credentials=creds, tls=tls, timeout=timeout, scheme=scheme,
                          ports=ports, schemes=schemes, allow_cleartext=allow_cleartext) as dev:
            return await capture(dev, progress)

    profile = asyncio.run(run())
    save_profile(profile, target)
    summary = _summary(profile, target)
    if as_json:
        emit_json(summary)
        return
    _print_report(profile, target)


def _summary(profile: Profile, target: Path) -> dict[str, Any]:
    return {
        "file": str(target),
        "family": profile.family,
        "model": profile.model,
        "firmware": profile.firmware,
        "reads": len(profile.exchanges),
        "skipped": [{"action": s.action, "reason": s.reason} for s in profile.skipped],
        "redacted": [{"kind": r.kind, "placeholder": r.placeholder, "where": list(r.where)}
                     for r in profile.redactions],
    }


def _print_report(profile: Profile, target: Path) -> None:
    click.echo(f"{shown(target)}: {len(profile.exchanges)} reads of a {shown(profile.family)} "
               f"{shown(profile.model) or 'device'} (firmware {shown(profile.firmware) or 'unknown'})")
    if profile.redactions:
        click.echo(f"redacted {len(profile.redactions)} values (the originals are in no file):")
        for item in profile.redactions:
            places = ", ".join(shown(w) for w in item.where[:SHOWN_PLACES])
            more = f" and {len(item.where) - SHOWN_PLACES} more" if len(item.where) > SHOWN_PLACES else ""
            click.echo(f"  {item.kind:<8} -> {shown(item.placeholder)}  at {places}{more}")
    else:
        click.echo("redacted nothing: no serials, addresses, names or secrets were found")
    if profile.skipped:
        click.echo(f"not read: {len(profile.skipped)} queries (listed under 'skipped' in the file)")
    click.echo("check the file before you share it: avctl replaces what it recognises, and a device may "
               "put a name where avctl does not expect one")
