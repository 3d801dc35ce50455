"""Pieces every command shares: credential sources, TLS options, key=value parsing, output, errors."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from avctl.auth import Credentials
from avctl.errors import AvctlError, ConfirmationRequired, UsageError
from avctl.fleet.credentials import read_secret_file
from avctl.redact import REDACTOR, SENSITIVE_KEY_RE, shown
from avctl.spec import Action, Spec, coerce_text
from avctl.transport.address import check_port
from avctl.transport.tls import KnownHosts, TLSPolicy

F = TypeVar("F", bound=Callable[..., Any])


def tls_options(fn: F) -> F:
    """--known-hosts / --ca-bundle / --insecure: pinning is the default, insecure only by name."""
    fn = click.option(
        "--insecure",
        is_flag=True,
        help="Skip certificate checks entirely (not recommended; pinning is the default).",
    )(fn)
    fn = click.option(
        "--ca-bundle",
        type=click.Path(dir_okay=False),
        help="Verify certificates against this CA bundle (PEM) instead of pinning.",
    )(fn)
    fn = click.option(
        "--known-hosts",
        type=click.Path(dir_okay=False),
        envvar="AVCTL_KNOWN_HOSTS",
        help="Pinned certificate fingerprints file [default: $AVCTL_HOME/known_devices].",
    )(fn)
    return fn


def tls_policy(known_hosts: str | None, ca_bundle: str | None, insecure: bool) -> TLSPolicy:
    if insecure and ca_bundle:
        raise UsageError("--insecure and --ca-bundle contradict each other", hint="choose one")
    if insecure:
        return TLSPolicy.insecure()
    if ca_bundle:
        return TLSPolicy.ca_bundle(ca_bundle)
    return TLSPolicy.pinned(KnownHosts(Path(known_hosts)) if known_hosts else None)


def endpoint_options(fn: F) -> F:
    """--port SCHEME=PORT, --scheme-map FROM=TO, --allow-cleartext (avctl call and fleet commands)."""
    fn = click.option(
        "--allow-cleartext",
        is_flag=True,
        help="Allow passwords, tokens and cookies over plain HTTP (refused by default).",
    )(fn)
    fn = click.option(
        "--scheme-map", multiple=True, metavar="FROM=TO",
        help="Send actions the spec puts on FROM over TO instead (e.g. https=http for Solstice v1 on port 80).",
    )(fn)
    fn = click.option(
        "--port", "port_map", multiple=True, metavar="SCHEME=PORT",
        help="Port for actions the spec sends over SCHEME (e.g. https=8443 for Solstice v1).",
    )(fn)
    return fn


def endpoint_maps(port_map: tuple[str, ...], scheme_map: tuple[str, ...]) -> tuple[dict[str, int], dict[str, str]]:
    """`--port` and `--scheme-map` words -> (ports, schemes), checked."""
    ports: dict[str, int] = {}
    for key, text in _pairs("--port", port_map, digits=True).items():
        try:
            ports[key] = check_port(text)
        except ValueError as exc:
            raise UsageError(f"--port {key}={text}: {exc}") from None
    schemes = _pairs("--scheme-map", scheme_map)
    for word in (*ports, *schemes, *schemes.values()):
        if word not in ("http", "https"):
            raise UsageError(f"{word!r} is not a scheme", hint="--port and --scheme-map take http or https")
    return ports, schemes


def warn_unused_ports(specs: Iterable[Spec], ports: Mapping[str, int], schemes: Mapping[str, str]) -> None:
    """Say so when `--port SCHEME=N` moves nothing (`http=N` did, before Solstice v1 moved to HTTPS)."""
    used = {schemes.get(a.scheme, a.scheme) for spec in specs for a in spec.actions.values() if a.scheme}
    for scheme, port in ports.items():
        if scheme not in used:
            click.echo(f"avctl: warning: --port {scheme}={port} is not used: no action goes over {scheme}",
                       err=True)
            click.echo("avctl: hint: Solstice v1 goes over https now: --port https=N; for plain HTTP add "
                       "--scheme-map https=http (and --allow-cleartext if a password is sent)", err=True)


def _pairs(option: str, items: tuple[str, ...], *, digits: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value or (digits and not value.isdigit()):
            raise UsageError(f"{option} {item!r}: expected KEY={'PORT' if digits else 'VALUE'}")
        out[key] = value
    return out


def credential_options(fn: F) -> F:
    fn = password_options(fn, "Read the password from this file (first line).",
                          "Read the password from this environment variable [default: AVCTL_PASSWORD].")
    fn = click.option("--user", "-u", help="User name [default: the family's default user].")(fn)
    return fn


def password_options(fn: F, file_help: str, env_help: str) -> F:
    """--password-env VAR / --password-file FILE (never the password itself as an argument)."""
    fn = click.option("--password-file", type=click.Path(dir_okay=False), help=file_help)(fn)
    return click.option("--password-env", metavar="VAR", help=env_help)(fn)


def fleet_password_options(fn: F) -> F:
    """The password of selected devices whose inventory entry names none (fleet commands)."""
    return password_options(
        fn, "Password for devices the inventory gives none: the first line of this file.",
        "Password for devices the inventory gives none: this environment variable.")


def fleet_password_ref(password_env: str | None, password_file: str | None) -> str | None:
    """--password-env / --password-file as a credential reference (``env:VAR``, ``file:/abs/path``),
    checked like the inventory's own references before a job starts."""
    if password_env and password_file:
        raise UsageError("--password-env and --password-file contradict each other", hint="choose one")
    if password_env:
        return f"env:{password_env}"
    if password_file:
        return f"file:{Path(password_file).expanduser().resolve()}"
    return None


def output_format(as_json: bool, as_csv: bool) -> None:
    """--json and --csv together: refused rather than one silently winning."""
    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be used together", hint="choose one output format")


def read_credentials(
    user: str | None, password_env: str | None, password_file: str | None, *, needed: bool = True
) -> Credentials:
    """Password from a named variable, a file, $AVCTL_PASSWORD, or a hidden prompt; never an argument."""
    password: str | None = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise UsageError(
                f"environment variable {password_env} is not set",
                hint=f"export {password_env}=... or use --password-file",
            )
    elif password_file:
        password = read_secret_file(password_file, "--password-file")
    elif "AVCTL_PASSWORD" in os.environ:
        password = os.environ["AVCTL_PASSWORD"]
    elif needed and sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, default="", show_default=False, err=True)
    if password:
        REDACTOR.add(password)  # before the first request: no error, output or audit row may show it
    return Credentials(user, password)


def parse_assignments(action: Action, pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` words -> typed parameter values (validation proper happens in the client)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(
                f"{action.id}: expected key=value, got {pair!r}",
                hint=f"parameters: {action.signature() or '(none)'}",
            )
        name = key.replace("-", "_")
        p = action.param(name)
        secret = bool(p is not None and p.secret) or bool(SENSITIVE_KEY_RE.search(name))
        values[name] = coerce_text(action, name, param_text(name, text, secret=secret))
    return values


def param_text(name: str, text: str, *, secret: bool) -> str:
    """The value of one ``name=text`` word: ``@env:VAR``, ``@file:PATH``, ``@prompt`` or a literal.

    A literal that starts with ``@`` is written ``@@...``. Secret values are registered with the
    redactor; a secret given literally still works but warns (arguments show in ``ps`` and in the
    shell history).
    """
    if text.startswith("@@"):
        value = text[1:]
        from_source = False
    elif text.startswith("@"):
        value = _from_source(name, text)
        from_source = True
    else:
        value, from_source = text, False
    if secret:
        REDACTOR.add(value)
        if not from_source and value:
            click.echo(f"avctl: warning: {name}= given on the command line is visible in 'ps' and the shell "
                       f"history; use {name}=@env:VAR, {name}=@file:PATH or {name}=@prompt", err=True)
    return value


def _from_source(name: str, text: str) -> str:
    form, _, arg = text[1:].partition(":")
    if form == "env" and arg:
        value = os.environ.get(arg)
        if value is None:
            raise UsageError(f"{name}=@env:{arg}: environment variable {arg} is not set",
                             hint=f"export {arg}=... first")
        return value
    if form == "file" and arg:
        return read_secret_file(Path(arg).expanduser(), f"the file for {name}=")
    if text == "@prompt":
        if not sys.stdin.isatty():
            raise UsageError(f"{name}=@prompt needs a terminal to ask on",
                             hint=f"use {name}=@env:VAR or {name}=@file:PATH when scripted")
        answer: str = click.prompt(name, hide_input=True, default="", show_default=False, err=True)
        return answer
    raise UsageError(f"{name}={text}: unknown value source {text.partition(':')[0]!r}",
                     hint="use @env:VAR, @file:PATH or @prompt; write @@ for a value that starts with @")


#: how many devices a confirmation prompt names before "... and N more"
PROMPT_DEVICES = 10


def confirm_disruptive(what: str, yes: bool, devices: Sequence[str] = ()) -> None:
    """Ask before a disruptive action; without a terminal, only --yes may go ahead. A command a
    schedule starts was confirmed when the schedule was added (``avctl schedule add``).

    ``devices``: one line per device it would hit ("name (family, site)"); the first ones are shown
    with where to see them all (``--dry-run``)."""
    from avctl.schedule.link import scheduled_run

    if yes or scheduled_run() is not None:
        return
    if devices:
        for line in devices[:PROMPT_DEVICES]:
            click.echo(f"  {shown(line)}", err=True)
        more = len(devices) - PROMPT_DEVICES
        if more > 0:
            click.echo(f"  ... and {more} more (the full list: the same command with --dry-run)", err=True)
    if not sys.stdin.isatty():
        raise ConfirmationRequired(
            f"{what} is disruptive and needs confirmation", hint="run again with --yes to confirm"
        )
    if not click.confirm(f"{what}. Continue?", default=False, err=True):
        raise ConfirmationRequired("not confirmed; nothing was sent")


def emit_json(value: Any) -> None:
    # ensure_ascii: controls and bidi overrides from devices leave as \u escapes, never raw
    click.echo(REDACTOR.text(json.dumps(value, indent=2, default=str, ensure_ascii=True)))


def handle_errors(fn: F) -> F:
    """One clear line for user-facing errors; a traceback only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except AvctlError as exc:
            if debug:
                raise
            # messages quote devices and URLs: secrets masked, control characters neutralised
            for problem in getattr(exc, "problems", ()):  # several problems: one line each
                click.echo(f"avctl: error: {shown(problem.message)}", err=True)
                if problem.hint:
                    click.echo(f"avctl: hint: {shown(problem.hint)}", err=True)
            if not getattr(exc, "problems", ()):
                for line in exc.message.splitlines():  # a list of problems: one line each
                    click.echo(f"avctl: error: {shown(line)}", err=True)
            if exc.hint:
                click.echo(f"avctl: hint: {shown(exc.hint)}", err=True)
            from avctl.errors import ValidationError

            ctx.exit(2 if isinstance(exc, (UsageError, ValidationError)) else 1)
        except KeyboardInterrupt:
            click.echo("avctl: interrupted", err=True)
            ctx.exit(130)

    return wrapper  # type: ignore[return-value]
