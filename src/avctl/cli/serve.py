"""``avctl serve``: the fleet service (polling, state and history, alerts, the REST API) in one process."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from avctl.cli.common import handle_errors


@click.command("serve")
@click.option("--inventory", "-i", type=click.Path(dir_okay=False), help="The inventory file (reloaded on change).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="A server config file (YAML); options given here override it.")
@click.option("--db", envvar="AVCTL_DB",
              help="Database: a SQLite file or postgresql://... [default: $AVCTL_HOME/avctl.db].")
@click.option("--listen", metavar="HOST:PORT", help="Where the API listens [default: 127.0.0.1:8443].")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="HTTPS certificate (PEM) [default: self-signed].")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Its private key (PEM).")
@click.option("--http", is_flag=True, default=None,
              help="Plain HTTP (only on a loopback address, e.g. behind a proxy).")
@click.option("--insecure-http", is_flag=True, default=None,
              help="Plain HTTP on any address: passwords and tokens cross the network in clear.")
@click.option("--public-url", metavar="URL",
              help="Behind a TLS reverse proxy: the address users reach the server at (https://host[:port]).")
@click.option("--rules", type=click.Path(dir_okay=False), help="Alert rules and notification channels (YAML).")
@click.option("--interval", metavar="DURATION", help="Poll every device this often [default: 60s].")
@click.option("--concurrency", type=click.IntRange(1, 10000), help="Polls in flight [default: 200].")
@click.option("--per-site", type=click.IntRange(0, 10000), help="Polls in flight per site (0: no limit).")
@click.option("--backoff", metavar="DURATION",
              help="An unreachable device is polled at most this far apart [default: 10m].")
@click.option("--min-interval", "min_intervals", multiple=True, metavar="FAMILY=DURATION",
              help="Lower or raise a family's minimum poll interval (Solstice: 10s).")
@click.option("--drift-every", metavar="DURATION",
              help="Check configuration drift (the inventory's config: blocks) this often [default: never].")
@click.option("--engine", type=click.Choice(["local", "temporal"]), envvar="AVCTL_ENGINE",
              help="Where fleet jobs run: here, or on Temporal by each site's 'avctl worker --site NAME' "
                   "[default: local].")
@click.option("--temporal", "temporal_address", envvar="AVCTL_TEMPORAL", metavar="HOST:PORT",
              help="With --engine temporal: the Temporal service [default: 127.0.0.1:7233].")
@click.option("--namespace", "temporal_namespace", envvar="AVCTL_TEMPORAL_NAMESPACE",
              help="With --engine temporal: the Temporal namespace [default: default].")
def serve_cmd(inventory: str | None, config_file: str | None, db: str | None, listen: str | None,
              tls_cert: str | None, tls_key: str | None, http: bool | None, insecure_http: bool | None,
              public_url: str | None, rules: str | None, interval: str | None, concurrency: int | None,
              per_site: int | None, backoff: str | None, min_intervals: tuple[str, ...],
              drift_every: str | None, engine: str | None, temporal_address: str | None,
              temporal_namespace: str | None) -> None:
    """Watch the fleet: polling, history, alerts and the REST API.

    Polls every device of the inventory, keeps its state and history in the database, raises the
    alerts of the rules file and serves the API (HTTPS; a self-signed certificate by default).

    Start: avctl users add admin --role admin; avctl serve -i fleet.yaml. Reload the inventory
    by saving it (or kill -HUP); stop with Ctrl-C or SIGTERM (running jobs stay resumable).
    """

    @handle_errors
    def run() -> None:
        from avctl.errors import UsageError
        from avctl.server.access.users import list_users
        from avctl.server.config import ServerConfig, check_public_url, load_config, parse_duration
        from avctl.server.runtime import ServerRuntime

        if (tls_cert is None) != (tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together", hint="give both, or neither for self-signed")
        base = load_config(config_file) if config_file else ServerConfig()
        options = {"inventory": str(Path(inventory).resolve()) if inventory else None, "db": db,
                   "listen": listen, "tls_cert": tls_cert, "tls_key": tls_key, "http": http,
                   "insecure_http": insecure_http, "rules": rules,
                   "public_url": check_public_url(public_url) if public_url else None,
                   "interval": parse_duration(interval, "--interval") if interval else None,
                   "concurrency": concurrency, "per_site": per_site,
                   "backoff": parse_duration(backoff, "--backoff") if backoff else None,
                   "drift_every": parse_duration(drift_every, "--drift-every") if drift_every else None,
                   "engine": engine, "temporal_address": temporal_address, "temporal_namespace": temporal_namespace}
        minimums: dict[str, float] = {}
        for pair in min_intervals:
            family, sep, text = pair.partition("=")
            if not sep or not family:
                raise UsageError(f"--min-interval expects FAMILY=DURATION, got {pair!r}")
            minimums[family] = parse_duration(text, f"--min-interval {family}")
        config = base.merged(options)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
        runtime = ServerRuntime(config, family_min_interval=minimums)

        def ready(line: str) -> None:
            click.echo(line, err=True)
            if line.startswith("avctl serve: API at ") and not list_users(runtime.db):
                click.echo("avctl serve: no users yet, so nobody can sign in: add the first admin with "
                           "'avctl users add NAME --role admin' (the server need not restart)", err=True)

        asyncio.run(runtime.run(ready=ready))

    run()
