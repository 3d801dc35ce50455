"""`avctl actions` and `avctl describe`: what a family's spec offers, from the spec alone."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from avctl.cli.common import emit_json, handle_errors
from avctl.cli.completion import complete_action, complete_family
from avctl.cli.console import data_console
from avctl.families import builtin_spec, family_names


@click.command("actions")
@click.argument("family", required=False, shell_complete=complete_family)
@click.option("--search", "-s", help="Only actions whose id, label or path contains TEXT.", metavar="TEXT")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def actions_cmd(family: str | None, search: str | None, as_json: bool) -> None:
    """List the actions of one family (or all) with their parameters."""
    families = [family] if family else family_names()
    rows = []
    for fam in families:
        spec = builtin_spec(fam)
        for action in spec.actions.values():
            text = f"{action.id} {action.label} {action.path}".lower()
            if search and search.lower() not in text:
                continue
            rows.append((fam, action))
    if as_json:
        emit_json(
            [
                {
                    "family": fam,
                    "id": a.id,
                    "label": a.label,
                    "kind": a.kind,
                    "method": a.method,
                    "path": a.path,
                    "disruptive": a.disruptive,
                    "params": [
                        {
                            "name": p.name,
                            "type": p.type_label(),
                            "in": p.location,
                            "required": p.required,
                            "description": p.description,
                        }
                        for p in a.settable_params
                    ],
                }
                for fam, a in rows
            ]
        )
        return
    table = Table(box=None, pad_edge=False)
    for col in ("family", "action", "kind", "method path", "parameters"):
        table.add_column(col, overflow="fold")
    for fam, a in rows:
        kind = a.kind + (" !" if a.disruptive else "")
        table.add_row(fam, f"{a.id}\n[dim]{a.label}[/dim]", kind, f"{a.method} {a.path}", a.signature())
    terminal = Console()
    # piped: one line per row, no trailing blanks (data_console); a terminal: at least 120 columns
    (Console(width=max(terminal.width, 120)) if terminal.is_terminal else data_console()).print(table)
    click.echo(f"{len(rows)} action(s); '!' marks disruptive actions (they ask for confirmation)", err=True)


@click.command("describe")
@click.argument("family", shell_complete=complete_family)
@click.argument("action", shell_complete=complete_action)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def describe_cmd(family: str, action: str, as_json: bool) -> None:
    """Show one action in full: what it does, its parameters and an example call."""
    act = builtin_spec(family).action(action)
    params = [{"name": p.name, "wire": p.wire_name, "in": p.location, "type": p.type_label(),
               "required": p.required, "default": p.default if p.has_default else None,
               "description": p.description} for p in act.settable_params]
    if as_json:
        emit_json({"family": family, "id": act.id, "label": act.label, "description": act.description,
                   "kind": act.kind, "method": act.method, "path": act.path, "disruptive": act.disruptive,
                   "safety_note": act.safety_note, "response": act.response, "params": params})
        return
    click.echo(f"{act.id}: {act.label}")
    if act.description:
        click.echo(f"  {act.description}")
    click.echo(f"  {act.method} {act.path}  ({act.kind}; response: {act.response})")
    if act.disruptive:
        click.echo(f"  disruptive: asks for confirmation{': ' + act.safety_note if act.safety_note else ''}")
    for p in params:
        flags = "required" if p["required"] else "optional"
        if p["default"] is not None:
            flags += f", default {p['default']!r}"
        click.echo(f"  {p['name']:<18} {p['type']:<28} {p['in']:<5} {flags}"
                   + (f"  {p['description']}" if p["description"] else ""))
    example = " ".join(f"{p.name}=..." for p in act.settable_params if p.required)
    click.echo(f"example: avctl call -f {family} HOST {act.id} {example}".rstrip())
