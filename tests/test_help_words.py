"""Help and describe texts speak in user terms (issue 15): no internal source labels such as
"seed 002", "S000" or "FAQ form"; where a behaviour comes from is said in words ("community-
documented, not in the vendor reference")."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.families import builtin_spec, family_names

INTERNAL = re.compile(r"\bseeds?\b\s*\d*|\bFAQ form\b|\bS00\d\b|\bapiref\b", re.IGNORECASE)


def _commands(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_help_text_is_free_of_internal_source_labels() -> None:
    runner = CliRunner()
    seen = 0
    for path in [(), *_commands(cli, ())]:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert not INTERNAL.search(result.output), (path, INTERNAL.search(result.output))
        seen += 1
    assert seen > 60  # every command and subcommand, the lazily loaded ones and each family's emulator


@pytest.mark.parametrize("family", family_names())
def test_every_describe_and_actions_text_is_free_of_internal_source_labels(family: str) -> None:
    runner = CliRunner()
    listing = runner.invoke(cli, ["actions", family])
    assert listing.exit_code == 0 and not INTERNAL.search(listing.output)
    for action in builtin_spec(family).actions:
        result = runner.invoke(cli, ["describe", family, action])
        assert result.exit_code == 0, result.output
        found = INTERNAL.search(result.output)
        assert found is None, f"avctl describe {family} {action}: {found.group(0)!r} in {result.output}"


def test_the_pattern_finds_what_it_is_for() -> None:
    for text in ("(seed 002)", "Seed 004's samples", "FAQ form; not in the reference", "(S000, AVI)"):
        assert INTERNAL.search(text), text
    assert not INTERNAL.search("community-documented, not in the vendor reference")
