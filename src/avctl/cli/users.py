"""`avctl users` and `avctl tokens`: the server's local users and their API tokens.

They work on the server's database directly (``--db``, default ``$AVCTL_HOME/avctl.db``), so the
first admin is made here, before the server has anyone to log in: ``avctl users add NAME --role
admin``. Passwords are read from a hidden prompt (twice) or stdin, never from an argument; tokens
are printed once and stored only as their hash.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import click

from avctl.cli.common import emit_json, handle_errors
from avctl.db import Database, database_url, open_database
from avctl.errors import AvctlError, UsageError
from avctl.fleet.paths import ensure_home, os_user
from avctl.redact import REDACTOR, shown
from avctl.server.access import audit, tokens, users
from avctl.server.model import ROLES
from avctl.timestamps import table_time

_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}

db_option = click.option(
    "--db", "db_url", envvar="AVCTL_DB", metavar="URL_OR_PATH",
    help="The server's database: a SQLite path or a postgresql:// URL [default: $AVCTL_HOME/avctl.db].")


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[Database]:
    """The database, with its failures as one-line errors (the URL shown without its password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    if not url:
        ensure_home()
    full = database_url(url)
    try:
        db = open_database(url)
    except SQLAlchemyError as exc:
        raise AvctlError(f"cannot open the database {make_url(full).render_as_string(hide_password=True)}: "
                         f"{_why(exc)}", hint="check --db or AVCTL_DB") from None
    try:
        yield db
    except SQLAlchemyError as exc:
        raise AvctlError(f"database error: {_why(exc)}") from None
    finally:
        db.close()


def _why(exc: Exception) -> str:
    """The driver's own first line (not SQLAlchemy's, which quotes the statement and its values)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("no password on stdin", hint="pipe the password in: ... --password-stdin < FILE")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        raise UsageError("no password given and no terminal to ask on", hint="use --password-stdin")
    REDACTOR.add(password)
    return password


def _sites(text: str | None) -> list[str] | None:
    return None if text is None else [s for s in text.split(",") if s.strip()]


def _when(ts: float | None) -> str:
    return table_time(ts) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[shown(str(c)) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _scope(sites: Sequence[str]) -> str:
    return ",".join(sites) if sites else "every site"


# --- users ------------------------------------------------------------------------------------------


@click.group("users")
def users_group() -> None:
    """Server users: add (the first admin), list, set, remove.

    Also disable and enable. The first `avctl users add NAME --role admin` makes the admin who can
    then manage users from the web too.
    """


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.option("--sites", metavar="A,B", help="Limit the user to these sites [default: every site].")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else: prompt twice).")
@db_option
@handle_errors
def users_add(name: str, role: str, sites: str | None, password_stdin: bool, db_url: str | None) -> None:
    """Add user NAME with a ROLE; the password is asked for (twice) or read from stdin."""
    users.check_name(name)
    password = _read_password(password_stdin)
    with _database(db_url) as db:
        user = users.add(db, name, password, role, _sites(sites) or ())
        audit.record(db, os_user(), "users.add", {"user": user.name, "role": user.role, "sites": list(user.sites)})
        admins = [u for u in users.list_users(db) if u.role == "admin" and not u.disabled]
    click.echo(f"added user {user.name} ({user.role}, {_scope(user.sites)})")
    if not admins:
        click.echo("avctl: warning: there is no admin yet: nobody can manage users from the web", err=True)
        click.echo("avctl: hint: avctl users add NAME --role admin", err=True)


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@handle_errors
def users_list(as_json: bool, db_url: str | None) -> None:
    """List the users (never their passwords)."""
    with _database(db_url) as db:
        found = users.list_users(db)
    if as_json:
        emit_json([u.as_dict() for u in found])
    elif not found:
        click.echo("no users yet; add the first admin: avctl users add NAME --role admin", err=True)
    else:
        _table(("NAME", "ROLE", "SITES", "STATE", "CREATED"),
               [(u.name, u.role, _scope(u.sites), "disabled" if u.disabled else "enabled", _when(u.created))
                for u in found])


@users_group.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), help="A new role.")
@click.option("--sites", metavar="A,B", help="New sites ('' for every site).")
@click.option("--password", "new_password", is_flag=True, help="Set a new password (asked for twice).")
@click.option("--password-stdin", is_flag=True, help="Set a new password read from stdin.")
@db_option
@handle_errors
def users_set(name: str, role: str | None, sites: str | None, new_password: bool, password_stdin: bool,
              db_url: str | None) -> None:
    """Change NAME's role, sites or password (a new password ends their browser sessions)."""
    if role is None and sites is None and not (new_password or password_stdin):
        raise UsageError("nothing to change", hint="give --role, --sites or --password")
    password = _read_password(password_stdin) if new_password or password_stdin else None
    with _database(db_url) as db:
        user = users.update(db, name, role=role, sites=_sites(sites), password=password)
        changed: dict[str, Any] = {"user": name}
        if role is not None:
            changed["role"] = role
        if sites is not None:
            changed["sites"] = list(user.sites)
        if password is not None:
            changed["password"] = "changed"
        audit.record(db, os_user(), "users.set", changed)
    click.echo(f"{user.name}: {user.role}, {_scope(user.sites)}" + ("; password changed" if password else ""))


def _switch(name: str, db_url: str | None, *, disabled: bool) -> None:
    with _database(db_url) as db:
        users.update(db, name, disabled=disabled)
        audit.record(db, os_user(), "users.disable" if disabled else "users.enable", {"user": name})
    click.echo(f"{name}: {'disabled (sessions ended; tokens refused)' if disabled else 'enabled'}")


@users_group.command("disable")
@click.argument("name")
@db_option
@handle_errors
def users_disable(name: str, db_url: str | None) -> None:
    """Disable NAME: their sessions end and their tokens are refused until enabled again."""
    _switch(name, db_url, disabled=True)


@users_group.command("enable")
@click.argument("name")
@db_option
@handle_errors
def users_enable(name: str, db_url: str | None) -> None:
    """Enable NAME again."""
    _switch(name, db_url, disabled=False)


@users_group.command("remove")
@click.argument("name")
@db_option
@handle_errors
def users_remove(name: str, db_url: str | None) -> None:
    """Remove NAME with their sessions and tokens (the audit log keeps what they did)."""
    with _database(db_url) as db:
        users.remove(db, name)
        audit.record(db, os_user(), "users.remove", {"user": name})
    click.echo(f"removed user {name}")


# --- tokens -----------------------------------------------------------------------------------------


def _expiry(text: str | None, now: float) -> float | None:
    """``90d``, ``12h``, ``2w``, ``1y`` from now; ``never`` or nothing: no expiry."""
    if text is None or text == "never":
        return None
    t = text.strip()
    if len(t) > 1 and t[-1] in _DURATION_UNITS and t[:-1].isdigit() and 0 < int(t[:-1]) <= 10_000:
        return now + int(t[:-1]) * _DURATION_UNITS[t[-1]]
    raise UsageError(f"--expires {text!r}: expected a duration", hint="e.g. 90d, 12h, 2w, 1y or never")


@click.group("tokens")
def tokens_group() -> None:
    """Server API tokens: create (shown once), list, revoke."""


@tokens_group.command("create")
@click.argument("name")
@click.option("--user", "user", required=True, help="Whose token it is (it acts with their role and sites).")
@click.option("--expires", metavar="DURATION", help="Expire after 90d, 12h, 2w, 1y [default: never].")
@db_option
@handle_errors
def tokens_create(name: str, user: str, expires: str | None, db_url: str | None) -> None:
    """Create API token NAME for a user and print it (once: it is stored only as a hash)."""
    now = time.time()
    until = _expiry(expires, now)
    with _database(db_url) as db:
        issued = tokens.create(db, user, name, until, clock=lambda: now)
        audit.record(db, os_user(), "tokens.create", {"user": user, "token": issued.info.id, "name": name})
    click.echo(f"avctl: token {issued.info.id} ({name}) for {user}, "
               f"{'expires ' + _when(until) if until else 'no expiry'}", err=True)
    click.echo("avctl: warning: this is the only time the token is shown; store it now "
               "(it is kept only as a hash)", err=True)
    # stdout carries the token alone, so `TOKEN=$(avctl tokens create ...)` works
    click.echo(issued.secret)


@tokens_group.command("list")
@click.option("--user", help="Only this user's tokens.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@handle_errors
def tokens_list(user: str | None, include_revoked: bool, as_json: bool, db_url: str | None) -> None:
    """List API tokens (their names and first characters, never the tokens)."""
    with _database(db_url) as db:
        found = tokens.list_tokens(db, user, include_revoked=include_revoked)
    if as_json:
        emit_json([t.as_dict() for t in found])
    elif not found:
        click.echo("no tokens", err=True)
    else:
        _table(("ID", "USER", "NAME", "PREFIX", "CREATED", "EXPIRES", "LAST USED", "REVOKED"),
               [(t.id, t.user, t.name, t.prefix + "...", _when(t.created), _when(t.expires), _when(t.last_used),
                 _when(t.revoked)) for t in found])


@tokens_group.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(min=1))
@db_option
@handle_errors
def tokens_revoke(token_id: int, db_url: str | None) -> None:
    """Revoke token ID (see 'avctl tokens list'): it is refused from now on."""
    with _database(db_url) as db:
        t = tokens.revoke(db, token_id)
        audit.record(db, os_user(), "tokens.revoke", {"user": t.user, "token": t.id, "name": t.name})
    click.echo(f"revoked token {t.id} ({t.name}) of {t.user}")
