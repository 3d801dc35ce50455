"""What a real Poly UC phone does, as conformance checks.

Evidence: S002 = seed 002 (the UC Software REST API guide with real phone answers); MIV =
HL727/Meeting `endpoint/tests/mock_data/poly_trio.py` (answers captured from a Trio 8800 on UC
Software 7.2.2); POSH = rdbahm/Posh-UCS (how its cmdlets parse pollForStatus). See docs/fidelity.md.
"""

from __future__ import annotations

from typing import Any

from avctl.conformance.checks import PASS, Check, Outcome, Target, check, fail, not_applicable

CHECKS: list[Check] = []
#: a parameter name no phone knows (config/get must refuse it with Status 4000)
UNKNOWN_PARAMETER = "avctl.conformance.noSuchParameter"


def _data(answer: Any) -> Any:
    return answer.get("data") if isinstance(answer, dict) else None


@check(CHECKS, "unauthenticated_401", "a request without credentials is refused with 401 and a challenge",
       "S002 (Basic and Digest; the phone's web server)")
async def unauthenticated(target: Target) -> Outcome:
    response = await target.probe("GET", "/api/v1/mgmt/device/info")
    if response.status != 401:
        return fail(f"HTTP {response.status}")
    return PASS if response.header_all("WWW-Authenticate") else fail("401 without WWW-Authenticate")


@check(CHECKS, "envelope_status", "every answer is the {data, Status} envelope, Status a 4-digit code",
       "S002; MIV (Status as a string)")
async def envelope(target: Target) -> Outcome:
    bad = sorted({e.action for e in target.profile.exchanges
                  if e.status == 200 and not (isinstance(e.answer, dict)
                                              and str(e.answer.get("Status", "")).isdigit()
                                              and len(str(e.answer["Status"])) == 4)})
    return fail(f"not the envelope: {', '.join(bad)}") if bad else PASS


@check(CHECKS, "memory_in_bytes", "device/stats reports memory in bytes", "MIV (Total 519995392)")
async def memory(target: Target) -> Outcome:
    stats = _data(target.answer("device_stats"))
    total = stats.get("Memory", {}).get("Total") if isinstance(stats, dict) else None
    if total is None:
        return not_applicable("no Memory.Total")
    try:
        value = int(str(total))
    except ValueError:
        return fail(f"Memory.Total is {total!r}")
    return PASS if value > 64 * 1024 * 1024 else fail(f"Memory.Total {value} reads as kB, not bytes")


@check(CHECKS, "poll_for_status_words", "pollForStatus says 'Time of last call' when idle",
       "POSH Get-UcsRestStatus; MIV")
async def poll_for_status(target: Target) -> Outcome:
    status = _data(target.answer("poll_for_status"))
    if not isinstance(status, dict):
        return not_applicable("no pollForStatus answer")
    words = {"Idle": "Time of last call", "Active": "Active call duration"}.get(str(status.get("State")))
    if words is None:
        return not_applicable(f"state {status.get('State')!r}")
    data = str(status.get("StateData", ""))
    return PASS if data.startswith(words) else fail(f"StateData {data!r}")


@check(CHECKS, "running_config_groups", "runningConfig has the groups real phones send",
       "MIV (Network.IPGateway, DNS.PrimaryServer, SNTP.Server)")
async def running_config(target: Target) -> Outcome:
    config = _data(target.answer("running_config"))
    if not isinstance(config, dict):
        return not_applicable("no runningConfig answer")
    wanted = {"Network": "IPGateway", "DNS": "PrimaryServer", "SNTP": "Server"}
    missing = [f"{g}.{k}" for g, k in wanted.items() if not isinstance(config.get(g), dict) or k not in config[g]]
    return fail(f"missing {', '.join(missing)}") if missing else PASS


@check(CHECKS, "unknown_parameter_4000", "config/get of an unknown parameter answers Status 4000",
       "S002 (4000: invalid input parameters)")
async def unknown_parameter(target: Target) -> Outcome:
    _, response = await target.client.fetch("config_get", names=[UNKNOWN_PARAMETER])
    body = response.try_json()
    status = str(body.get("Status")) if isinstance(body, dict) else None
    return PASS if status == "4000" else fail(f"HTTP {response.status}, Status {status}")
