"""Shell completion: `avctl completion bash|zsh|fish` prints the script, the family and action
arguments complete from the specs, and selection options (--name, --site, --room, --tag) from the
inventory (click's completion protocol, `_AVCTL_COMPLETE=..._complete`).

The completers live here, apart from the commands that use them, and import only the family
registry: completing a word must not pull in aiohttp or the fleet store.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from avctl.families import builtin_spec, family_names

SHELLS = ("bash", "zsh", "fish")


def complete_family(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Registered family names starting with what is typed."""
    return [CompletionItem(name) for name in family_names() if name.startswith(incomplete)]


def complete_action(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Action ids of the family given so far (`-f videoos`, `describe videoos`, `--family 'v*'`), else
    of every family; each with its label as the help zsh and fish show."""
    given = ctx.params.get("family") or ctx.params.get("sel_family")  # call/describe, or a fleet selection
    patterns = [given] if isinstance(given, str) else list(given or [])
    families = [f for f in family_names() if not patterns or any(fnmatch.fnmatch(f, p) for p in
                                                                  _alternatives(patterns))]
    items: dict[str, str] = {}
    for family in families:
        for action in builtin_spec(family).actions.values():
            if action.id.startswith(incomplete):
                items.setdefault(action.id, action.label)
    return [CompletionItem(name, help=label) for name, label in sorted(items.items())]


def complete_inventory(key: str) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    """A completer of the values of ``key`` (name, site, room, tag) in the command's inventory (``-i``,
    ``$AVCTL_INVENTORY``, else ``inventory.yaml``): ``--site h<Tab>`` offers the sites there are."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        from avctl.fleet.inventory import load_inventory  # only when a value is completed

        path = ctx.params.get("inventory_path") or os.environ.get("AVCTL_INVENTORY") or "inventory.yaml"
        try:
            devices = load_inventory(path).devices
        except Exception:  # a completion never prints an error: it offers nothing
            return []
        values = {v for d in devices for v in ((d.tags if key == "tag" else [getattr(d, key)]) or []) if v}
        return [CompletionItem(v) for v in sorted(values) if v.lower().startswith(incomplete.lower())]

    return complete


def _alternatives(patterns: list[str]) -> list[str]:
    """`videoos|polyuc` (the selection syntax) as two patterns."""
    return [part for pattern in patterns for part in pattern.split("|") if part]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish (commands, options, families, actions).

    \b
    bash:  eval "$(avctl completion bash)"            (in ~/.bashrc)
    zsh:   eval "$(avctl completion zsh)"             (in ~/.zshrc, after compinit)
    fish:  avctl completion fish > ~/.config/fish/completions/avctl.fish
    """
    from avctl.cli.main import cli

    completer = get_completion_class(shell)
    if completer is None:  # click knows all three SHELLS; a click without one is a broken install
        raise click.UsageError(f"this click has no {shell} completion")
    click.echo(completer(cli, {}, "avctl", "_AVCTL_COMPLETE").source())
