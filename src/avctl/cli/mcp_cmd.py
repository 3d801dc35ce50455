"""``avctl mcp``: the agent interface, a Model Context Protocol server over the fleet."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click

from avctl.cli.common import handle_errors


def _token(env: str | None, file: str | None) -> str | None:
    from avctl.errors import UsageError

    if env and file:
        raise UsageError("--token-env and --token-file are two ways to give one token", hint="give one of them")
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise UsageError(f"--token-env {env}: the variable is not set or empty")
    elif file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file {file}: cannot read it: {exc.strerror}") from None
        if not value:
            raise UsageError(f"--token-file {file} is empty")
    else:
        return None
    if len(value) < 16:
        raise UsageError("the bearer token is shorter than 16 characters", hint="use e.g. 'openssl rand -hex 32'")
    from avctl.redact import REDACTOR

    REDACTOR.add(value)
    return value


def _ttl(text: str) -> float:
    from avctl.durations import parse_duration

    if text.strip().rstrip("s").strip() in ("0", "0.0"):
        return 0.0  # every token already expired at its next use (a test, a demonstration)
    return parse_duration(text, "--confirm-ttl")


@click.command("mcp")
@click.option("--inventory", "-i", required=True, type=click.Path(dir_okay=False),
              help="The inventory file (reloaded when it changes).")
@click.option("--db", envvar="AVCTL_DB",
              help="Database: a SQLite file or postgresql://... (the server's, to see its polled state) "
                   "[default: $AVCTL_HOME/avctl.db].")
@click.option("--allow-actions", is_flag=True, help="Allow non-disruptive changes (default: read-only).")
@click.option("--allow-disruptive", is_flag=True,
              help="Allow disruptive actions too (reboot, reset...), each confirmed; implies --allow-actions.")
@click.option("--confirm-ttl", default="120s", show_default=True, metavar="DURATION",
              help="How long a confirmation token stays valid.")
@click.option("--max-changes", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="Changes per minute per client (a fleet run counts once).")
@click.option("--listen", metavar="HOST:PORT",
              help="Serve streamable HTTP at http(s)://HOST:PORT/mcp instead of stdio.")
@click.option("--token-env", metavar="VAR", help="HTTP: also accept the bearer token in this environment variable.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="HTTP: also accept the bearer token in this file.")
@click.option("--tls-cert", "cert", type=click.Path(dir_okay=False),
              help="HTTP: serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", "key", type=click.Path(dir_okay=False), help="HTTP: its private key (PEM).")
@click.option("--debug", is_flag=True, help="Log each request and full errors to stderr.")
def mcp_cmd(inventory: str, db: str | None, allow_actions: bool, allow_disruptive: bool, confirm_ttl: str,
            max_changes: int, listen: str | None, token_env: str | None, token_file: str | None,
            cert: str | None, key: str | None, debug: bool) -> None:
    """Let an AI assistant work with the fleet: a Model Context Protocol (MCP) server.

    MCP is how assistants such as Claude Desktop, Claude Code or VS Code's agent mode use outside
    tools. Configure your assistant to start `avctl mcp -i fleet.yaml`: it can then find devices,
    read their status, explain actions, plan and run fleet jobs, and search the audit log.

    Read-only unless you allow more: --allow-actions for changes, --allow-disruptive for reboots and
    the like. A disruptive call and every fleet run first return a plan and a one-time token; only a
    second call with the token runs it. Every change is in the audit log under the assistant's name.

    By default it talks over stdin/stdout (the assistant starts it). With --listen it serves HTTP
    instead, where each request needs a bearer token: an API token of the server (avctl tokens
    create; the token's user, role and sites apply) or your own given with --token-env/--token-file.
    See docs/agents.md.
    """

    @handle_errors
    def run() -> None:
        from avctl.errors import UsageError
        from avctl.redact import install_log_redaction
        from avctl.server.config import split_listen

        # stdout is the protocol's channel: every word of ours goes to stderr
        logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        install_log_redaction()
        # the command line is checked before the server's modules are imported: a mistake is told at once
        if (cert is None) != (key is None):
            raise UsageError("--tls-cert and --tls-key go together", hint="give both for HTTPS")
        if listen is None and (token_env or token_file or cert):
            raise UsageError("--token-env, --token-file, --tls-cert and --tls-key are for --listen (HTTP)",
                             hint="over stdio the assistant starts avctl mcp itself: no token is needed")
        ttl = _ttl(confirm_ttl)
        address = split_listen(listen) if listen is not None else None
        token = _token(token_env, token_file)

        from avctl.mcp.run import Listen, serve
        from avctl.mcp.settings import McpSettings

        settings = McpSettings(allow_actions=allow_actions or allow_disruptive, allow_disruptive=allow_disruptive,
                               confirm_ttl=ttl, max_changes=max_changes)
        where = None if address is None else Listen(address[0], address[1], token=token, cert=cert, key=key)

        def ready(line: str) -> None:
            click.echo(line, err=True)

        asyncio.run(serve(str(Path(inventory).resolve()), db, settings, where, ready=ready))

    run()
