"""The `avctl` command line. Family-agnostic: everything it knows about a device comes from its spec.

Each command lives in its own module (`avctl.cli.call`, `avctl.cli.fleet`, ...), imported only when
that command runs: `avctl --help` lists the table below and imports none of them.
"""

from __future__ import annotations

import os
import sys

import click

from avctl.cli.lazy import LazyCommand, LazyGroup
from avctl.version import __version__

#: name -> where the command lives, and its help as `avctl --help` shows it (tests keep both in step)
COMMANDS = {
    "actions": LazyCommand("avctl.cli.actions:actions_cmd",
                           "List the actions of one family (or all) with their parameters."),
    "describe": LazyCommand("avctl.cli.actions:describe_cmd",
                            "Show one action in full: what it does, its parameters and an example call."),
    "call": LazyCommand("avctl.cli.call:call_cmd", "Run ACTION on the device at HOST[:PORT] with key=value PARAMS."),
    "trust": LazyCommand("avctl.cli.trust:trust_cmd",
                         "Show, pin or re-pin the certificate of the device at ADDRESS[:PORT]."),
    "capture": LazyCommand("avctl.cli.capture_cmd:capture_cmd",
                           "Read everything the device at HOST[:PORT] answers without changing it, into a profile."),
    "conformance": LazyCommand("avctl.cli.conformance_cmd:conformance_cmd",
                               "Run the family's conformance checks against the emulator and, given HOST[:PORT], "
                               "against that device too, and show where the two differ."),
    "spec": LazyCommand("avctl.cli.spec_cmd:spec_group", "Work with device spec files."),
    "emulate": LazyCommand("avctl.cli.emulate:emulate_group",
                           "Run emulated devices on loopback (for demos, tests and your own control code)."),
    "inventory": LazyCommand("avctl.cli.fleet:inventory_group", "Show, check and import device inventories."),
    "secrets": LazyCommand("avctl.cli.fleet:secrets_group",
                           "The encrypted secrets file (key: AVCTL_SECRETS_KEY or the OS keyring)."),
    "fleet": LazyCommand("avctl.cli.fleet:fleet_group",
                         "Run actions and verbs on many devices at once (see 'avctl inventory list' for the "
                         "selection)."),
    "config": LazyCommand("avctl.cli.config_cmd:config_group",
                          "Configuration as desired state: snapshots (backup), plan, apply, drift, restore."),
    "schedule": LazyCommand("avctl.cli.schedule_cmd:schedule_group",
                            "Run fleet, config and firmware commands on a cron expression in each site's time zone."),
    "firmware": LazyCommand("avctl.cli.firmware_cmd:firmware_group",
                            "Firmware compliance with the inventory's baseline; updates."),
    "jobs": LazyCommand("avctl.cli.fleet:jobs_group",
                        "Fleet jobs recorded in the job store: list, show, resume, rerun, prune."),
    "serve": LazyCommand("avctl.cli.serve:serve_cmd",
                         "Watch the fleet: polling, history, alerts and the REST API."),
    "worker": LazyCommand("avctl.cli.worker:worker_cmd",
                          "Run a site worker for the Temporal engine (fleet jobs with --engine temporal)."),
    "audit": LazyCommand("avctl.cli.fleet:audit_cmd",
                         "Show the audit log of state-changing calls (newest first), filtered."),
    "completion": LazyCommand("avctl.cli.completion:completion_cmd",
                              "Print the shell completion script for bash, zsh or fish (commands, options, "
                              "families, actions)."),
    "users": LazyCommand("avctl.cli.users:users_group", "Server users: add (the first admin), list, set, remove."),
    "tokens": LazyCommand("avctl.cli.users:tokens_group", "Server API tokens: create (shown once), list, revoke."),
    "mcp": LazyCommand("avctl.cli.mcp_cmd:mcp_cmd",
                       "Let an AI assistant work with the fleet: a Model Context Protocol (MCP) server."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"],
                                                                  # a wide terminal shows whole summaries
                                                                  "max_content_width": 110})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="avctl")
def cli(debug: bool) -> None:
    """Control and manage meeting-room devices (Poly VideoOS, Poly UC, Mersive Solstice) over REST."""


def main() -> None:
    from avctl.transport import cas

    cas.CLI_OWNS_PROCESS = True  # this process's HTTPS goes only through avctl's transport
    try:
        cli(prog_name="avctl")
    except SystemExit as done:
        _leave_after_temporal(done)
        raise


def _leave_after_temporal(done: SystemExit) -> None:
    """A command that talked to Temporal ends without the interpreter's teardown: the Temporal
    SDK's Rust threads can outlive the event loop and abort the process while Python finalizes
    (temporalio/sdk-python#300), turning a finished command into exit code -6. Everything is
    written and closed by now; output is flushed first."""
    engine = sys.modules.get("avctl.temporal.engine")
    if engine is None or not getattr(engine, "CONNECTED", False):
        return
    code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    if done.code is not None and not isinstance(done.code, int):
        print(done.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
