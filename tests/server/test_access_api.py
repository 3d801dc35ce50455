"""The access layer over real HTTP: a uvicorn server on loopback, a real SQLite file, `requests`.

Logins, cookies, session expiry (on an injected clock), logout, CSRF and Origin checks, bearer
tokens, every role against every permission, site scopes, the login rate limit, disabled users.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import select

from avctl.db.models import ApiToken, User, WebSession
from avctl.server.access import sessions, tokens, users
from avctl.server.access.settings import AccessSettings
from avctl.server.model import PERMISSIONS, ROLES
from tests.server.access_fixtures import ACCESS_PERMISSIONS, AccessServer

PASSWORD = "correct horse battery staple"


def add_user(srv: AccessServer, name: str, role: str = "operator", sites: tuple[str, ...] = ()) -> None:
    users.add(srv.db, name, PASSWORD, role, sites)


def login(srv: AccessServer, name: str, password: str = PASSWORD) -> tuple[requests.Session, requests.Response]:
    """A browser-like client logged in as `name`, sending its CSRF token like the dashboard does."""
    client = requests.Session()
    r = client.post(f"{srv.url}/api/v1/auth/login", json={"name": name, "password": password}, timeout=30)
    if r.status_code == 200:
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client, r


def set_cookies(r: requests.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie header, as the browser gets it."""
    return {h.split("=", 1)[0]: h for h in r.raw.headers.getlist("set-cookie")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- logging in -------------------------------------------------------------------------------------


def test_login_sets_a_httponly_strict_session_cookie_and_returns_the_csrf_token(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice", "helpdesk", ("hq",))
    client, r = login(srv, "alice")
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "alice" and body["role"] == "helpdesk" and body["sites"] == ["hq"]
    assert body["permissions"] == sorted(PERMISSIONS["helpdesk"]) and len(body["csrf_token"]) >= 40
    cookies = set_cookies(r)
    session = cookies["avctl_session"].lower()
    assert "httponly" in session and "samesite=strict" in session and "path=/" in session
    assert "secure" not in session  # plain HTTP on loopback: a Secure cookie would never come back
    csrf = cookies["avctl_csrf"].lower()
    assert "httponly" not in csrf and "samesite=strict" in csrf  # the dashboard's JS reads this one
    assert client.cookies["avctl_csrf"] == body["csrf_token"]
    # the database keeps the session's hash, never the cookie
    cookie = client.cookies["avctl_session"]
    with srv.db.session() as s:
        assert s.scalars(select(WebSession.id_hash)).all() == [hashlib.sha256(cookie.encode()).hexdigest()]
    assert cookie.encode() not in srv.db_path.read_bytes()
    me = client.get(f"{srv.url}/api/v1/auth/whoami", timeout=30).json()
    assert me["user"] == "alice" and me["via"] == "session" and me["csrf_token"] == body["csrf_token"]


def test_secure_cookies_when_configured(access_server_factory: Callable[..., AccessServer]) -> None:
    srv = access_server_factory(secure_cookies=True)
    add_user(srv, "alice")
    _client, r = login(srv, "alice")
    cookies = set_cookies(r)
    assert all("secure" in cookies[c].lower() for c in ("avctl_session", "avctl_csrf"))


def test_bad_logins_get_one_generic_answer(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    answers = []
    for name, password in (("alice", "wrong password!!"), ("nobody", PASSWORD), ("ALICE ", "nope"),
                           ("bad name!", PASSWORD)):
        client, r = login(srv, name, password)
        assert r.status_code == 401 and "avctl_session" not in client.cookies
        assert password not in r.text
        answers.append(r.json()["detail"])
    assert len(set(answers)) == 1 and "password" in answers[0]
    with srv.db.session() as s:
        assert s.scalars(select(WebSession)).all() == []


def test_no_credentials_is_401_with_a_bearer_challenge(access_server: AccessServer) -> None:
    for path in ("/api/v1/auth/whoami", "/test/read", "/api/v1/tokens", "/api/v1/users"):
        r = requests.get(f"{access_server.url}{path}", timeout=30)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", path
    r = requests.post(f"{access_server.url}/test/act", timeout=30)
    assert r.status_code == 401 and access_server.effects == []


# --- session lifetime -------------------------------------------------------------------------------


def test_an_idle_session_expires(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    srv.clock.advance(3599)  # idle limit 3600 s: still alive, and the request counts as activity
    assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 200
    srv.clock.advance(3599)
    assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 200
    srv.clock.advance(3600)
    r = client.get(f"{srv.url}/test/read", timeout=30)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    with srv.db.session() as s:  # an ended session is deleted, not kept
        assert s.scalars(select(WebSession)).all() == []


def test_a_busy_session_still_ends_at_its_absolute_lifetime(access_server_factory: Callable[..., AccessServer]) -> None:
    srv = access_server_factory(session_idle=600, session_absolute=3000)
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    for _ in range(5):
        srv.clock.advance(590)
        assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 200
    srv.clock.advance(50)  # 3000 s after the login
    assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 401


def test_purge_deletes_ended_sessions_only(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    settings = AccessSettings(clock=srv.clock)
    login(srv, "alice")
    srv.clock.advance(3000)
    fresh, _ = login(srv, "alice")
    srv.clock.advance(700)  # the first is idle for 3700 s, the second for 700 s
    assert sessions.purge(srv.db, settings) == 1
    assert sessions.purge(srv.db, settings) == 0
    assert fresh.get(f"{srv.url}/test/read", timeout=30).status_code == 200


def test_logout_ends_the_session(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    cookie = client.cookies["avctl_session"]
    csrf = client.headers["X-CSRF-Token"]
    assert client.post(f"{srv.url}/api/v1/auth/logout", timeout=30).status_code == 204
    assert "avctl_session" not in client.cookies
    # the old cookie, replayed, is worth nothing
    r = requests.get(f"{srv.url}/test/read", cookies={"avctl_session": cookie}, headers={"X-CSRF-Token": csrf},
                     timeout=30)
    assert r.status_code == 401
    with srv.db.session() as s:
        assert s.scalars(select(WebSession)).all() == []


# --- CSRF and Origin --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_state_changing_cookie_requests_need_the_csrf_token(access_server: AccessServer, method: str) -> None:
    srv = access_server
    add_user(srv, "alice", "admin")
    add_user(srv, "bob", "viewer")
    client, _ = login(srv, "alice")
    good = client.headers.pop("X-CSRF-Token")
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": good[:-1]}, {"X-CSRF-Token": ""}):
        r = client.request(method, f"{srv.url}/test/act", headers=headers, timeout=30)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"], headers
        # a real route too: the user is not changed
        r = client.patch(f"{srv.url}/api/v1/users/bob", json={"role": "admin"}, headers=headers, timeout=30)
        assert r.status_code == 403
    assert srv.effects == [] and users.get(srv.db, "bob").role == "viewer"
    # reading needs none; with the token the same request goes through
    assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 200
    assert client.request(method, f"{srv.url}/test/act", headers={"X-CSRF-Token": good}, timeout=30).status_code == 200
    assert srv.effects == [("act", "alice")]


def test_another_sessions_csrf_token_is_refused(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    add_user(srv, "bob")
    alice, _ = login(srv, "alice")
    bob, _ = login(srv, "bob")
    r = alice.post(f"{srv.url}/test/act", headers={"X-CSRF-Token": bob.headers["X-CSRF-Token"]}, timeout=30)
    assert r.status_code == 403 and srv.effects == []


def test_a_foreign_origin_is_refused_even_with_the_csrf_token(
        access_server_factory: Callable[..., AccessServer]) -> None:
    srv = access_server_factory(trusted_origins=frozenset({"https://avctl.example.com"}))
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    port = srv.url.rsplit(":", 1)[1]
    for origin in ("https://evil.example", "null", f"http://127.0.0.2:{port}", f"https://127.0.0.1:{port}",
                   "http://127.0.0.1"):
        r = client.post(f"{srv.url}/test/act", headers={"Origin": origin}, timeout=30)
        assert r.status_code == 403 and "Origin" in r.json()["detail"], origin
    assert srv.effects == []
    for origin in (srv.url, f"HTTP://127.0.0.1:{port}", "https://avctl.example.com:443"):
        assert client.post(f"{srv.url}/test/act", headers={"Origin": origin}, timeout=30).status_code == 200
    assert len(srv.effects) == 3
    # nor may another site log a browser in (into an account of its choosing)
    r = requests.post(f"{srv.url}/api/v1/auth/login", json={"name": "alice", "password": PASSWORD},
                      headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 403 and "avctl_session" not in r.cookies


# --- bearer tokens ----------------------------------------------------------------------------------


def test_a_bearer_token_works_without_csrf_and_is_stored_hashed(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "bot", "operator", ("hq", "lab"))
    issued = tokens.create(srv.db, "bot", "ci", clock=srv.clock)
    assert issued.secret.startswith("avctl_") and len(issued.secret) == 49
    r = requests.post(f"{srv.url}/test/act_disruptive", headers=bearer(issued.secret), timeout=30)
    assert r.status_code == 200 and srv.effects == [("act_disruptive", "bot")]
    me = requests.get(f"{srv.url}/test/me", headers=bearer(issued.secret), timeout=30).json()
    assert me == {"user": "bot", "role": "operator", "sites": ["hq", "lab"], "via": "token", "audit_name": "token:bot"}
    who = requests.get(f"{srv.url}/api/v1/auth/whoami", headers=bearer(issued.secret), timeout=30).json()
    assert who["via"] == "token" and who["csrf_token"] is None
    assert issued.secret.encode() not in srv.db_path.read_bytes()
    with srv.db.session() as s:
        row = s.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
        assert row.prefix == issued.secret[:12]


def test_last_used_is_written_at_most_once_a_minute(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "bot")
    secret = tokens.create(srv.db, "bot", "ci", clock=srv.clock).secret
    start = srv.clock.now

    def last_used() -> float | None:
        return tokens.list_tokens(srv.db, "bot")[0].last_used

    assert last_used() is None
    for step in range(5):
        srv.clock.advance(10 if step else 0)
        assert requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30).status_code == 200
    assert last_used() == start
    srv.clock.advance(20)  # 60 s after the first use
    requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30)
    assert last_used() == start + 60


@pytest.mark.parametrize("header", [
    "Bearer avctl_" + "A" * 43,  # well-formed, unknown
    "Bearer avctl_short",
    "Bearer " + "x" * 5000,
    "Bearer ",
    "Basic YWxpY2U6cGFzc3dvcmQ=",
    "avctl_" + "A" * 43,
])
def test_bad_tokens_are_401(access_server: AccessServer, header: str) -> None:
    r = requests.post(f"{access_server.url}/test/read", headers={"Authorization": header}, timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert access_server.effects == []


def test_expired_and_revoked_tokens_are_refused(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "bot")
    short = tokens.create(srv.db, "bot", "short", srv.clock.now + 3600, clock=srv.clock).secret
    other = tokens.create(srv.db, "bot", "other", clock=srv.clock)
    assert requests.get(f"{srv.url}/test/read", headers=bearer(short), timeout=30).status_code == 200
    srv.clock.advance(3600)
    assert requests.get(f"{srv.url}/test/read", headers=bearer(short), timeout=30).status_code == 401
    assert requests.get(f"{srv.url}/test/read", headers=bearer(other.secret), timeout=30).status_code == 200
    tokens.revoke(srv.db, other.info.id, clock=srv.clock)
    assert requests.get(f"{srv.url}/test/read", headers=bearer(other.secret), timeout=30).status_code == 401


def test_a_bearer_token_wins_over_a_cookie(access_server: AccessServer) -> None:
    """A request with both is judged by its token: a forged-looking cookie request cannot hide behind it."""
    srv = access_server
    add_user(srv, "alice", "admin")
    add_user(srv, "viewer1", "viewer")
    client, _ = login(srv, "alice")
    secret = tokens.create(srv.db, "viewer1", "ci").secret
    r = client.post(f"{srv.url}/test/admin", headers=bearer(secret), timeout=30)
    assert r.status_code == 403 and srv.effects == []


# --- roles and scopes -------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["token", "session"])
def test_every_role_against_every_permission(access_server: AccessServer, via: str) -> None:
    srv = access_server
    for role in ROLES:
        add_user(srv, f"u-{role}", role)
        if via == "token":
            client = requests.Session()
            client.headers.update(bearer(tokens.create(srv.db, f"u-{role}", "t").secret))
        else:
            client, _ = login(srv, f"u-{role}")
        for permission in ACCESS_PERMISSIONS:
            allowed = permission in PERMISSIONS[role]
            for method in ("GET", "POST"):
                r = client.request(method, f"{srv.url}/test/{permission}", timeout=30)
                if allowed:
                    assert r.status_code == 200, (role, permission, method)
                else:
                    assert r.status_code == 403, (role, permission, method)
                    assert r.json()["detail"] == f"your role ({role}) may not {permission}"
        changed = sorted(p for p, user in srv.effects if user == f"u-{role}")
        assert changed == sorted(PERMISSIONS[role]), role  # a refused request changed nothing
    assert PERMISSIONS["viewer"] == {"read"}


def test_site_scopes_reach_the_principal(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "hq-desk", "helpdesk", ("hq", "annex"))
    add_user(srv, "boss", "operator")
    hq, _ = login(srv, "hq-desk")
    assert hq.get(f"{srv.url}/test/me", timeout=30).json()["sites"] == ["annex", "hq"]
    boss, _ = login(srv, "boss")
    assert boss.get(f"{srv.url}/test/me", timeout=30).json()["sites"] == []
    users.update(srv.db, "hq-desk", sites=["lab"])  # a change applies to the running session
    assert hq.get(f"{srv.url}/test/me", timeout=30).json()["sites"] == ["lab"]


# --- disabled users ---------------------------------------------------------------------------------


def test_a_disabled_user_is_refused_everywhere(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "admin1", "admin")
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    secret = tokens.create(srv.db, "alice", "ci").secret
    users.update(srv.db, "alice", disabled=True)
    assert client.get(f"{srv.url}/test/read", timeout=30).status_code == 401
    assert requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30).status_code == 401
    _c, r = login(srv, "alice")
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    users.update(srv.db, "alice", disabled=False)
    assert requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30).status_code == 200
    assert login(srv, "alice")[1].status_code == 200


# --- the login rate limit ---------------------------------------------------------------------------


def test_five_failures_lock_the_name_even_for_the_right_password(access_server: AccessServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    srv = access_server
    add_user(srv, "alice")
    checked: list[str] = []
    real_verify = users.verify

    def counting_verify(*args: object, **kwargs: object) -> object:
        checked.append("x")
        return real_verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(users, "verify", counting_verify)
    for _ in range(5):
        assert login(srv, "alice", "wrong password!")[1].status_code == 401
    assert len(checked) == 5
    srv.clock.advance(100)
    for password in (PASSWORD, "wrong password!"):
        _c, r = login(srv, "Alice", password)  # the name's case does not open a second counter
        assert r.status_code == 429 and r.headers["Retry-After"] == "800", password
    assert len(checked) == 5  # refused without looking at the password
    srv.clock.advance(799)
    assert login(srv, "alice")[1].status_code == 429
    srv.clock.advance(1)  # the first failure leaves the 900 s window
    assert login(srv, "alice")[1].status_code == 200


def test_attempts_sent_at_once_get_no_more_guesses(access_server: AccessServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty wrong passwords sent together: five are checked, fifteen refused, even while the five
    are still being checked (each attempt counts before its password is looked at)."""
    import threading

    srv = access_server
    add_user(srv, "alice")
    state = threading.Condition()
    checking = 0
    release = False
    real_verify = users.verify

    def held_verify(*args: object, **kwargs: object) -> object:
        nonlocal checking
        with state:
            checking += 1
            state.notify_all()
            assert state.wait_for(lambda: release, timeout=60)
        return real_verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(users, "verify", held_verify)
    statuses: list[int] = []

    def attempt() -> None:
        status = login(srv, "alice", "wrong password!")[1].status_code
        with state:
            statuses.append(status)
            state.notify_all()

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    with state:
        # five wait inside the password check, fifteen were refused without one
        assert state.wait_for(lambda: statuses.count(429) == 15 and checking == 5, timeout=120), (statuses, checking)
        release = True
        state.notify_all()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [401] * 5 + [429] * 15 and checking == 5


def test_a_good_login_clears_the_names_failures(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    for _ in range(2):
        for _ in range(4):
            assert login(srv, "alice", "wrong password!")[1].status_code == 401
        assert login(srv, "alice")[1].status_code == 200


def test_failures_from_one_address_lock_it_for_every_name(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    for i in range(20):  # twenty names, one failure each: only the address's counter reaches its limit
        assert login(srv, f"guess{i}", "wrong password!")[1].status_code == 401
    _c, r = login(srv, "alice")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 900
    srv.clock.advance(900)
    assert login(srv, "alice")[1].status_code == 200


def test_unknown_names_are_counted_too(access_server: AccessServer) -> None:
    """A lock must not tell an attacker which names exist: unknown names lock the same way."""
    srv = access_server
    for _ in range(5):
        login(srv, "ghost", "whatever it is")
    assert login(srv, "ghost", "whatever it is")[1].status_code == 429


# --- passwords --------------------------------------------------------------------------------------


def test_passwords_are_argon2id_and_rehashed_when_the_parameters_change(access_server: AccessServer,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    srv = access_server
    add_user(srv, "alice")  # with the fixture's cheap parameters
    with srv.db.session() as s:
        old = s.scalars(select(User.password_hash)).one()
    assert old.startswith("$argon2id$") and "m=8192,t=1,p=1" in old
    monkeypatch.setattr(users, "HASHER", users.PasswordHasher())  # the real parameters
    assert login(srv, "alice")[1].status_code == 200
    with srv.db.session() as s:
        new = s.scalars(select(User.password_hash)).one()
    assert new.startswith("$argon2id$") and "m=65536,t=3,p=4" in new and new != old
    assert login(srv, "alice")[1].status_code == 200
    assert PASSWORD.encode() not in srv.db_path.read_bytes()


def test_settings_refuse_nonsense() -> None:
    for bad in ({"session_idle": 0}, {"session_absolute": -1}, {"login_window": float("nan")},
                {"login_user_failures": 0}, {"login_ip_failures": float("inf")}):
        with pytest.raises(ValueError, match="positive"):
            AccessSettings(**bad)  # type: ignore[arg-type]


def test_password_rules(access_server: AccessServer) -> None:
    for name, password, role, sites in (("alice", "short", "admin", ()), ("Alice", PASSWORD, "admin", ()),
                                        ("a b", PASSWORD, "admin", ()), ("alice", PASSWORD, "root", ()),
                                        ("alice", "x" * 2000, "admin", ()), ("alice", PASSWORD, "admin", ("a,b",))):
        with pytest.raises(users.AccessError):
            users.add(access_server.db, name, password, role, sites)
    assert users.list_users(access_server.db) == []
