"""`avctl conformance -f FAMILY [HOST]`: the family's checks against the emulator and a device."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

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
from avctl.redact import install_log_redaction, shown

if TYPE_CHECKING:
    from avctl.conformance import Outcome, Report


@click.command("conformance")
@click.argument("host", required=False)
@click.option("--family", "-f", required=True, help="Device family, e.g. videoos ('avctl actions' lists them).")
@click.option("--profile", "profile_name", metavar="FILE|NAME",
              help="Compare the emulator with this profile (a file from 'avctl capture' or a shipped one) "
                   "instead of a device.")
@credential_options
@tls_options
@click.option("--scheme", type=click.Choice(["https", "http"]), help="Override the spec's scheme.")
@endpoint_options
@click.option("--timeout", type=REQUEST_SECONDS, default=15.0, show_default=True, help="Seconds per request.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON (to attach to a report).")
@handle_errors
def conformance_cmd(host: str | None, family: str, profile_name: str | None, user: str | None,
                    password_env: str | None, password_file: str | None, known_hosts: str | None,
                    ca_bundle: str | None, insecure: bool, scheme: str | None, port_map: tuple[str, ...],
                    scheme_map: tuple[str, ...], allow_cleartext: bool, timeout: float, as_json: bool) -> None:
    """Run the family's conformance checks against the emulator and, given HOST[:PORT], against
    that device too, and show where the two differ.

    The device is only read (the reads 'avctl capture' sends, one login) and probed with requests
    that carry no credentials; nothing is changed. Exit status 0 when the emulator answers as the
    device does (or, without a device, passes every check), 1 otherwise.

    \b
    Examples:
      avctl conformance -f polyuc 10.0.0.7 --password-env PHONE_PW
      avctl conformance -f polyuc --profile trio-8800
    """
    from avctl.conformance import run_conformance
    from avctl.device import Device
    from avctl.profile import load_profile

    if host and profile_name:
        raise UsageError("give a HOST or --profile, not both", hint="--profile stands in for a device")
    spec = builtin_spec(family)
    profile = load_profile(profile_name) if profile_name else None
    if profile is not None and profile.family != family:
        raise UsageError(f"--profile {profile_name}: a profile of a {profile.family} device, not {family}",
                         hint=f"avctl conformance -f {profile.family} --profile {profile_name}")
    device = None
    if host:
        tls = tls_policy(known_hosts, ca_bundle, insecure)
        ports, schemes = endpoint_maps(port_map, scheme_map)
        creds = read_credentials(user, password_env, password_file, needed=spec.transport.auth_type != "none")
        install_log_redaction()
        device = Device(spec, host, credentials=creds, tls=tls, timeout=timeout, scheme=scheme, ports=ports,
                        schemes=schemes, allow_cleartext=allow_cleartext)

    def progress(text: str) -> None:
        if not as_json:
            click.echo(text, err=True)

    async def run() -> Report:
        try:
            return await run_conformance(family, device, profile=profile, profile_name=profile_name or "",
                                         progress=progress)
        finally:
            if device is not None:
                await device.close()

    report = asyncio.run(run())
    if as_json:
        emit_json(report.to_json())
    else:
        _print(report)
    raise SystemExit(0 if report.clean else 1)


def _print(report: Report) -> None:
    what = shown(report.model) or report.family
    if report.firmware:
        what += f", firmware {shown(report.firmware)}"
    if report.device is None:
        click.echo(f"conformance of the {report.family} emulator ({what})")
    else:
        click.echo(f"conformance of the {report.family} emulator against {shown(report.device)} ({what})")
    width = max(len(c.check.id) for c in report.checks)
    for result in report.checks:
        line = f"  {result.check.id:<{width}}  emulator {_word(result.emulator)}"
        if result.device is not None:
            line += f"  device {_word(result.device)}" + ("  <- differs" if result.differs else "")
        click.echo(line)
    if report.device is not None:
        click.echo(f"reads: {report.compared} compared, {len(report.shapes)} differences in form")
        for diff in report.shapes:
            click.echo(f"  {shown(diff.line())}")
    if report.clean:
        click.echo("the emulator answers as the device does" if report.device else "every check passed")
    elif report.device is not None:
        click.echo(f"the emulator differs from the device in {len(report.failed) + len(report.shapes)} places; "
                   "attach the output of the same command with --json to a report")
    else:
        click.echo(f"{len(report.failed)} checks failed on the emulator")


def _word(outcome: Outcome) -> str:
    return outcome.word + (f" ({shown(outcome.detail)})" if outcome.detail and outcome.ok is not True else "")
