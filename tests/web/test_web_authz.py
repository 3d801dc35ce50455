"""The dashboard's authorization matrix: every page route x every role, signed out, and without the
CSRF token, against the real server process.

`ROUTES` says per route which permission its first gate needs (finer checks, such as disruptive
actions or a site outside the user's scope, are each page's own tests). The table is checked against
the dashboard's routers: a new route without a row fails. Every refused state-changing request is
checked to have changed nothing: no job, no audit row, no alert touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from fastapi.routing import iter_route_contexts

from avctl.server.model import PERMISSIONS
from avctl.server.web import live
from avctl.server.web.pages import ROUTERS

from ..server.harness import db_rows
from .dashboard import USERS, Dashboard, password_of

#: (method, route) -> the permission the route needs ("public": none; "read" is every signed-in role)
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/login"): "public",
    ("GET", "/ui/live"): "read",
    ("GET", "/"): "read",
    ("GET", "/sites"): "read",
    ("GET", "/sites/{site:path}"): "read",
    ("POST", "/sites/room-action"): "act",
    ("GET", "/devices"): "read",
    ("GET", "/devices.csv"): "read",
    ("POST", "/views"): "read",
    ("GET", "/views/{view_id}"): "read",
    ("DELETE", "/views/{view_id}"): "read",
    ("GET", "/devices/{name}"): "read",
    ("GET", "/devices/{name}/status"): "read",
    ("GET", "/devices/{name}/downloads"): "read",
    ("GET", "/devices/{name}/downloads/{filename}"): "read",
    ("GET", "/devices/{name}/actions/{action_id}"): "read",
    ("POST", "/devices/{name}/actions/{action_id}/preview"): "act",
    ("POST", "/devices/{name}/actions/{action_id}/run"): "act",
    ("POST", "/devices/{name}/pin"): "admin",
    ("GET", "/jobs"): "read",
    ("GET", "/jobs/{job_id}"): "read",
    ("GET", "/jobs/{job_id}/events"): "read",
    ("POST", "/jobs/{job_id}/resume"): "act",
    ("GET", "/jobs/new"): "act",
    ("POST", "/jobs/new"): "act",
    ("POST", "/jobs"): "act",
    ("GET", "/alerts"): "read",
    ("POST", "/alerts/{alert_id}/ack"): "alerts",
    ("POST", "/alerts/{alert_id}/silence"): "alerts",
    ("POST", "/alerts/{alert_id}/unsilence"): "alerts",
    ("GET", "/alerts/rules"): "read",
    ("POST", "/alerts/rules"): "admin",
    ("GET", "/config"): "read",
    ("POST", "/config/check"): "act_disruptive",
    ("GET", "/audit"): "read",
    ("GET", "/audit/export.csv"): "read",
    ("GET", "/audit/export.json"): "read",
    ("GET", "/admin"): "admin",
    ("POST", "/admin/users"): "admin",
    ("POST", "/admin/users/{user}"): "admin",
    ("POST", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens/{token_id}/revoke"): "admin",
}

#: what each path parameter is filled with: things that exist in the dashboard's fleet, in every scope
FILL = {"name": "hq-board-codec", "action_id": "audio_volume_set", "filename": "none.log", "site": "hq",
        "job_id": "1", "alert_id": "1", "view_id": "1", "token_id": "1", "user": "viewer", "room": "boardroom"}
ROLES = [(user, role) for user, role, sites in USERS if not sites]


def discovered() -> set[tuple[str, str]]:
    found = set()
    for router in (*ROUTERS, live.router):
        for rc in iter_route_contexts(router.routes):
            for method in rc.methods or ():
                if method != "HEAD":
                    assert rc.path is not None
                    found.add((method, rc.path))
    return found


def url_of(route: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: FILL[m.group(1)], route)


def test_every_route_has_a_row() -> None:
    assert discovered() == set(ROUTES), "a dashboard route without a row in ROUTES (or a row without a route)"


def session_of(dash: Dashboard, user: str) -> tuple[requests.Session, str]:
    s = requests.Session()
    s.trust_env = False
    r = s.post(dash.url("/api/v1/auth/login"), json={"name": user, "password": password_of(user)}, timeout=30)
    r.raise_for_status()
    return s, r.json()["csrf_token"]


def world(dash: Dashboard) -> tuple[object, ...]:
    """What a refused request must not change: jobs, audit rows, alerts' handling, users, tokens."""
    db = f"sqlite:///{dash.home / 'avctl.db'}"
    return tuple(tuple(db_rows(db, sql)) for sql in (
        "select count(*), max(id) from jobs", "select count(*), max(id) from audit",
        "select count(*), max(acked_at), max(silenced_until) from alerts",
        "select count(*) from users", "select count(*) from api_tokens"))


def send(s: requests.Session, dash: Dashboard, method: str, route: str, headers: dict[str, str]) -> requests.Response:
    # a GET is read whole except the live stream, of which the status line is enough
    return s.request(method, dash.url(url_of(route)), headers=headers, data={} if method != "GET" else None,
                     allow_redirects=False, timeout=60, stream=True)


@pytest.fixture(scope="module")
def sessions(dashboard: Dashboard) -> Iterator[dict[str, tuple[requests.Session, str]]]:
    made = {user: session_of(dashboard, user) for user, _role in ROLES}
    yield made
    for s, _csrf in made.values():
        s.close()


@pytest.mark.parametrize(("method", "route"), sorted(ROUTES))
def test_route_refuses_what_the_role_may_not(method: str, route: str, dashboard: Dashboard,
                                             sessions: dict[str, tuple[requests.Session, str]]) -> None:
    perm = ROUTES[method, route]
    anonymous = requests.Session()
    anonymous.trust_env = False
    r = send(anonymous, dashboard, method, route, {})
    if perm == "public":
        assert r.status_code == 200, (method, route, r.status_code)
        return
    # signed out: to the login page, nothing done
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (method, route, r.status_code)
    for user, role in ROLES:
        s, csrf = sessions[user]
        if method != "GET":
            before = world(dashboard)
            r = send(s, dashboard, method, route, {})  # the session cookie, no CSRF token
            assert r.status_code == 403, (method, route, user, "without the CSRF token", r.status_code)
            assert world(dashboard) == before, (method, route, user, "refused without CSRF but changed")
        before = world(dashboard)
        r = send(s, dashboard, method, route, {"X-CSRF-Token": csrf} if method != "GET" else {})
        if perm in PERMISSIONS[role]:  # type: ignore[index]
            assert r.status_code != 403, (method, route, user, r.status_code)
        else:
            assert r.status_code == 403, (method, route, user, r.status_code)
            assert world(dashboard) == before, (method, route, user, "refused but changed")
        r.close()
