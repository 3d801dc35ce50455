"""`avctl emulate FAMILY` (and `avctl emulate fleet`): emulated devices on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import inspect
import math
import shlex
import signal
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

import click

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
            known = self.list_commands(ctx)
            close = difflib.get_close_matches(cmd_name, known, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise click.UsageError(f"no family {cmd_name!r} to emulate; {guess}known: {', '.join(known)}", ctx)
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
                  help="Family-specific emulator setting, e.g. --set firmware=4.5.0 (see --list-settings).")
    @click.option("--list-settings", is_flag=True, help="List the settings --set takes (type, default) and exit.")
    @click.option("--profile", "profile_name", metavar="FILE|NAME",
                  help="Answer reads as the device of this profile did (a file from 'avctl capture', or a "
                       "shipped profile: " + ", ".join(shipped_profiles()) + ").")
    @click.option("--json", "as_json", is_flag=True, help="Print the devices as JSON.")
    @handle_errors
    def command(count: int, host: str, allow_remote: bool, port: int, distinct_addresses: bool,
                password: str | None, latency: float, error_rate: float, drop_rate: float,
                session_ttl: float | None, reboot_seconds: float, settings: tuple[str, ...],
                profile_name: str | None, as_json: bool, list_settings: bool) -> None:
        if list_settings:
            _print_settings(family, as_json)
            return
        warning = check_listen_address(host, allow_remote)
        if warning:
            click.echo(f"avctl: {warning}", err=True)
        faults = Faults(latency=latency / 1000, error_rate=error_rate, drop_rate=drop_rate,
                        reboot_seconds=reboot_seconds, session_ttl=session_ttl)
        extra = parse_settings(family, settings)
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
        except (TypeError, ValueError) as exc:  # a value parse_settings let through that the emulator refuses
            raise UsageError(f"--set: {exc}", hint=f"avctl emulate {family} --list-settings") from None
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
        first = infos[0]
        click.echo(f"try, in another terminal: AVCTL_PASSWORD={shlex.quote(str(first['password']))} avctl call -f "
                   f"{family} {first['address']} {example_read(family)}   (a fleet with an inventory to try "
                   "'avctl fleet status' on: avctl emulate fleet -o fleet.yaml)", err=True)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


#: constructor arguments that are not --set settings: the device's identity, its own options, objects
_NOT_SETTINGS = frozenset({"self", "name", "host", "port", "password", "spec"})


@dataclass(frozen=True)
class Setting:
    """One `--set` field of a family's emulator, read from its class's (and base classes') __init__."""

    name: str
    annotation: Any
    default: Any

    @property
    def type_label(self) -> str:
        return " | ".join(_label(t) for t in _alternatives(self.annotation))


def emulator_settings(family: str) -> dict[str, Setting]:
    """name -> Setting for every keyword the family's emulator takes, its own first, then its bases'."""
    from avctl.emulator.core import emulator_class

    out: dict[str, Setting] = {}
    for klass in emulator_class(family).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        hints = typing.get_type_hints(init)
        for pname, param in inspect.signature(init).parameters.items():
            if pname in _NOT_SETTINGS or pname in out or param.kind not in (
                    param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                continue
            out[pname] = Setting(pname, hints.get(pname, str), param.default)
    return out


def parse_settings(family: str, items: tuple[str, ...]) -> dict[str, Any]:
    """`--set KEY=VALUE` words -> keyword arguments of the family's emulator, each checked and typed."""
    known = emulator_settings(family) if items else {}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE", hint=f"avctl emulate {family} --list-settings")
        setting = known.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, list(known), n=1)
            raise UsageError(f"--set {key}: the {family} emulator has no setting {key!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; known: {', '.join(sorted(known))}",
                             hint=f"avctl emulate {family} --list-settings shows each with its type and default")
        try:
            out[key] = _coerce(setting.annotation, text)
        except ValueError:
            raise UsageError(f"--set {key}={text}: {key} takes a value of type {setting.type_label}, not {text!r}",
                             hint=f"e.g. --set {shlex.quote(f'{key}={_example(setting)}')}") from None
    return out


def _alternatives(annotation: Any) -> list[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return list(typing.get_args(annotation))
    return [annotation]


def _label(annotation: Any) -> str:
    if annotation is type(None):
        return "none"
    if typing.get_origin(annotation) is tuple:
        return "comma-separated list"
    return {bool: "true/false", int: "integer", float: "number", str: "text"}.get(annotation, str(annotation))


def _coerce(annotation: Any, text: str) -> Any:
    """`text` as the first of the annotation's types that takes it (ValueError if none does)."""
    word = text.strip()
    for kind in _alternatives(annotation):
        if kind is type(None) and word.lower() in ("", "none", "null"):
            return None
        if kind is bool and word.lower() in ("true", "false", "yes", "no", "on", "off"):
            return word.lower() in ("true", "yes", "on")
        if kind is int and word.lstrip("+-").isdigit():
            return int(word)
        if kind is float:
            with contextlib.suppress(ValueError):
                if math.isfinite(number := float(word)):
                    return number
        if typing.get_origin(kind) is tuple and word:
            return tuple(part.strip() for part in word.split(",") if part.strip())
        if kind is str:
            return text  # as typed: 4.10 stays "4.10", not the number 4.1
    raise ValueError(text)


def _example(setting: Setting) -> str:
    if setting.default not in (None, inspect.Parameter.empty):
        value = setting.default
        return ",".join(value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) \
            else str(value)
    return {bool: "true", int: "5", float: "1.5"}.get(_alternatives(setting.annotation)[0], "VALUE")


def _print_settings(family: str, as_json: bool) -> None:
    settings = emulator_settings(family)
    if as_json:
        emit_json([{"name": s.name, "type": s.type_label,
                    "default": None if s.default is inspect.Parameter.empty else s.default}
                   for s in settings.values()])
        return
    width = max(len(name) for name in settings)
    types_width = max(len(s.type_label) for s in settings.values())
    for s in settings.values():
        default = "(required)" if s.default is inspect.Parameter.empty else repr(s.default)
        click.echo(f"{s.name:<{width}}  {s.type_label:<{types_width}}  default {default}")
    first = next(iter(settings.values()))
    click.echo(f"set with --set KEY=VALUE, e.g. avctl emulate {family} --set "
               f"{shlex.quote(f'{first.name}={_example(first)}')}", err=True)


def _add_fleet_command() -> None:
    from avctl.cli.emulate_fleet import emulate_fleet_command

    emulate_group.add_command(emulate_fleet_command)


_add_fleet_command()


def example_read(family: str) -> str:
    """A read the family's spec has that needs no parameter, for the "try" line: the system's
    identity when the spec has such a read (``system_get``, ``device_info``, ``info_get``)."""
    from avctl.families import builtin_spec

    reads = [a.id for a in builtin_spec(family).actions.values()
             if a.kind == "query" and not any(p.required for p in a.settable_params)]
    identity = [r for r in ("system_get", "device_info", "info_get") if r in reads]
    return (identity or reads or ["ACTION"])[0]
