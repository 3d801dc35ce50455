"""The `avctl` command line. Family-agnostic: everything it knows about a device comes from its spec."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from avctl import __version__
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
from avctl.cli.durations import REQUEST_SECONDS
from avctl.cli.sizes import BYTES
from avctl.device import Device, parse_address
from avctl.emulator.core import Faults, check_listen_address
from avctl.errors import UsageError
from avctl.families import builtin_spec, family_names
from avctl.redact import install_log_redaction, shown
from avctl.retry import RetryPolicy
from avctl.spec import read_spec
from avctl.transport.address import check_port
from avctl.transport.tls import certificate_oddities, endpoint_key, fetch_certificate, fingerprint


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="avctl")
def cli(debug: bool) -> None:
    """Control and manage meeting-room devices (Poly VideoOS, Poly UC, Mersive Solstice) over REST."""


# --- actions --------------------------------------------------------------------------------


@cli.command("actions")
@click.argument("family", required=False)
@click.option("--search", "-s", help="Only actions whose id, label or path contains TEXT.", metavar="TEXT")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def actions_cmd(family: str | None, search: str | None, as_json: bool) -> None:
    """List the actions of one family (or all) with their parameters."""
    families = [family] if family else family_names()
    rows = []
    for fam in families:
        spec = builtin_spec(fam)
        for action in spec.actions.values():
            text = f"{action.id} {action.label} {action.path}".lower()
            if search and search.lower() not in text:
                continue
            rows.append((fam, action))
    if as_json:
        emit_json(
            [
                {
                    "family": fam,
                    "id": a.id,
                    "label": a.label,
                    "kind": a.kind,
                    "method": a.method,
                    "path": a.path,
                    "disruptive": a.disruptive,
                    "params": [
                        {
                            "name": p.name,
                            "type": p.type_label(),
                            "in": p.location,
                            "required": p.required,
                            "description": p.description,
                        }
                        for p in a.settable_params
                    ],
                }
                for fam, a in rows
            ]
        )
        return
    table = Table(box=None, pad_edge=False)
    for col in ("family", "action", "kind", "method path", "parameters"):
        table.add_column(col, overflow="fold")
    for fam, a in rows:
        kind = a.kind + (" !" if a.disruptive else "")
        table.add_row(fam, f"{a.id}\n[dim]{a.label}[/dim]", kind, f"{a.method} {a.path}", a.signature())
    Console(width=max(Console().width, 120)).print(table)
    click.echo(f"{len(rows)} action(s); '!' marks disruptive actions (they ask for confirmation)", err=True)


@cli.command("describe")
@click.argument("family")
@click.argument("action")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def describe_cmd(family: str, action: str, as_json: bool) -> None:
    """Show one action in full: what it does, its parameters and an example call."""
    act = builtin_spec(family).action(action)
    params = [{"name": p.name, "wire": p.wire_name, "in": p.location, "type": p.type_label(),
               "required": p.required, "default": p.default if p.has_default else None,
               "description": p.description} for p in act.settable_params]
    if as_json:
        emit_json({"family": family, "id": act.id, "label": act.label, "description": act.description,
                   "kind": act.kind, "method": act.method, "path": act.path, "disruptive": act.disruptive,
                   "safety_note": act.safety_note, "response": act.response, "params": params})
        return
    click.echo(f"{act.id}: {act.label}")
    if act.description:
        click.echo(f"  {act.description}")
    click.echo(f"  {act.method} {act.path}  ({act.kind}; response: {act.response})")
    if act.disruptive:
        click.echo(f"  disruptive: asks for confirmation{': ' + act.safety_note if act.safety_note else ''}")
    for p in params:
        flags = "required" if p["required"] else "optional"
        if p["default"] is not None:
            flags += f", default {p['default']!r}"
        click.echo(f"  {p['name']:<18} {p['type']:<28} {p['in']:<5} {flags}"
                   + (f"  {p['description']}" if p["description"] else ""))
    example = " ".join(f"{p.name}=..." for p in act.settable_params if p.required)
    click.echo(f"example: avctl call -f {family} HOST {act.id} {example}".rstrip())


# --- call -----------------------------------------------------------------------------------


@cli.command("call", context_settings={"ignore_unknown_options": False})
@click.argument("host")
@click.argument("action")
@click.argument("params", nargs=-1)
@click.option("--family", "-f", required=True, help="Device family, e.g. videoos ('avctl actions' lists them).")
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
        emit_json(result.to_dict())
        return
    # everything below comes from the device: secrets masked, control characters neutralised
    if result.info:
        for key, value in result.info.items():
            click.echo(f"{shown(key)}: {shown(value)}", err=True)
    if result.file is not None:
        click.echo(f"saved {shown(result.file)}")
    elif result.data is not None:
        click.echo(shown(json.dumps(result.data, indent=2) if not isinstance(result.data, str) else result.data,
                         multiline=True))
    click.echo(f"{result.action}: HTTP {result.status} in {result.elapsed * 1000:.0f} ms", err=True)


def _port(option: str, text: str) -> int:
    try:
        return check_port(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _open_audit() -> Any:
    """The audit log, checked writable (StoreError otherwise: nothing has been sent yet)."""
    from avctl.fleet.audit import AuditLog

    audit = AuditLog()
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


# --- trust ----------------------------------------------------------------------------------


@cli.command("trust")
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


# --- spec -----------------------------------------------------------------------------------


@cli.group("spec")
def spec_group() -> None:
    """Work with device spec files."""


@spec_group.command("lint")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="Only the summary line and errors.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def lint_cmd(files: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Check spec FILES; report every problem with file:line; exit 1 if any has errors."""
    paths: list[Path] = []
    for f in files:
        p = Path(f)
        paths.extend(sorted(p.rglob("*.md")) if p.is_dir() else [p])
    report = []
    errors = warnings = 0
    for path in paths:
        result = read_spec(path)
        errors += len(result.errors)
        warnings += len(result.warnings)
        report.append(
            {
                "file": str(path),
                "actions": len(result.spec.actions) if result.spec else 0,
                "issues": [
                    {"severity": i.severity, "line": i.line, "message": i.message} for i in result.issues
                ],
            }
        )
        if not as_json:
            for issue in result.issues:
                if not quiet or issue.severity == "error":
                    click.echo(str(issue))
    summary = {"files": len(paths), "errors": errors, "warnings": warnings}
    if as_json:
        emit_json({"summary": summary, "files": report})
    else:
        click.echo(f"{len(paths)} file(s): {errors} error(s), {warnings} warning(s)")
    if errors:
        sys.exit(1)


# --- emulate --------------------------------------------------------------------------------


class _FamilyCommands(click.Group):
    """One subcommand per registered family, made when asked for (no registry read for --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *family_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in family_names():
            command = _emulate_command(cmd_name)
        return command


@cli.group("emulate", cls=_FamilyCommands)
def emulate_group() -> None:
    """Run emulated devices on loopback (for demos, tests and your own control code)."""


def _emulate_command(family: str) -> click.Command:
    @click.command(family, help=f"Serve N emulated {family} devices until Ctrl-C.")
    @click.option("--count", "-n", type=int, default=1, show_default=True)
    @click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help="Loopback address to listen on (see --distinct-addresses).",
    )
    @click.option("--allow-remote", is_flag=True,
                  help="Allow a --host beyond loopback (the network can reach the devices; passwords are printed).")
    @click.option(
        "--port", type=int, default=0, help="First port (consecutive ports follow) [default: any free]."
    )
    @click.option(
        "--distinct-addresses",
        is_flag=True,
        help="Give each device its own loopback address from --host upward, on --port "
        "(the family's real port if not given).",
    )
    @click.option("--password", default=None, help="Admin password of every device [default: generated].")
    @click.option("--latency", type=float, default=0.0, help="Milliseconds added to every answer.")
    @click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of answers that are HTTP 500.")
    @click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0,
                  help="Share of requests whose connection is dropped unanswered.")
    @click.option("--session-ttl", type=float, help="Expire sessions/tokens after this many seconds.")
    @click.option("--reboot-seconds", type=float, default=2.0, show_default=True,
                  help="How long a reboot keeps a device unreachable.")
    @click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                  help="Family-specific emulator setting, e.g. --set firmware=4.5.0 (VideoOS).")
    @click.option("--json", "as_json", is_flag=True, help="Print the devices as JSON.")
    @handle_errors
    def command(count: int, host: str, allow_remote: bool, port: int, distinct_addresses: bool,
                password: str | None, latency: float, error_rate: float, drop_rate: float,
                session_ttl: float | None, reboot_seconds: float, settings: tuple[str, ...],
                as_json: bool) -> None:
        warning = check_listen_address(host, allow_remote)
        if warning:
            click.echo(f"avctl: {warning}", err=True)
        faults = Faults(latency=latency / 1000, error_rate=error_rate, drop_rate=drop_rate,
                        reboot_seconds=reboot_seconds, session_ttl=session_ttl)
        bad = [s for s in settings if "=" not in s]
        if bad:
            raise UsageError(f"--set {bad[0]!r}: expected KEY=VALUE")
        # values typed the YAML way: 5 -> int, true -> bool, anything else stays text
        extra: dict[str, Any] = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in settings)}
        asyncio.run(_serve(family, count, host, port, distinct_addresses, password, faults, extra, as_json))

    return command


async def _serve(family: str, count: int, host: str, port: int, distinct: bool, password: str | None,
                 faults: Faults, settings: dict[str, Any], as_json: bool) -> None:
    import ipaddress
    import secrets

    from avctl.emulator.core import EmulatorServer, emulator_class

    cls = emulator_class(family)
    spec = builtin_spec(family)
    if distinct and not port:
        port = spec.transport.port_for(spec.transport.default_scheme)
    server = EmulatorServer()
    await server.start()
    infos = []
    for i in range(count):
        addr = str(ipaddress.ip_address(host) + i) if distinct else host
        dev_port = port if distinct else (port + i if port else 0)
        try:
            dev = cls(f"{family}-{i + 1}", addr, dev_port, password=password or secrets.token_urlsafe(9),
                      **settings)
        except (TypeError, ValueError) as exc:  # an unknown setting, or a value of the wrong type
            raise UsageError(f"--set: {exc}", hint="see the family's emulator settings in docs") from None
        dev.faults = dataclasses.replace(faults)
        await server.add(dev)
        infos.append(dev.info())
    if as_json:
        emit_json(infos)
    else:
        for info in infos:
            click.echo(
                f"{info['name']:<14} {info['family']:<9} {info['scheme']}://{info['address']:<22} "
                f"user={info['user']} password={info['password']}"
                + "".join(f" {k}={v}" for k, v in info.items()
                          if k not in ("name", "family", "scheme", "address", "user", "password") and v != "")
            )
        click.echo(f"{count} emulated {family} device(s) running; Ctrl-C to stop", err=True)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def _register_plugins() -> None:
    """Command groups that live in other packages (the fleet) plug in here."""
    with contextlib.suppress(ModuleNotFoundError):
        fleet = importlib.import_module("avctl.cli.fleet")
        fleet.register(cli)


_register_plugins()


def main() -> None:
    cli(prog_name="avctl")


if __name__ == "__main__":
    main()
