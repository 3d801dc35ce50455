"""`avctl call`: one action on one device, audited when it changes something."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import click

from avctl.cli.common import (
    confirm_disruptive,
    credential_options,
    emit_json,
    endpoint_maps,
    endpoint_options,
    handle_errors,
    parse_assignments,
    read_credentials,
    tls_options,
    tls_policy,
    warn_unused_ports,
)
from avctl.cli.completion import complete_action, complete_family
from avctl.cli.durations import REQUEST_SECONDS
from avctl.cli.sizes import BYTES
from avctl.device import Device
from avctl.families import builtin_spec
from avctl.redact import install_log_redaction, redact, shown
from avctl.retry import RetryPolicy


@click.command("call", context_settings={"ignore_unknown_options": False})
@click.argument("host")
@click.argument("action", shell_complete=complete_action)
@click.argument("params", nargs=-1)
@click.option("--family", "-f", required=True, shell_complete=complete_family,
              help="Device family, e.g. videoos ('avctl actions' lists them).")
@credential_options
@tls_options
@click.option("--scheme", type=click.Choice(["https", "http"]), help="Override the spec's scheme.")
@endpoint_options
@click.option("--timeout", type=REQUEST_SECONDS, default=15.0, show_default=True, help="Seconds per request.")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Retries for transient failures; a state-changing action is repeated only when it "
                   "surely did not reach the device.")
@click.option("--output", "-o", type=click.Path(), help="Where downloads go (file or folder) [default: .].")
@click.option("--overwrite", is_flag=True, help="Let a download replace an existing file.")
@click.option("--max-response", type=BYTES, metavar="BYTES",
              help="Refuse answers larger than this (decompressed) [default: the spec's, e.g. 16M].")
@click.option("--max-download", type=BYTES, metavar="BYTES",
              help="Refuse downloads larger than this [default: the spec's, e.g. 2G].")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before disruptive actions.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@handle_errors
def call_cmd(
    host: str,
    action: str,
    params: tuple[str, ...],
    family: str,
    user: str | None,
    password_env: str | None,
    password_file: str | None,
    known_hosts: str | None,
    ca_bundle: str | None,
    insecure: bool,
    scheme: str | None,
    port_map: tuple[str, ...],
    scheme_map: tuple[str, ...],
    allow_cleartext: bool,
    timeout: float,
    retries: int,
    output: str | None,
    overwrite: bool,
    max_response: int | None,
    max_download: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Run ACTION on the device at HOST[:PORT] with key=value PARAMS.

    \b
    Example: avctl call -f videoos 10.0.0.5 audio_volume_set volume=40
    """
    spec = builtin_spec(family)
    act = spec.action(action)
    values = parse_assignments(act, params)
    tls = tls_policy(known_hosts, ca_bundle, insecure)
    ports, schemes = endpoint_maps(port_map, scheme_map)
    warn_unused_ports([spec], ports, schemes)
    creds = read_credentials(user, password_env, password_file, needed=spec.transport.auth_type != "none")
    install_log_redaction()
    # a state-changing call is audited: refuse before changing anything if the row cannot be written
    audit = _open_audit() if act.kind == "action" else None

    async def run() -> Any:
        async with Device(spec, host, credentials=creds, tls=tls, timeout=timeout, scheme=scheme,
                          ports=ports, schemes=schemes, allow_cleartext=allow_cleartext,
                          max_response_bytes=max_response, max_download_bytes=max_download,
                          retry=RetryPolicy.from_retries(retries)) as dev:
            dev.prepare(action, values)  # validate before asking for confirmation
            if act.disruptive:
                note = f" ({act.safety_note})" if act.safety_note else ""
                confirm_disruptive(f"{act.id} on {dev.name}{note}", yes)
            try:
                result = await dev.call(action, download_to=output, overwrite=overwrite, **values)
            except Exception as exc:
                _audit(audit, dev.name, family, act.id, act.public_values(values), exc)
                raise
            _audit(audit, dev.name, family, act.id, act.public_values(values), None)
            return result

    try:
        result = asyncio.run(run())
    finally:
        if audit is not None:
            audit.close()
    if as_json:
        emit_json(redact(result.to_dict()))  # fields named like secrets (a session list's ids) masked
        return
    # everything below comes from the device: secrets masked, control characters neutralised
    if result.info:
        for key, value in result.info.items():
            click.echo(f"{shown(key)}: {shown(value)}", err=True)
    if result.file is not None:
        click.echo(f"saved {shown(result.file)}")
    elif result.data is not None and result.data != "":
        click.echo(shown(json.dumps(redact(result.data), indent=2) if not isinstance(result.data, str)
                         else result.data, multiline=True))
    else:
        click.echo("ok")  # a change the device acknowledged without a body: say that it worked
    click.echo(f"{result.action}: HTTP {result.status} in {result.elapsed * 1000:.0f} ms", err=True)


def _open_audit() -> Any:
    """The audit log, checked writable (StoreError otherwise: nothing has been sent yet)."""
    from avctl.db.factory import open_audit

    audit = open_audit(os.environ.get("AVCTL_DB"))
    try:
        audit.check_writable()
    except BaseException:
        audit.close()
        raise
    return audit


def _audit(audit: Any, device: str, family: str, action: str, values: dict[str, Any],
           error: BaseException | None) -> None:
    """Every state-changing call goes to the audit log (queries do not change anything: audit None)."""
    if audit is None:
        return
    from avctl.errors import ConnectError
    from avctl.fleet.store import StoreError

    outcome = "ok" if error is None else ("unreachable" if isinstance(error, ConnectError) else "failed")
    try:
        audit.record(device=device, address=device, family=family, action=action, params=values,
                     outcome=outcome, error=error)
    except StoreError as exc:
        what = ("the change WAS MADE" if error is None
                else f"the call failed ({error}) but may have reached the device")
        raise StoreError(f"{action} on {device}: {what}, and it could NOT be recorded in the audit log: "
                         f"{exc.message}", hint=exc.hint) from None
