"""`avctl spec lint`: check spec files, every problem with file:line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from avctl.cli.common import emit_json, handle_errors
from avctl.spec import read_spec


@click.group("spec")
def spec_group() -> None:
    """Work with device spec files."""


@spec_group.command("lint")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="Only the summary line and errors.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def lint_cmd(files: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Check spec FILES; report every problem with file:line; exit 1 if any has errors."""
    paths: list[Path] = []
    for f in files:
        p = Path(f)
        paths.extend(sorted(p.rglob("*.md")) if p.is_dir() else [p])
    report = []
    errors = warnings = 0
    for path in paths:
        result = read_spec(path)
        errors += len(result.errors)
        warnings += len(result.warnings)
        report.append(
            {
                "file": str(path),
                "actions": len(result.spec.actions) if result.spec else 0,
                "issues": [
                    {"severity": i.severity, "line": i.line, "message": i.message} for i in result.issues
                ],
            }
        )
        if not as_json:
            for issue in result.issues:
                if not quiet or issue.severity == "error":
                    click.echo(str(issue))
    summary = {"files": len(paths), "errors": errors, "warnings": warnings}
    if as_json:
        emit_json({"summary": summary, "files": report})
    else:
        click.echo(f"{len(paths)} file(s): {errors} error(s), {warnings} warning(s)")
    if errors:
        sys.exit(1)
