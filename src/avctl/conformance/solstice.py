"""What a real Solstice pod does, as conformance checks.

Evidence: AVS = AVISPL/dal-avdevices-wireless-presentation-mersive-solsticepod (a production
monitoring adapter: time zones with id/name/offset); OCG = Mersive's OpenControl API 1.0 guide and
its samples (OpenControlGETdemo.py reads connectionShowFlags); the v2 API reference (seeds). See
docs/fidelity.md.
"""

from __future__ import annotations

from avctl.conformance.checks import PASS, Check, Outcome, Target, check, fail, not_applicable

CHECKS: list[Check] = []


@check(CHECKS, "no_token_401", "a v2 request without a token is refused with HTTP 401", "the v2 API reference")
async def no_token(target: Target) -> Outcome:
    response = await target.probe("GET", "/v2/info")
    return PASS if response.status == 401 else fail(f"HTTP {response.status}")


@check(CHECKS, "v1_connection_show_flags", "the v1 config carries m_networkCuration.connectionShowFlags",
       "OCG (OpenControlGETdemo.py fails without it)")
async def show_flags(target: Target) -> Outcome:
    config = target.answer("v1_config_get")
    if not isinstance(config, dict):
        return not_applicable("no v1 config answer")
    network = config.get("m_networkCuration")
    flags = network.get("connectionShowFlags") if isinstance(network, dict) else None
    return PASS if isinstance(flags, int) and not isinstance(flags, bool) else fail(f"connectionShowFlags {flags!r}")


@check(CHECKS, "v1_time_zones_objects", "v1 timeZones are objects of id, name and offset", "AVS; a Crestron client")
async def time_zones(target: Target) -> Outcome:
    config = target.answer("v1_config_get")
    system = config.get("m_systemCuration") if isinstance(config, dict) else None
    zones = system.get("timeZones") if isinstance(system, dict) else None
    if not isinstance(zones, list) or not zones:
        return not_applicable("no timeZones")
    bad = [z for z in zones if not (isinstance(z, dict) and {"id", "name", "offset"} <= set(z))]
    return fail(f"{len(bad)} of {len(zones)} zones are not {{id, name, offset}}, e.g. {bad[0]!r:.80}") if bad else PASS


@check(CHECKS, "activerouting_connections_object", "Active Routing connections is an object of {name, ip}",
       "AVS; zlynx/APIdemo")
async def routing_connections(target: Target) -> Outcome:
    answer = target.answer("activerouting_connections_get")
    if not isinstance(answer, dict):
        return not_applicable("no Active Routing connections answer")
    connections = answer.get("connections")
    if not isinstance(connections, dict):
        return fail(f"connections is {type(connections).__name__}")
    bad = [c for c in connections.values() if not (isinstance(c, dict) and {"name", "ip"} <= set(c))]
    return fail(f"{len(bad)} entries without name/ip") if bad else PASS
