"""What a real VideoOS system does, as conformance checks.

Evidence: AVI = AVISPL/dal-codecs-singlecodecs-polycom-videoos at 3889e5c, WireMock recordings of a
Poly Studio X30 on VideoOS 3.12.0 (`src/test/resources/mappings/multi.json`) and its client
(`PolycomVideoOS.java`: it logs in again only when a call answers 403). See docs/fidelity.md.
"""

from __future__ import annotations

from avctl.conformance.checks import PASS, Check, Outcome, Target, check, fail, not_applicable

CHECKS: list[Check] = []


@check(CHECKS, "unknown_session_403", "a request with an unknown session is refused with HTTP 403",
       "AVI multi.json; the AVI client re-logs in on 403 only")
async def unknown_session(target: Target) -> Outcome:
    response = await target.probe("GET", "/rest/system", (("Cookie", "session_id=avctl-conformance-unknown"),))
    return PASS if response.status == 403 else fail(f"HTTP {response.status}")


@check(CHECKS, "collaboration_id_state", "/rest/collaboration names its fields id and state",
       "AVI multi.json (the reference guide says sessionId/sessionState)")
async def collaboration(target: Target) -> Outcome:
    answer = target.answer("collaboration_get")
    if not isinstance(answer, dict):
        return not_applicable("no collaboration answer")
    missing = [k for k in ("id", "state") if k not in answer]
    return fail(f"missing {', '.join(missing)}; has {', '.join(sorted(answer))}") if missing else PASS


@check(CHECKS, "status_items_langtags", "/rest/system/status items carry langtag, name and stateList",
       "AVI multi.json (e.g. LAN_NETWORK_HEADING / system.status.ipnetwork)")
async def status_items(target: Target) -> Outcome:
    items = target.answer("system_status_get")
    if not isinstance(items, list) or not items:
        return not_applicable("no status items")
    bad = [i for i in items if not (isinstance(i, dict) and {"langtag", "name", "stateList"} <= set(i)
                                    and str(i["name"]).startswith("system.status."))]
    return fail(f"{len(bad)} of {len(items)} items differ, e.g. {bad[0]!r:.120}") if bad else PASS


@check(CHECKS, "session_list_session_id", "entries of the session list carry their sessionId",
       "AVI multi.json (GET /rest/current/session/sessions)")
async def session_list(target: Target) -> Outcome:
    answer = target.answer("session_sessions_get")
    entries = answer.get("sessionList") if isinstance(answer, dict) else None
    if not isinstance(entries, list) or not entries:
        return not_applicable("no session list")
    bad = [e for e in entries if not isinstance(e, dict) or "sessionId" not in e]
    return fail(f"{len(bad)} entries without sessionId") if bad else PASS
