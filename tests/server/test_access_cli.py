"""`avctl users` and `avctl tokens` as real processes on a real SQLite file: the bootstrap of the
first admin, tokens shown once and stored only as hashes, passwords never in output or the file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from tests.server.access_fixtures import AccessServer

AVCTL = str(Path(sys.executable).parent / "avctl")
PASSWORD = "a long and secret passphrase"


def run(*args: str, stdin: str = "", db: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if db is not None:
        env["AVCTL_DB"] = str(db)
    return subprocess.run([AVCTL, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env)


def db_bytes(path: Path) -> bytes:
    """The database file with its WAL: what a thief of the directory would get."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_first_admin_and_the_users_lifecycle(tmp_path: Path) -> None:
    db = tmp_path / "avctl.db"
    first = run("users", "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n", db=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "added user root (admin, every site)\n" and first.stderr == ""
    r = run("users", "add", "desk", "--role", "helpdesk", "--sites", "hq,annex", "--password-stdin",
            stdin=PASSWORD + "2\n", db=db)
    assert r.returncode == 0 and "(helpdesk, annex,hq)" in r.stdout
    listed = run("users", "list", db=db)
    assert listed.stdout.splitlines()[0].split() == ["NAME", "ROLE", "SITES", "STATE", "CREATED"]
    assert "desk  helpdesk  annex,hq    enabled" in listed.stdout
    data = json.loads(run("users", "list", "--json", db=db).stdout)
    assert [(u["name"], u["role"], u["sites"], u["disabled"]) for u in data] == [
        ("desk", "helpdesk", ["annex", "hq"], False), ("root", "admin", [], False)]
    assert run("users", "set", "desk", "--role", "operator", "--sites", "", db=db).stdout == \
        "desk: operator, every site\n"
    r = run("users", "set", "desk", "--password-stdin", stdin="brand new passphrase\n", db=db)
    assert r.returncode == 0 and "password changed" in r.stdout
    assert run("users", "disable", "desk", db=db).returncode == 0
    assert json.loads(run("users", "list", "--json", db=db).stdout)[0]["disabled"] is True
    assert run("users", "enable", "desk", db=db).returncode == 0
    assert run("users", "remove", "desk", db=db).stdout == "removed user desk\n"
    everything = first.stdout + first.stderr + r.stdout + r.stderr + listed.stdout
    assert PASSWORD not in everything
    raw = db_bytes(db)
    for secret in (PASSWORD, PASSWORD + "2", "brand new passphrase"):
        assert secret.encode() not in raw
    assert b"$argon2id$v=19$m=65536,t=3,p=4$" in raw  # the real parameters, not the tests' cheap ones


def test_cli_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    db = tmp_path / "avctl.db"
    run("users", "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD, db=db)
    cases = {
        ("users", "remove", "root"): "root is the last enabled admin",
        ("users", "disable", "root"): "root is the last enabled admin",
        ("users", "set", "ghost", "--role", "viewer"): "no user 'ghost'",
        ("users", "set", "root"): "nothing to change",
        ("users", "add", "Bad Name", "--role", "viewer", "--password-stdin"): "not a usable user name",
        ("users", "add", "root", "--role", "viewer", "--password-stdin"): "user 'root' exists",
        ("users", "add", "x", "--role", "viewer"): "no password given and no terminal",
        ("tokens", "create", "ci", "--user", "ghost"): "no user 'ghost'",
        ("tokens", "create", "ci", "--user", "root", "--expires", "soon"): "--expires 'soon'",
        ("tokens", "revoke", "7"): "no active token 7",
    }
    for args, message in cases.items():
        r = run(*args, stdin=PASSWORD + "\n", db=db)
        assert r.returncode in (1, 2), args
        lines = r.stderr.splitlines()
        assert lines[0].startswith("avctl: error: ") and message in lines[0], (args, r.stderr)
        assert all(line.startswith(("avctl: error: ", "avctl: hint: ")) for line in lines), r.stderr
        assert PASSWORD not in r.stdout + r.stderr and "Traceback" not in r.stderr
    r = run("users", "add", "x", "--role", "root", "--password-stdin", stdin=PASSWORD, db=db)
    assert r.returncode == 2 and "'root' is not one of" in r.stderr
    r = run("users", "add", "x", "--role", "viewer", "--password-stdin", stdin="x1y2z3\n", db=db)
    assert r.returncode == 2 and "too short" in r.stderr and "x1y2z3" not in r.stdout + r.stderr


def test_without_an_admin_the_cli_says_how_to_bootstrap(tmp_path: Path) -> None:
    r = run("users", "list", db=tmp_path / "avctl.db")
    assert r.returncode == 0 and "avctl users add NAME --role admin" in r.stderr
    r = run("users", "add", "v", "--role", "viewer", "--password-stdin", stdin=PASSWORD, db=tmp_path / "avctl.db")
    assert r.returncode == 0 and "there is no admin yet" in r.stderr


def test_the_default_database_is_in_avctl_home(avctl_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AVCTL_DB"}
    r = subprocess.run([AVCTL, "users", "add", "root", "--role", "admin", "--password-stdin"], input=PASSWORD,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert (avctl_home / "avctl.db").exists()


def test_a_token_is_shown_once_stored_hashed_and_works_until_revoked(
        tmp_path: Path, access_server_factory: Callable[..., AccessServer]) -> None:
    db = tmp_path / "avctl.db"
    run("users", "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD, db=db)
    run("users", "add", "bot", "--role", "viewer", "--sites", "hq", "--password-stdin", stdin=PASSWORD, db=db)
    made = run("tokens", "create", "ci", "--user", "bot", "--expires", "90d", db=db)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert made.stdout == secret + "\n" and secret.startswith("avctl_") and len(secret) == 49
    assert "only time the token is shown" in made.stderr and secret not in made.stderr
    raw = db_bytes(db)
    assert secret.encode() not in raw and secret[6:].encode() not in raw
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw
    listed = run("tokens", "list", db=db)
    assert secret not in listed.stdout and f"{secret[:12]}..." in listed.stdout and " bot " in listed.stdout
    data = json.loads(run("tokens", "list", "--user", "bot", "--json", db=db).stdout)
    assert [(t["id"], t["name"], t["user"]) for t in data] == [(1, "ci", "bot")] and secret not in json.dumps(data)
    assert data[0]["expires"] - data[0]["created"] == 90 * 86400
    assert json.loads(run("tokens", "list", "--user", "root", "--json", db=db).stdout) == []
    # the server on the same file takes it...
    srv = access_server_factory(db_path=db)
    me = requests.get(f"{srv.url}/test/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert me.status_code == 200 and me.json()["sites"] == ["hq"] and me.json()["via"] == "token"
    # ...until it is revoked
    r = run("tokens", "revoke", "1", db=db)
    assert r.returncode == 0 and r.stdout == "revoked token 1 (ci) of bot\n"
    assert requests.get(f"{srv.url}/test/me", headers={"Authorization": f"Bearer {secret}"},
                        timeout=30).status_code == 401
    assert run("tokens", "list", "--json", db=db).stdout.strip() == "[]"
    assert json.loads(run("tokens", "list", "--all", "--json", db=db).stdout)[0]["revoked"] is not None
    # the audit log says who did what, never the token
    from avctl.db import open_database

    database = open_database(str(db))
    try:
        from sqlalchemy import select

        from avctl.db.models import AuditRow

        with database.session() as s:
            actions = [(r.action, r.params) for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]
    finally:
        database.close()
    assert [a for a, _ in actions] == ["users.add", "users.add", "tokens.create", "tokens.revoke"]
    assert secret not in json.dumps(actions) and PASSWORD not in json.dumps(actions)


class Terminal:
    """The far end of a pty: what the program wrote, read up to what we wait for."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.text = ""
        self.pos = 0

    def expect(self, wanted: str) -> None:
        import select

        while wanted not in self.text[self.pos:]:
            # a generous deadline keeps a hang finite; nothing here races a timer
            ready, _, _ = select.select([self.fd], [], [], 60.0)
            assert ready, f"no {wanted!r} on the terminal; got {self.text!r}"
            try:
                chunk = os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # the program ended and its side closed
                chunk = ""
            assert chunk, f"the terminal closed before {wanted!r}; got {self.text!r}"
            self.text += chunk
        self.pos = self.text.index(wanted, self.pos) + len(wanted)

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())


def test_on_a_terminal_the_password_is_asked_twice_and_not_echoed(tmp_path: Path) -> None:
    import pty

    db = tmp_path / "avctl.db"
    master, slave = pty.openpty()
    proc = subprocess.Popen([AVCTL, "users", "add", "root", "--role", "admin"], stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, "AVCTL_DB": str(db)}, close_fds=True)
    os.close(slave)
    term = Terminal(master)
    try:
        term.expect("Password:")
        term.type(PASSWORD)
        term.expect("Repeat for confirmation:")
        term.type(PASSWORD + "x")  # a typo: asked again from the start
        term.expect("do not match")
        term.expect("Password:")
        term.type(PASSWORD)
        term.expect("Repeat for confirmation:")
        term.type(PASSWORD)
        term.expect("added user root (admin, every site)")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert PASSWORD not in term.text
    assert PASSWORD.encode() not in db_bytes(db)
    r = run("users", "list", "--json", db=db)
    assert [u["name"] for u in json.loads(r.stdout)] == ["root"]


def test_a_broken_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database\n" * 100)
    r = run("users", "list", db=junk)
    assert r.returncode == 1 and r.stderr.splitlines()[0].endswith("DatabaseError: file is not a database")
    assert "Traceback" not in r.stderr
    r = run("tokens", "list", "--db", "postgresql://avctl:pg-s3cret@127.0.0.1:1/avctl")
    assert r.returncode == 1 and "cannot open the database" in r.stderr and "Connection refused" in r.stderr
    assert "pg-s3cret" not in r.stderr and "u:***@" not in r.stderr and "avctl:***@" in r.stderr
