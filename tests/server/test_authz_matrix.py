"""The authorization matrix: every endpoint x every role x in-scope / out-of-scope / missing target,
against the real app (`authz_server`: the runtime's wiring, real users, tokens and sessions).

The expectation table (`VARIANTS`) says per endpoint which permission it needs and what sites mean
for it; `expected` turns that into a status per caller and target. The table is checked against the
app's routes (a new endpoint without a row fails) and against the permission table in docs/server.md.
Every refused request is checked to have changed no row and sent nothing to any device.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.routing import iter_route_contexts

from avctl.config.store import SqlSnapshotStore
from avctl.db.models import Alert
from avctl.fleet.jobs import create_job
from avctl.fleet.runner import RunOptions
from avctl.fleet.verbs import ActionTask
from avctl.schedule.store import ScheduleStore
from avctl.server.access import tokens, users
from avctl.server.access.deps import SAFE_METHODS
from avctl.server.model import PERMISSIONS, ROLES

from .authz_fixtures import AUTHZ_PASSWORD, HTTP, IN_SITE, AuthzServer
from .harness import sse_events

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"
#: in a scoped caller's answers, no device of the other site may appear
OUT_DEVICE_RE = re.compile(r"hq-codec-\d")


# --- who asks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    user: str
    role: str
    sites: tuple[str, ...]
    via: str  # token | session
    headers: dict[str, str] = field(hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.user}/{self.via}"

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]  # type: ignore[index]


# --- the expectation table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    #: "public": no login; "any": any signed-in user; otherwise the permission checked first
    perm: str
    #: what sites mean: "object" (a target outside your sites answers as a missing one does),
    #: "selection" (read among your sites' devices), "list" (answers hold your sites only),
    #: "own" (your own tokens only), "none"
    scope: str = "none"
    #: checked once the target is known: running a disruptive action
    then: str | None = None
    session_only: bool = False
    unscoped_only: bool = False
    ok: int = 200
    #: the answer for a missing target (and for a scoped caller's target outside their sites)
    missing: int = 404


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: Any = None
    #: the target's identifier in the request (masked when an out-of-scope answer is compared
    #: with a missing one)
    ident: str = ""
    #: credentials used instead of the caller's: a logout ends a fresh session of the same user
    headers: dict[str, str] | None = None


@dataclass
class World:
    srv: AuthzServer
    alerts: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)


Builder = Callable[[World, Who, str], Req]
OBJECT = ("in", "out", "missing")
DEVICE = {"in": "br-codec-1", "out": "hq-codec-1", "missing": "no-such-codec"}
MISSING_ID = 987654


@dataclass(frozen=True)
class Variant:
    method: str
    route: str
    rule: Rule
    build: Builder
    targets: tuple[str, ...] = ("-",)
    #: which request of several on one route (a disruptive action, ...)
    label: str = ""
    #: where an allowed state-changing request is recorded with its user (a status job changes no
    #: device: the runner audits nothing, the job journal names who started it)
    record: str = "audit"


def get(path: str) -> Builder:
    return lambda w, who, t: Req("GET", path)


def on_device(path: str) -> Builder:
    return lambda w, who, t: Req("GET", path.format(DEVICE[t]), ident=DEVICE[t])


def run_action(action: str, params: dict[str, Any]) -> Builder:
    return lambda w, who, t: Req("POST", f"/api/v1/devices/{DEVICE[t]}/actions/{action}", {"params": params},
                                 ident=DEVICE[t])


def start_job(verb: str) -> Builder:
    return lambda w, who, t: Req("POST", "/api/v1/jobs", {"verb": verb, "select": f"name={DEVICE[t]}"},
                                 ident=DEVICE[t])


def on_job(path: str) -> Builder:
    def build(w: World, who: Who, t: str) -> Req:
        job = w.jobs.get(t, MISSING_ID)
        return Req("GET", path.format(job), ident=str(job))
    return build


def resume(action: str, params: dict[str, Any]) -> Builder:
    """A fresh interrupted job (as `avctl fleet` leaves one after a crash) on the target device."""
    def build(w: World, who: Who, t: str) -> Req:
        job = MISSING_ID
        if t != "missing":
            ctx = w.srv.ctx
            entry = next(d for d in ctx.inventory() if d.name == DEVICE[t])
            job = create_job(ctx.jobs, ActionTask(action, params), selection=f"name={entry.name}", devices=[entry],
                             inventory=ctx.inventory(), options=RunOptions(), user="cli-user").id
            ctx.jobs.set_state(job, "interrupted")
        return Req("POST", f"/api/v1/jobs/{job}/resume", {"params": {}}, ident=str(job))
    return build


def post(path: str) -> Builder:
    return lambda w, who, t: Req("POST", path, {})


def on_snapshot(w: World, who: Who, t: str) -> Req:
    """A snapshot of the target device (saving the same values again finds the same one)."""
    snapshot = MISSING_ID
    if t != "missing":
        store = SqlSnapshotStore(w.srv.db)
        snapshot = store.save(DEVICE[t], "videoos", {"device.local.roomname": t}, reason="backup")[0].id
    return Req("GET", f"/api/v1/devices/{DEVICE[t]}/config/snapshots/{snapshot}", ident=DEVICE[t])


def on_alert(verb: str, body: Any) -> Builder:
    def build(w: World, who: Who, t: str) -> Req:
        alert = w.alerts.get(t, MISSING_ID)
        return Req("POST", f"/api/v1/alerts/{alert}/{verb}", body, ident=str(alert))
    return build


def on_schedule(w: World, who: Who, t: str) -> Req:
    """A schedule (made once), or none."""
    name = "no-such-schedule"
    if t != "missing":
        name = "matrix-nightly"
        store = ScheduleStore(w.srv.db)
        if not any(s.name == name for s in store.schedules()):
            store.add(name=name, cron="0 2 * * *", timezone="UTC", grace=3600, argv=["fleet", "status"], cwd="/",
                      inventory=None, selection=[], disruptive=False, user="matrix", now=time.time())
    return Req("GET", f"/api/v1/schedules/{name}", ident=name)


def login(w: World, who: Who, t: str) -> Req:
    return Req("POST", "/api/v1/auth/login", {"name": "login-user", "password": AUTHZ_PASSWORD})


def logout(w: World, who: Who, t: str) -> Req:
    return Req("POST", "/api/v1/auth/logout", headers=w.srv.login(who.user) if who.via == "session" else None)


def new_token(w: World, who: Who, t: str) -> Req:
    return Req("POST", "/api/v1/tokens", {"name": w.srv.unique("made")})


def revoke_token(w: World, who: Who, t: str) -> Req:
    """Your own fresh token (in), another user's (out), or none."""
    token = w.srv.token(who.user if t == "in" else "other-user")[0] if t != "missing" else MISSING_ID
    return Req("DELETE", f"/api/v1/tokens/{token}", ident=str(token))


def new_user(w: World, who: Who, t: str) -> Req:
    return Req("POST", "/api/v1/users", {"name": w.srv.unique("new"), "password": AUTHZ_PASSWORD, "role": "viewer",
                                         "sites": [IN_SITE]})


def change_user(w: World, who: Who, t: str) -> Req:
    name = "no-such-user" if t == "missing" else "patch-me"
    return Req("PATCH", f"/api/v1/users/{name}", {"sites": [IN_SITE]}, ident=name)


def delete_user(w: World, who: Who, t: str) -> Req:
    name = "no-such-user"
    if t != "missing":
        name = w.srv.unique("doomed")
        w.srv.add_user(name, "viewer", (IN_SITE,))
    return Req("DELETE", f"/api/v1/users/{name}", ident=name)


READ_LIST = Rule("read", "list")
READ_OBJECT = Rule("read", "object")
DISRUPTIVE = "act_disruptive"

VARIANTS: tuple[Variant, ...] = (
    Variant("GET", "/api/v1/openapi.json", Rule("any"), get("/api/v1/openapi.json")),
    Variant("GET", "/api/v1/docs", Rule("any"), get("/api/v1/docs")),
    Variant("GET", "/api/v1/devices", READ_LIST, get("/api/v1/devices")),
    Variant("GET", "/api/v1/devices/{name}", READ_OBJECT, on_device("/api/v1/devices/{}"), OBJECT),
    Variant("GET", "/api/v1/devices/{name}/history", READ_OBJECT,
            on_device("/api/v1/devices/{}/history?metric=cert_days_left"), OBJECT),
    Variant("GET", "/api/v1/devices/{name}/events", READ_OBJECT, on_device("/api/v1/devices/{}/events"), OBJECT),
    Variant("POST", "/api/v1/devices/{name}/actions/{action}", Rule("act", "object"),
            run_action("audio_volume_set", {"volume": 21}), OBJECT, "non-disruptive"),
    Variant("POST", "/api/v1/devices/{name}/actions/{action}", Rule("act", "object", then=DISRUPTIVE),
            run_action("system_reboot", {}), OBJECT, "disruptive: reboot"),
    Variant("GET", "/api/v1/devices/{name}/config/snapshots", READ_OBJECT,
            on_device("/api/v1/devices/{}/config/snapshots"), OBJECT),
    Variant("GET", "/api/v1/devices/{name}/config/snapshots/{snapshot_id}", READ_OBJECT, on_snapshot, OBJECT),
    Variant("GET", "/api/v1/config/drift", READ_LIST, get("/api/v1/config/drift")),
    Variant("POST", "/api/v1/config/drift", Rule(DISRUPTIVE, ok=202), post("/api/v1/config/drift")),
    Variant("GET", "/api/v1/jobs", READ_LIST, get("/api/v1/jobs")),
    Variant("POST", "/api/v1/jobs", Rule("act", "selection", ok=202, missing=400), start_job("status"), OBJECT,
            "non-disruptive", record="jobs"),
    Variant("POST", "/api/v1/jobs", Rule("act", "selection", then=DISRUPTIVE, ok=202, missing=400),
            start_job("reboot"), OBJECT, "disruptive: reboot"),
    Variant("GET", "/api/v1/jobs/{job_id}", READ_OBJECT, on_job("/api/v1/jobs/{}"), OBJECT),
    Variant("POST", "/api/v1/jobs/{job_id}/resume", Rule("act", "object", ok=202),
            resume("audio_volume_set", {"volume": 22}), OBJECT, "non-disruptive"),
    Variant("POST", "/api/v1/jobs/{job_id}/resume", Rule("act", "object", then=DISRUPTIVE, ok=202),
            resume("system_reboot", {}), OBJECT, "disruptive: reboot"),
    Variant("GET", "/api/v1/jobs/{job_id}/events", READ_OBJECT, on_job("/api/v1/jobs/{}/events"), OBJECT),
    Variant("GET", "/api/v1/schedules", Rule("read", unscoped_only=True), get("/api/v1/schedules")),
    Variant("GET", "/api/v1/schedules/{name}", Rule("read", unscoped_only=True), on_schedule, ("-", "missing")),
    Variant("GET", "/api/v1/alerts", READ_LIST, get("/api/v1/alerts?state=all")),
    Variant("POST", "/api/v1/alerts/{alert_id}/ack", Rule("alerts", "object"), on_alert("ack", None), OBJECT),
    Variant("POST", "/api/v1/alerts/{alert_id}/silence", Rule("alerts", "object"),
            on_alert("silence", {"seconds": 600}), OBJECT),
    Variant("GET", "/api/v1/audit", READ_LIST, get("/api/v1/audit")),
    Variant("GET", "/api/v1/rules", READ_LIST, get("/api/v1/rules")),
    Variant("POST", "/api/v1/auth/login", Rule("public"), login),
    Variant("POST", "/api/v1/auth/logout", Rule("any", ok=204), logout),
    Variant("GET", "/api/v1/auth/whoami", Rule("any"), get("/api/v1/auth/whoami")),
    Variant("POST", "/api/v1/tokens", Rule("any", session_only=True, ok=201), new_token),
    Variant("GET", "/api/v1/tokens", Rule("any"), get("/api/v1/tokens")),
    Variant("DELETE", "/api/v1/tokens/{token_id}", Rule("any", "own", ok=204), revoke_token, OBJECT),
    Variant("GET", "/api/v1/users", Rule("admin", unscoped_only=True), get("/api/v1/users")),
    Variant("POST", "/api/v1/users", Rule("admin", unscoped_only=True, ok=201), new_user),
    Variant("PATCH", "/api/v1/users/{name}", Rule("admin", unscoped_only=True), change_user, ("-", "missing")),
    Variant("DELETE", "/api/v1/users/{name}", Rule("admin", unscoped_only=True, ok=204), delete_user,
            ("-", "missing")),
    Variant("GET", "/healthz", Rule("public"), get("/healthz")),
    Variant("GET", "/metrics", READ_LIST, get("/metrics")),
)


def refused_by_role(rule: Rule, who: Who) -> bool:
    """Refused whatever the request holds: the role, the kind of credentials or the sites' limit."""
    if rule.perm == "public":
        return False
    return ((rule.perm != "any" and not who.can(rule.perm)) or (rule.session_only and who.via != "session")
            or (rule.unscoped_only and bool(who.sites)))


def expected(rule: Rule, who: Who, target: str) -> int:
    """The status the table allows: 403 for what the role lacks, the missing answer for what is not
    there or outside the caller's sites, the endpoint's success otherwise."""
    if rule.perm == "public":
        return rule.ok
    if refused_by_role(rule, who):
        return 403
    if target == "missing" or (target == "out" and (who.sites or rule.scope == "own")):
        return rule.missing
    if rule.then is not None and not who.can(rule.then):
        return 403
    return rule.ok


# --- the world: users of every role, both scoped and not, by token and by session --------------------


def principals(srv: AuthzServer) -> list[Who]:
    out: list[Who] = []
    for role in ROLES:
        for sites in ((), (IN_SITE,)):
            user = f"{role}-{'all' if not sites else IN_SITE}"
            srv.add_user(user, role, sites)
            session = srv.login(user)
            r = srv.call("POST", "/api/v1/tokens", session, json={"name": "matrix"})
            assert r.status_code == 201, r.text
            out.append(Who(user, role, sites, "session", session))
            out.append(Who(user, role, sites, "token", {"Authorization": f"Bearer {r.json()['token']}"}))
    return out


def build_world(srv: AuthzServer) -> tuple[World, list[Who]]:
    for name, role in (("login-user", "viewer"), ("other-user", "operator"), ("patch-me", "viewer")):
        srv.add_user(name, role, (IN_SITE,))
    who = principals(srv)
    admin = next(w for w in who if w.user == "admin-all" and w.via == "token")
    world = World(srv)
    for target in ("in", "out"):
        r = srv.call("POST", "/api/v1/jobs", admin.headers, json={"verb": "status", "select": f"name={DEVICE[target]}"})
        assert r.status_code == 202, r.text
        world.jobs[target] = r.json()["job"]
        srv.settle()
    with srv.db.session() as s:
        for target, site in (("in", IN_SITE), ("out", "hq")):
            row = Alert(rule="offline", device=DEVICE[target], site=site, severity="critical", state="open",
                        opened=time.time(), resolved=None, message=f"{DEVICE[target]} is offline", value=None,
                        acked_by=None, acked_at=None, silenced_until=None, silenced_by=None)
            s.add(row)
            s.flush()
            world.alerts[target] = row.id
    return world, who


#: a body FastAPI cannot even parse: refused for who asks all the same, never answered with 422
BROKEN_JSON = "{not json"


def refused_unchanged(srv: AuthzServer, req: Req, headers: dict[str, str], want: int, what: str,
                      *, broken: bool = False) -> str:
    """Send a request that must be refused with `want`; check it changed nothing; its body."""
    before = srv.snapshot()
    if broken:
        r = srv.call(req.method, req.path, {**headers, "Content-Type": "application/json"}, data=BROKEN_JSON)
    else:
        r = srv.call(req.method, req.path, headers, json=req.json)
    assert r.status_code == want, f"{what}: {req.method} {req.path}: {r.status_code} {r.text}"
    after = srv.snapshot()
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"{what}: {req.method} {req.path} was refused ({want}) but changed {changed}"
    return r.text


def routes(srv: AuthzServer) -> set[tuple[str, str]]:
    """The API's endpoints (the dashboard's pages have their own matrix: tests/web/test_web_authz.py)."""
    found = set()
    for rc in iter_route_contexts(srv.runtime.app.routes):
        for method in rc.methods or ():
            assert rc.path is not None
            if rc.path.startswith(("/api/", "/healthz", "/metrics")):
                found.add((method, rc.path))
    return found


# --- the matrix ---------------------------------------------------------------------------------------


def test_every_endpoint_every_role_every_scope(authz_server: AuthzServer) -> None:
    srv = authz_server
    assert routes(srv) == {(v.method, v.route) for v in VARIANTS}, "an endpoint without a row in VARIANTS"
    world, everyone = build_world(srv)
    started = time.monotonic()
    cases = 0
    bodies: dict[tuple[int, str, str], tuple[int, str]] = {}
    for index, variant in enumerate(VARIANTS):
        for who in everyone:
            for target in variant.targets:
                req = variant.build(world, who, target)
                headers = req.headers if req.headers is not None else who.headers
                want = expected(variant.rule, who, target)
                what = f"{who.key} {variant.label or ''} target={target}"
                cases += 1
                if want >= 400:
                    if req.method not in SAFE_METHODS and refused_by_role(variant.rule, who):
                        refused_unchanged(srv, req, headers, 403, f"{what}, broken JSON", broken=True)
                        cases += 1
                    body = refused_unchanged(srv, req, headers, want, what)
                    bodies[index, who.key, target] = (want, body.replace(req.ident, "X") if req.ident else body)
                    continue
                before = srv.snapshot() if req.method not in SAFE_METHODS else {}
                r = srv.call(req.method, req.path, headers, json=req.json)
                assert r.status_code == want, f"{what}: {req.method} {req.path}: {r.status_code} {r.text}"
                srv.settle()
                if who.sites:
                    assert not OUT_DEVICE_RE.search(r.text), f"{what}: {req.path} shows another site's device"
                if variant.route == "/api/v1/rules":  # the other site's rule is hidden, not every rule
                    assert [x["name"] for x in r.json()["items"]] == ["offline"] if who.sites else \
                        ["offline", "old-firmware"], what
                if req.method not in SAFE_METHODS and variant.route not in ("/api/v1/auth/login",
                                                                            "/api/v1/auth/logout"):
                    # every state-changing call lands in the audit log with the user who made it
                    after = srv.snapshot()
                    new = srv.new_rows(variant.record, before)
                    assert any(f":{who.user}" in str(row) for row in new), f"{what}: {req.path} not audited"
                    body = r.json() if r.content else {}
                    if "job" in body and target in DEVICE:  # it ran, on the target device, and worked
                        counts = srv.ctx.jobs.counts(body["job"])
                        assert {k: n for k, n in counts.items() if n} == {"ok": 1}, what
                        device = DEVICE[target]
                        assert after["device requests"][device] > before["device requests"][device], what
    # out of a scoped caller's sites is exactly as missing: same status, same words
    scoped = {who.key for who in everyone if who.sites}
    for (index, key, target), (status, body) in bodies.items():
        if target == "out" and key in scoped:
            assert bodies[index, key, "missing"] == (status, body), (VARIANTS[index].route, key)
    elapsed = time.monotonic() - started
    print(f"authz matrix: {cases} cases in {elapsed:.1f} s")
    assert cases > 900


def bad_credentials(srv: AuthzServer) -> dict[str, dict[str, str]]:
    """Credentials that must all be refused (401): made at clock T, then the clock moves 12.5 hours."""
    for name in ("gone-soon", "busy-bee", "logged-out", "disabled-user"):
        srv.add_user(name, "admin")
    idle = srv.login("gone-soon")
    old = srv.login("busy-bee")
    ended = srv.login("logged-out")
    assert srv.call("POST", "/api/v1/auth/logout", ended).status_code == 204
    _, expiring = srv.token("busy-bee", expires=srv.clock() + 600)
    revoked_id, revoked = srv.token("busy-bee")
    tokens.revoke(srv.db, revoked_id, clock=srv.clock)
    _, disabled = srv.token("disabled-user")
    disabled_session = srv.login("disabled-user")
    users.update(srv.db, "disabled-user", disabled=True)
    for _ in range(24):  # kept busy (never idle) up to its absolute lifetime of 12 hours
        assert srv.call("GET", "/api/v1/auth/whoami", old).status_code == 200
        srv.clock.advance(1800)
    basic = base64.b64encode(f"busy-bee:{AUTHZ_PASSWORD}".encode()).decode()
    return {
        "no credentials": {},
        "not a token": {"Authorization": "Bearer nonsense"},
        "unknown token": {"Authorization": "Bearer avctl_" + "A" * 43},
        "another scheme": {"Authorization": f"Basic {basic}"},
        "expired token": {"Authorization": f"Bearer {expiring}"},
        "revoked token": {"Authorization": f"Bearer {revoked}"},
        "disabled user's token": {"Authorization": f"Bearer {disabled}"},
        "unknown session": {"Cookie": "avctl_session=" + "B" * 43, "X-CSRF-Token": idle["X-CSRF-Token"]},
        "idle session": idle,
        "expired session": old,
        "logged-out session": ended,
        "disabled user's session": disabled_session,
    }


def test_no_bad_or_expired_credentials_pass(authz_server: AuthzServer) -> None:
    srv = authz_server
    world, everyone = build_world(srv)
    admin = next(w for w in everyone if w.user == "admin-all" and w.via == "session")
    cases = 0
    for label, headers in bad_credentials(srv).items():
        for variant in VARIANTS:
            if variant.rule.perm == "public":
                continue
            req = variant.build(world, admin, "in" if "in" in variant.targets else "-")
            refused_unchanged(srv, req, headers, 401, label)
            cases += 1
            if variant.method not in SAFE_METHODS:
                refused_unchanged(srv, req, headers, 401, f"{label}, broken JSON", broken=True)
                cases += 1
    print(f"authz credentials: {cases} cases")
    assert cases > 300


def test_cookie_requests_need_the_csrf_token_and_this_origin(authz_server: AuthzServer) -> None:
    srv = authz_server
    world, everyone = build_world(srv)
    sessions = [w for w in everyone if w.via == "session"]
    cases = 0
    for variant in VARIANTS:
        if variant.method in SAFE_METHODS or variant.rule.perm == "public":
            continue
        for who in sessions:
            req = variant.build(world, who, "in" if "in" in variant.targets else "-")
            own = req.headers if req.headers is not None else who.headers
            other = next(w for w in sessions if w.user != who.user)
            for label, headers in (
                    ("no CSRF token", {"Cookie": own["Cookie"]}),
                    ("another session's CSRF token", {**own, "X-CSRF-Token": other.headers["X-CSRF-Token"]}),
                    ("from another origin", {**own, "Origin": "https://evil.example"})):
                refused_unchanged(srv, req, headers, 403, f"{who.key}: {label}")
                refused_unchanged(srv, req, headers, 403, f"{who.key}: {label}, broken JSON", broken=True)
                cases += 2
    # a login from another origin (a page logging a victim's browser into the attacker's account)
    refused_unchanged(srv, login(world, sessions[0], "-"), {"Origin": "https://evil.example"}, 403, "login")
    print(f"authz CSRF: {cases + 1} cases")
    assert cases > 300


# --- the documented table -----------------------------------------------------------------------------

SCOPE_NOTE = {"object": "404 outside your sites", "selection": "your sites' devices only",
              "list": "your sites only", "own": "your own only", "none": ""}


def cell(rule: Rule, role: str) -> str:
    who = Who("x", role, (), "session", {})
    if rule.perm == "public":
        return "no login"
    if rule.perm != "any" and not who.can(rule.perm):
        return "no"
    if rule.then is not None and not who.can(rule.then):
        return "no"
    if rule.session_only:
        return "session"
    if rule.unscoped_only:
        return "all sites"
    return "yes"


def permission_table() -> str:
    """The markdown table docs/server.md shows: one row per endpoint (and per kind of request)."""
    lines = ["| Endpoint | " + " | ".join(ROLES) + " | Scope |", "|---" * (len(ROLES) + 2) + "|"]
    for v in VARIANTS:
        label = f"`{v.method} {v.route}`" + (f" ({v.label})" if v.label else "")
        lines.append(f"| {label} | " + " | ".join(cell(v.rule, r) for r in ROLES) + f" | {SCOPE_NOTE[v.rule.scope]} |")
    return "\n".join(lines) + "\n"


def test_the_documented_permission_table_is_the_tested_one() -> None:
    assert permission_table() in DOCS.read_text(), "docs/server.md: paste permission_table() under 'Users, roles'"


def test_a_job_stream_ends_with_its_session(authz_server: AuthzServer) -> None:
    """An event stream is not a way around a logout: who asks is asked again before each event."""
    srv = authz_server
    srv.add_user("streamer", "operator", (IN_SITE,))
    session = srv.login("streamer")
    held = srv.devices["br-codec-1"]
    held.faults.paused = True  # its outcome cannot come before the test lets it
    r = srv.call("POST", "/api/v1/jobs", session, json={"verb": "status", "select": f"site={IN_SITE}"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    with HTTP.get(f"{srv.url}/api/v1/jobs/{job}/events", headers={"Cookie": session["Cookie"]}, stream=True,
                  timeout=60) as stream:
        events = sse_events(stream)
        kind, data = next(events)
        assert (kind, data["outcome"]["device"]) == ("outcome", "br-codec-2")
        assert srv.call("POST", "/api/v1/auth/logout", session).status_code == 204
        held.faults.paused = False
        srv.settle()
        assert list(events) == []  # neither the held device's outcome nor done: the stream ended
    assert srv.ctx.jobs.get_job(job).effective_state == "finished"
