"""``avctl emulate fleet``: the command line around :class:`avctl.emulator.fleet.EmulatedFleet`.

It lives in the CLI package because the emulator library must not import CLI code (the layering
contract in pyproject.toml); the emulator knows nothing of click or of how errors are printed.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from avctl.cli.common import handle_errors
from avctl.emulator.fleet import IN_CALL, OFFLINE, OLD_FIRMWARE, WRONG_PASSWORD, EmulatedFleet, Variety
from avctl.errors import UsageError
from avctl.families import family_names


def _family_counts(command: Callable[..., None]) -> Callable[..., None]:
    """One `--FAMILY N` option per registered family."""
    for name in reversed(family_names()):
        command = click.option(f"--{name}", name, type=click.IntRange(0, 100000), default=0,
                               help=f"Number of {name} devices.")(command)
    return command


@click.command("fleet")
@_family_counts
@click.option("--latency", type=float, default=0.0, help="Milliseconds added to every answer.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of answers that are HTTP 500.")
@click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests whose connection is dropped unanswered.")
@click.option("--reboot-seconds", type=float, default=2.0, show_default=True,
              help="How long a reboot keeps a device unreachable.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, help="Worker processes [default: auto].")
@click.option("--sites", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="Spread the devices over this many sites.")
@click.option("--output", "-o", "inventory", type=click.Path(dir_okay=False), default="emulated-fleet.yaml",
              show_default=True, help="Inventory file to write (a .password file is written beside it).")
@click.option("--known-hosts", type=click.Path(dir_okay=False), envvar="AVCTL_KNOWN_HOSTS",
              help="Pin the devices' certificates here [default: $AVCTL_HOME/known_devices].")
@click.option("--spec", "spec_overrides", multiple=True, metavar="FAMILY=FILE",
              help="Serve FAMILY from this spec file instead of the built-in one.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every device listens on.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --host beyond loopback (the network can reach the devices; passwords are printed).")
@click.option("--mixed", is_flag=True,
              help="Several models per family, and each family's second device on firmware older than the "
                   "baseline the inventory gets.")
@click.option("--in-call", type=click.IntRange(0), default=0, metavar="N",
              help="Start the video systems of the first N rooms in a call.")
@click.option("--offline", type=click.IntRange(0), default=0, metavar="N",
              help="N devices are listed but answer nothing (every connection is closed).")
@click.option("--wrong-password", type=click.IntRange(0), default=0, metavar="N",
              help="N devices have a password other than the inventory's (their login is refused).")
@click.option("--variety", is_flag=True,
              help="One of everything: --mixed --in-call 1 --offline 1 --wrong-password 1 (what the demo runs).")
def emulate_fleet_command(latency: float, error_rate: float, drop_rate: float, reboot_seconds: float,
                          workers: int, sites: int, inventory: str, known_hosts: str | None,
                          spec_overrides: Sequence[str], host: str, allow_remote: bool, mixed: bool, in_call: int,
                          offline: int, wrong_password: int, variety: bool, **counts: int) -> None:
    """Start an emulated fleet of all families and write a matching inventory; serve until Ctrl-C.

    \b
    A fleet that looks like a real one (models, firmware, a call, an offline device, a wrong password):
      avctl emulate fleet --videoos 4 --polyuc 4 --solstice 4 --variety -o fleet.yaml
    """
    @handle_errors
    def run() -> None:
        overrides = {}
        for pair in spec_overrides:
            fam, sep, path = pair.partition("=")
            if not sep:
                raise UsageError(f"--spec expects FAMILY=FILE, got {pair!r}")
            overrides[fam] = path
        story = Variety.story()
        fleet = EmulatedFleet(counts,
                              latency_ms=latency, workers=workers, sites=sites, spec_paths=overrides,
                              faults={"error_rate": error_rate, "drop_rate": drop_rate,
                                      "reboot_seconds": reboot_seconds},
                              host=host, allow_remote=allow_remote,
                              variety=Variety(mixed=mixed or variety,
                                              in_call=max(in_call, story.in_call if variety else 0),
                                              offline=max(offline, story.offline if variety else 0),
                                              wrong_password=max(wrong_password,
                                                                 story.wrong_password if variety else 0)))
        if fleet.warning:
            click.echo(f"avctl: {fleet.warning}", err=True)
        # a stop asked for while the workers start is honoured once they are up (and then stopped)
        stop = {"now": False}

        def on_signal(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        t0 = time.monotonic()
        fleet.start()
        try:
            inv_path = fleet.write_inventory(inventory, known_hosts=Path(known_hosts) if known_hosts else None)
            per = ", ".join(f"{n} {f}" for f, n in fleet.counts.items())
            click.echo(f"{len(fleet.devices)} emulated devices ({per}) in {len(fleet.pids)} process(es), "
                       f"started in {time.monotonic() - t0:.1f} s")
            pw_path = inv_path.with_name(inv_path.stem + ".password")
            click.echo(f"inventory: {inv_path}  (password in {pw_path})")
            for trait in (OLD_FIRMWARE, IN_CALL, OFFLINE, WRONG_PASSWORD):
                names = [d.name for d in fleet.with_trait(trait)]
                if names:
                    click.echo(f"{trait}: {', '.join(names)}")
            click.echo(f"try: avctl fleet status -i {inv_path}", err=True)
            click.echo("Ctrl-C to stop", err=True)
            sys.stdout.flush()
            while not stop["now"] and all(p.is_alive() for p, _c in fleet._procs):
                time.sleep(0.2)
        finally:
            fleet.stop()

    run()
