"""``avctl worker``: run a site's device work (or a store's control queue) for the Temporal engine."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import click

from avctl.cli.common import handle_errors, tls_options, tls_policy


def temporal_options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option("--namespace", envvar="AVCTL_TEMPORAL_NAMESPACE", default="default", show_default=True,
                      help="The Temporal namespace.")(fn)
    return click.option("--temporal", "temporal_address", envvar="AVCTL_TEMPORAL", default="127.0.0.1:7233",
                        show_default=True, metavar="HOST:PORT", help="The Temporal service (gRPC frontend).")(fn)


@click.command("worker")
@click.option("--site", help="Run the device work of this site (task queue site.NAME); 'default': devices "
                             "without a site.")
@click.option("--control", is_flag=True,
              help="Instead, run the job workflows and write their results into --store (the server does this "
                   "itself with --engine temporal).")
@click.option("--store", "store_path", envvar="AVCTL_DB",
              help="With --control: the job database, a file or a URL [default: $AVCTL_HOME/avctl.db].")
@click.option("--journal", type=click.Path(dir_okay=False),
              help="The worker's own journal of sent and finished devices [default: "
                   "$AVCTL_HOME/worker-SITE.db].")
@click.option("--base-dir", type=click.Path(file_okay=False), default=".",
              help="Where file: password references are resolved [default: the current directory].")
@click.option("--max-batches", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="Batches of devices this worker runs at once.")
@click.option("--fallback-after", default="5m", show_default=True, metavar="DURATION",
              help="Run site-critical schedules here once Temporal has been unreachable this long (a WAN "
                   "outage); reported when it answers again. 'off': never.")
@click.option("--fallback-every", default="15s", hidden=True, metavar="DURATION",
              help="How often Temporal is looked at (tests).")
@click.option("--clock-offset", type=float, default=0.0, hidden=True,
              help="Seconds added to the clock the site's own schedule runs read (tests: a due time without "
                   "waiting for it).")
@temporal_options
@tls_options
def worker_cmd(site: str | None, control: bool, store_path: str | None, journal: str | None, base_dir: str,
               max_batches: int, fallback_after: str, fallback_every: str, clock_offset: float,
               temporal_address: str, namespace: str, known_hosts: str | None, ca_bundle: str | None,
               insecure: bool) -> None:
    """Run a site worker for the Temporal engine (fleet jobs with --engine temporal).

    It connects out to Temporal and takes its site's batches of devices: nothing connects in.
    Device passwords are resolved here, from the references in the inventory (env:, file:,
    secret:), with this machine's environment and secrets file; certificates are pinned in this
    machine's known-hosts file. Stop with Ctrl-C or SIGTERM: batches in hand finish first.

    Example: AVCTL_TEMPORAL=temporal.example.net:7233 avctl worker --site berlin
    """

    @handle_errors
    def run() -> None:
        from avctl.durations import parse_duration
        from avctl.errors import UsageError
        from avctl.paths import avctl_home
        from avctl.temporal import engine

        if control == bool(site):
            raise UsageError("give either --site NAME or --control", hint="avctl worker --site berlin")
        target = engine.TemporalTarget(temporal_address, namespace)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        if control:
            asyncio.run(_control(target, store_path))
            return
        assert site is not None
        from avctl.fleet.credentials import CredentialResolver
        from avctl.temporal.journal import SiteJournal
        from avctl.temporal.site import SiteActivities

        tls = tls_policy(known_hosts, ca_bundle, insecure)
        path = Path(journal) if journal else avctl_home() / f"worker-{_file_safe(site)}.db"
        activities = SiteActivities(site, SiteJournal(path), resolver=CredentialResolver(base_dir=Path(base_dir)),
                                    tls=tls)

        after = None if fallback_after == "off" else parse_duration(fallback_after, what="--fallback-after")
        every = parse_duration(fallback_every, what="--fallback-every")

        _warm_up()

        async def main() -> None:
            from avctl.temporal.fallback import SiteFallback

            client = await engine.connect(target)
            click.echo(f"avctl worker: site {site}: task queue site.{site} on {target.address} "
                       f"(namespace {target.namespace}); journal {path}", err=True)
            fallback = None if after is None else SiteFallback(
                activities, client, after=after, every=every, clock=lambda: time.time() + clock_offset)
            await engine.serve([engine.site_worker(client, activities, max_batches=max_batches)],
                               also=[activities.journal.keep_pruned(),
                                     *([fallback.run()] if fallback is not None else [])])

        asyncio.run(main())

    run()


def _warm_up() -> None:
    """The family specs parsed before the first batch arrives (a second or two otherwise spent in it)."""
    import contextlib

    from avctl.errors import AvctlError
    from avctl.families import builtin_spec, family_names

    for family in family_names():
        with contextlib.suppress(AvctlError):
            builtin_spec(family)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def _control(target: object, store_path: str | None) -> None:
    from contextlib import closing

    from avctl.db.factory import open_journal
    from avctl.fleet.store import default_db_path
    from avctl.schedule.store import open_schedule_store
    from avctl.temporal import engine
    from avctl.temporal.control import control_queue

    assert isinstance(target, engine.TemporalTarget)
    location = store_path or str(default_db_path())
    store, audit = open_journal(store_path)
    with closing(store), closing(audit), closing(open_schedule_store(store_path)) as schedules:
        client = await engine.connect(target)
        queue = control_queue(engine.store_identity(location))
        click.echo(f"avctl worker: control queue {queue} for {engine.store_identity(location)} on {target.address}",
                   err=True)
        await engine.serve([engine.control_worker(client, queue, store, audit),
                            engine.schedule_worker(client, queue, store, audit, schedules, store_path)])
