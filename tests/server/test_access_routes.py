"""The token and user routes over real HTTP: one's own tokens, admins manage users, all audited."""

from __future__ import annotations

import json

import requests
from sqlalchemy import select

from avctl.db.models import AuditRow
from avctl.server.access import tokens, users
from tests.server.access_fixtures import AccessServer
from tests.server.test_access_api import PASSWORD, add_user, bearer, login


def audit_rows(srv: AccessServer) -> list[tuple[str, str, dict[str, object]]]:
    with srv.db.session() as s:
        return [(r.user, r.action, json.loads(r.params)) for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


def test_a_user_makes_lists_and_revokes_their_own_tokens(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice", "viewer")
    add_user(srv, "bob", "viewer")
    client, _ = login(srv, "alice")
    r = client.post(f"{srv.url}/api/v1/tokens", json={"name": "laptop", "expires_in": 86400}, timeout=30)
    assert r.status_code == 201
    made = r.json()
    secret = made["token"]
    assert secret.startswith("avctl_") and "shown once" in made["note"]
    assert made["expires"] == srv.clock.now + 86400 and made["user"] == "alice"
    assert secret.encode() not in srv.db_path.read_bytes()
    listed = client.get(f"{srv.url}/api/v1/tokens", timeout=30).json()
    assert [t["name"] for t in listed] == ["laptop"] and secret not in json.dumps(listed)
    assert listed[0]["prefix"] == secret[:12]
    # the token works, and cannot make another token (a leaked token must not outlive its revocation)
    assert requests.get(f"{srv.url}/api/v1/auth/whoami", headers=bearer(secret), timeout=30).json()["user"] == "alice"
    r = requests.post(f"{srv.url}/api/v1/tokens", json={"name": "more"}, headers=bearer(secret), timeout=30)
    assert r.status_code == 403 and len(tokens.list_tokens(srv.db)) == 1
    # bob neither sees nor revokes alice's token
    bob, _ = login(srv, "bob")
    assert bob.get(f"{srv.url}/api/v1/tokens", timeout=30).json() == []
    assert bob.delete(f"{srv.url}/api/v1/tokens/{made['id']}", timeout=30).status_code == 404
    assert requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30).status_code == 200
    assert client.delete(f"{srv.url}/api/v1/tokens/{made['id']}", timeout=30).status_code == 204
    assert requests.get(f"{srv.url}/test/read", headers=bearer(secret), timeout=30).status_code == 401
    assert [(who, action) for who, action, _ in audit_rows(srv)] == [("web:alice", "tokens.create"),
                                                                     ("web:alice", "tokens.revoke")]
    assert secret not in json.dumps(audit_rows(srv))


def test_token_route_input_is_checked(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "alice")
    client, _ = login(srv, "alice")
    for body in ({"name": ""}, {"name": "x" * 65}, {"name": "ok", "expires_in": -5}, {"name": "ok", "expires_in": 1e12},
                 {"name": "bad\nname"}):
        assert client.post(f"{srv.url}/api/v1/tokens", json=body, timeout=30).status_code in (400, 422), body
    assert client.post(f"{srv.url}/api/v1/tokens", json={"name": "ci"}, timeout=30).status_code == 201
    r = client.post(f"{srv.url}/api/v1/tokens", json={"name": "ci"}, timeout=30)
    assert r.status_code == 409 and "already has a token" in r.json()["detail"]
    assert len(tokens.list_tokens(srv.db)) == 1


def test_admins_manage_users(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "root", "admin")
    admin, _ = login(srv, "root")
    r = admin.post(f"{srv.url}/api/v1/users",
                   json={"name": "carol", "password": PASSWORD, "role": "helpdesk", "sites": ["hq"]}, timeout=30)
    assert r.status_code == 201 and r.json()["sites"] == ["hq"] and "password" not in r.text
    assert admin.post(f"{srv.url}/api/v1/users", json={"name": "carol", "password": PASSWORD, "role": "viewer"},
                      timeout=30).status_code == 409
    assert admin.post(f"{srv.url}/api/v1/users", json={"name": "dave", "password": "short", "role": "viewer"},
                      timeout=30).status_code == 400
    listed = admin.get(f"{srv.url}/api/v1/users", timeout=30).json()
    assert [u["name"] for u in listed] == ["carol", "root"] and "hash" not in json.dumps(listed)
    carol, _ = login(srv, "carol")
    r = admin.patch(f"{srv.url}/api/v1/users/carol", json={"role": "operator", "sites": [], "password": PASSWORD + "!"},
                    timeout=30)
    assert r.status_code == 200 and r.json()["role"] == "operator" and r.json()["sites"] == []
    # a new password ends carol's sessions
    assert carol.get(f"{srv.url}/test/read", timeout=30).status_code == 401
    assert login(srv, "carol", PASSWORD + "!")[1].status_code == 200
    # the last admin cannot demote, disable or remove themselves
    for call in (lambda: admin.patch(f"{srv.url}/api/v1/users/root", json={"role": "viewer"}, timeout=30),
                 lambda: admin.patch(f"{srv.url}/api/v1/users/root", json={"disabled": True}, timeout=30),
                 lambda: admin.delete(f"{srv.url}/api/v1/users/root", timeout=30)):
        r = call()
        assert r.status_code == 409 and "last enabled admin" in r.json()["detail"]
    assert admin.delete(f"{srv.url}/api/v1/users/carol", timeout=30).status_code == 204
    assert admin.delete(f"{srv.url}/api/v1/users/carol", timeout=30).status_code == 404
    assert [u.name for u in users.list_users(srv.db)] == ["root"]
    rows = audit_rows(srv)
    assert [(who, action) for who, action, _ in rows] == [("web:root", "users.add"), ("web:root", "users.set"),
                                                          ("web:root", "users.remove")]
    assert rows[1][2]["password"] == "changed" and PASSWORD not in json.dumps(rows)


def test_only_admins_reach_the_user_routes(access_server: AccessServer) -> None:
    srv = access_server
    add_user(srv, "root", "admin")
    add_user(srv, "op", "operator")
    client, _ = login(srv, "op")
    assert client.get(f"{srv.url}/api/v1/users", timeout=30).status_code == 403
    r = client.post(f"{srv.url}/api/v1/users", json={"name": "evil", "password": PASSWORD, "role": "admin"},
                    timeout=30)
    assert r.status_code == 403 and r.json()["detail"] == "your role (operator) may not admin"
    assert client.patch(f"{srv.url}/api/v1/users/op", json={"role": "admin"}, timeout=30).status_code == 403
    assert client.delete(f"{srv.url}/api/v1/users/root", timeout=30).status_code == 403
    assert [(u.name, u.role) for u in users.list_users(srv.db)] == [("op", "operator"), ("root", "admin")]
    assert audit_rows(srv) == []
