"""A click group that imports a command's module only when that command runs.

Every command of `avctl` pulls in something heavy (aiohttp, the emulator, the fleet's SQLite store,
rich), and `avctl --help` needs none of it. The group holds a table, name -> where the command lives
and its one-line help, so listing the commands imports nothing; running one imports its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from gettext import gettext as _
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    #: "package.module:attribute" of the click command
    target: str
    #: the command's help (its first paragraph is enough), shown by the group's --help unloaded
    help: str


class LazyGroup(click.Group):
    """`click.Group` plus commands loaded on first use from a table of :class:`LazyCommand`."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy_commands:
            cmd = self.load(cmd_name)
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        """click's, but "did you mean" looks at every command, not only the ones imported so far."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            raise click.exceptions.NoSuchCommand(args[0], possibilities=self.list_commands(ctx),
                                                 ctx=ctx) from None

    def load(self, name: str) -> click.Command:
        """Import the command `name` and keep it (the next lookup is a dict access)."""
        module, _sep, attr = self.lazy_commands[name].target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):  # a wrong table row is a bug in avctl, not user input
            raise TypeError(f"{self.lazy_commands[name].target} is not a click command")
        self.add_command(cmd, name)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with a stand-in made from the table for a command not imported yet."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None:
                cmd = click.Command(name, help=self.lazy_commands[name].help)
            if not cmd.hidden:
                rows.append((name, cmd))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _cmd in rows)
        with formatter.section(_("Commands")):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])
