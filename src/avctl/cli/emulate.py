"""`avctl emulate FAMILY` (and `avctl emulate fleet`): emulated devices on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from typing import Any

import click
import yaml

from avctl.cli.common import emit_json, handle_errors
from avctl.emulator.core import Faults, check_listen_address
from avctl.errors import UsageError
from avctl.families import builtin_spec, family_names
from avctl.profile import Profile, load_profile, shipped_profiles


class _FamilyCommands(click.Group):
    """One subcommand per registered family, made when asked for (no registry read for --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *family_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in family_names():
            command = _emulate_command(cmd_name)
        if command is None and not ctx.resilient_parsing:
            raise click.UsageError(f"no family {cmd_name!r} to emulate; known: "
                                   f"{', '.join(self.list_commands(ctx))}", ctx)
        return command


@click.group("emulate", cls=_FamilyCommands)
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
    @click.option("--profile", "profile_name", metavar="FILE|NAME",
                  help="Answer reads as the device of this profile did (a file from 'avctl capture', or a "
                       "shipped profile: " + ", ".join(shipped_profiles()) + ").")
    @click.option("--json", "as_json", is_flag=True, help="Print the devices as JSON.")
    @handle_errors
    def command(count: int, host: str, allow_remote: bool, port: int, distinct_addresses: bool,
                password: str | None, latency: float, error_rate: float, drop_rate: float,
                session_ttl: float | None, reboot_seconds: float, settings: tuple[str, ...],
                profile_name: str | None, as_json: bool) -> None:
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
        profile = load_profile(profile_name) if profile_name else None
        if profile is not None and profile.family != family:
            raise UsageError(f"--profile {profile_name}: a profile of a {profile.family} device, not {family}",
                             hint=f"avctl emulate {profile.family} --profile {profile_name}")
        asyncio.run(_serve(family, count, host, port, distinct_addresses, password, faults, extra, as_json,
                           profile))

    return command


async def _serve(family: str, count: int, host: str, port: int, distinct: bool, password: str | None,
                 faults: Faults, settings: dict[str, Any], as_json: bool, profile: Profile | None = None) -> None:
    import ipaddress
    import secrets

    from avctl.emulator.core import EmulatorServer, emulator_class
    from avctl.emulator.profiled import attach, profile_settings

    if profile is not None:
        settings = profile_settings(profile, settings)

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
        if profile is not None:
            attach(dev, profile)
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


def _add_fleet_command() -> None:
    from avctl.cli.emulate_fleet import emulate_fleet_command

    emulate_group.add_command(emulate_fleet_command)


_add_fleet_command()
