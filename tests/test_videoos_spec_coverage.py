"""The VideoOS spec covers every documented operation, reuses the catalog's ids, and is typed precisely.

`tests/data/videoos_operations.txt` lists the 107 operations of the REST API Reference Guide 4.0.0
(seed 003) and the endpoints seen outside it. Coverage can never drop silently: an operation missing
from the spec, or a spec route missing from the list, fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from avctl import Device, ValidationError
from avctl.families import builtin_spec
from avctl.spec import read_spec
from avctl.spec.model import ForEach
from avctl.spec.params import validate

from .conftest import DATA, SHARED

SPEC = builtin_spec("videoos")
SPEC_FILE = Path(SPEC.source)
Op = tuple[str, str]


def operations() -> dict[str, list[Op]]:
    """The operations file in its three blocks: reference, outside, alternate."""
    blocks: dict[str, list[Op]] = {"reference": [], "outside": [], "alternate": []}
    current = "reference"
    for line in (DATA / "videoos_operations.txt").read_text().splitlines():
        if line.startswith("# ---"):
            current = "outside" if "outside the reference" in line else "alternate"
            continue
        if not line.strip() or line.startswith("#"):
            continue
        method, path = line.split()
        blocks[current].append((method, path))
    return blocks


def primary_routes() -> set[Op]:
    return {(a.method, a.path) for a in SPEC.actions.values()}


def alternate_routes() -> set[Op]:
    return {(alt.method, alt.path) for a in SPEC.actions.values() for alt in a.also_accepts}


def test_reference_block_has_the_107_operations() -> None:
    reference = operations()["reference"]
    assert len(reference) == 107
    assert len(set(reference)) == 107


def test_every_reference_operation_is_an_action() -> None:
    missing = [op for op in operations()["reference"] if op not in primary_routes()]
    assert missing == []


def test_every_outside_and_alternate_form_is_served() -> None:
    blocks = operations()
    served = primary_routes() | alternate_routes()
    assert [op for op in blocks["outside"] if op not in served] == []
    assert [op for op in blocks["alternate"] if op not in alternate_routes()] == []


def test_every_spec_route_is_listed() -> None:
    """The list grows with the spec: a new action must be added to the operations file too."""
    listed = {op for block in operations().values() for op in block}
    assert sorted((primary_routes() | alternate_routes()) - listed) == []


def test_spec_lints_clean() -> None:
    result = read_spec(SPEC_FILE)
    assert [str(i) for i in result.issues] == []
    assert len(SPEC.actions) == 119


@pytest.mark.skipif(not (SHARED / "apiref" / "videoos.md").is_file(), reason="shared apiref not present")
def test_operations_file_matches_the_apiref_table() -> None:
    """The reference block is section 4 of apiref/videoos.md, in order (methods, paths without queries)."""
    text = (SHARED / "apiref" / "videoos.md").read_text()
    section = text.split("## 4.")[1].split("## 5.")[0]
    rows = re.findall(r"^\|\s*\d+\s*\|\s*([A-Z]+)(?: \(doc\))?\s*\|\s*(/rest[^ ?|]*)", section, re.M)
    assert [(m, p.strip()) for m, p in rows] == operations()["reference"]


def _catalog_actions() -> dict[str, Op]:
    """id -> (method, path) of seed 001 (a flattened export: '- id:' then 'method:' and 'path:' lines)."""
    path = next((SHARED / "seeds").glob("001_*"), None) if (SHARED / "seeds").is_dir() else None
    if path is None:
        pytest.skip("seed 001 not present")
    actions: dict[str, Op] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "- id":
            current = {"id": value.strip()}
        elif key in ("method", "path") and "id" in current:
            current[key] = value.split("#")[0].strip()
            if "method" in current and "path" in current:
                actions[current["id"]] = (current["method"], current["path"])
                current = {}
    return actions


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_catalog_action_ids_are_reused() -> None:
    """Every action of the AI4AV spec (seed 001) exists here under the same id and route (or alias)."""
    catalog = _catalog_actions()
    assert len(catalog) == 98
    for action_id, (method, path) in catalog.items():
        ours = SPEC.actions.get(action_id)
        assert ours is not None, f"catalog action {action_id} has no action with the same id"
        routes = {(ours.method, _shape(ours.path))} | {(a.method, _shape(a.path)) for a in ours.also_accepts}
        assert (method, _shape(path)) in routes, action_id


DISRUPTIVE = {
    "system_reboot",
    "system_resetsettings",
    "conferences_hangup",
    "conferences_connection_hangup",
    "conferences_terminal_hangup",
    "collaboration_end",
    "directory_import",
    "system_mode_device_start",
    "system_mode_device_stop",
    "system_mode_signage_start",
    "system_mode_signage_stop",
    "system_mode_set",
    "system_time_set",
}


def test_disruptive_actions_are_marked_with_a_note() -> None:
    marked = {a.id for a in SPEC.actions.values() if a.disruptive}
    assert marked == DISRUPTIVE
    assert all(SPEC.actions[i].safety_note for i in DISRUPTIVE)


def test_success_statuses_are_2xx_only() -> None:
    for action in SPEC.actions.values():
        assert action.success and all(200 <= s < 300 for s in action.success), action.id


# --- precise typing: requests are built (nothing is sent) and checked on the wire form ----------------


def build(action_id: str, **params: Any) -> Any:
    device = Device(SPEC, "127.0.0.1:9")  # never contacted: prepare() does no I/O
    return device.prepare(action_id, params)[1]


def test_bare_value_bodies() -> None:
    assert build("audio_muted_set", muted=True).body == b"true"
    assert build("audio_volume_set", volume=50).body == b"50"


def test_constant_body_fields_and_wire_names() -> None:
    assert json.loads(build("system_reboot", restart_all=True).body) == {"action": "reboot", "restartAll": True}
    assert json.loads(build("collaboration_end").body) == {"action": "END"}
    reset = json.loads(
        build("system_resetsettings", keep_certificates=True, keep_cdr=False, keep_directory=True, keep_logs=False).body
    )
    assert reset == {
        "action": "resetsettings",
        "keepCertificates": True,
        "keepCdr": False,
        "keepDirectory": True,
        "keepLogs": False,
    }
    request = build("collaboration_content_get", pin="1234", context_id="abc")
    assert dict(request.query) == {"pin": "1234", "context-id": "abc"}
    assert build("conferences_get_one", conf_id=3).path == "/rest/conferences/3"
    position = json.loads(
        build(
            "cameras_near_position_move", source_id="SELECTED_PEOPLE", cam_position={"pan": 1, "tilt": 2, "zoom": 3}
        ).body
    )
    assert position == {"camPosition": {"pan": 1, "tilt": 2, "zoom": 3}}


def test_directory_import_sends_the_xml_file(tmp_path: Path) -> None:
    file = tmp_path / "dir.xml"
    file.write_bytes(b"<directory/>")
    request = build("directory_import", file=str(file))
    assert request.body == b"<directory/>" and request.header("Content-Type") == "application/xml"


def test_traceroute_is_a_get_with_a_json_body() -> None:
    request = build("system_network_traceroute", destination="10.0.0.1")
    assert request.method == "GET" and json.loads(request.body) == {"destination": "10.0.0.1"}


@pytest.mark.parametrize(
    ("action_id", "params"),
    [
        ("audio_volume_set", {"volume": 101}),
        ("audio_volume_set", {"volume": -1}),
        ("audio_volume_set", {"volume": "50"}),
        ("audio_muted_set", {"muted": "yes"}),
        (
            "cameras_near_position_move",
            {"source_id": "SELECTED_PEOPLE", "cam_position": {"pan": 50001, "tilt": 0, "zoom": 0}},
        ),
        ("cameras_near_position_move", {"source_id": "SELECTED_PEOPLE", "cam_position": {"pan": 0, "tilt": 0}}),
        ("cameras_near_position_move", {"source_id": "NEAR_1", "cam_position": {"pan": 0, "tilt": 0, "zoom": 0}}),
        ("cameras_near_source_move", {"source_id": 1, "action": "spin"}),
        ("cameras_near_source_move", {"source_id": 1, "action": "moveStart", "direction": "MOVE_BACK"}),
        ("cameras_near_presets_index_update", {"index": 1, "action": "moveStart"}),
        ("cameras_snapshot_get", {"snapshot_id": "near_image_2.jpg"}),
        ("conferences_dial", {"address": "a", "dial_type": "CARRIER_PIGEON"}),
        ("conferences_dial", {"rate": 512}),
        ("conferences_blast", {"end_point_list": []}),
        ("conferences_connections_get", {"conf_id": 0, "filter": "SOME"}),
        ("directory_favorites_get", {"start": 0}),
        ("directory_queries_get", {"query_id": 1, "limit": 0}),
        ("directory_queries_start", {"server_scope": "EVERYWHERE"}),
        ("directory_local_entries_add", {"devices": [{"addressList": [{"type": "FAX", "number": "1"}]}]}),
        ("system_resetsettings", {"keep_certificates": True}),
        ("system_reboot", {"action": "shutdown"}),
        ("system_time_set", {"time": 1, "tz_offset": 900}),
        ("calendar_meetings_get", {"number": 0}),
        ("config_get", {"names": []}),
        ("config_set", {"vars": [{"name": "x"}]}),
        ("system_mode_set", {"enabled_apps": []}),
    ],
)
def test_invalid_values_are_refused_before_sending(action_id: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate(SPEC.action(action_id), params)


def test_feedbacks_and_macros_point_at_real_actions() -> None:
    from avctl.emulator.videoos.state import VideoOSState

    state = VideoOSState(name="room", firmware="4.6.2", rng=__import__("random").Random(1))
    system = state.system()
    expected = {
        "model": "model",
        "firmware": "softwareVersion",
        "uptime": "uptime",
        "serial": "serialNumber",
        "name": "systemName",
    }
    by_id = {f.id: f for f in SPEC.feedbacks}
    for feedback_id, key in expected.items():
        assert by_id[feedback_id].action == "system_get" and by_id[feedback_id].pointer == f"/{key}"
        assert key in system
    assert (by_id["in_call"].action, by_id["in_call"].transform) == ("conferences_get", "nonempty")
    # one read for both: GET /rest/audio answers {muteLocked, muted, numOfMicsConnected, volume}
    assert (by_id["mic_muted"].action, by_id["mic_muted"].pointer) == ("audio_get", "/muted")
    assert (by_id["volume"].action, by_id["volume"].pointer) == ("audio_get", "/volume")
    steps = {m.id: [(s.action, dict(s.params)) for s in m.steps] for m in SPEC.macros.values()}
    assert steps == {
        "reboot": [("system_reboot", {})],
        "mute": [("audio_muted_set", {"muted": True})],
        "unmute": [("audio_muted_set", {"muted": False})],
        "volume": [("audio_volume_set", {"volume": "$volume"})],
        "end_call": [("conferences_hangup", {"conf_id": "$each"})],
    }
    assert SPEC.macros["end_call"].steps[0].for_each == ForEach("conferences_get", "/id")
    for macro in SPEC.macros.values():
        for step in macro.steps:
            params = {k: (40 if v == "$volume" else 7 if v == "$each" else v) for k, v in step.params.items()}
            validate(SPEC.action(step.action), params)


def test_passwords_and_pins_are_secret() -> None:
    """Every password or PIN parameter is masked in logs, journals and output."""
    sensitive = {(a.id, p.name) for a in SPEC.actions.values() for p in a.params if p.name in ("password", "pin")}
    secret = {(a.id, p.name) for a in SPEC.actions.values() for p in a.params if p.secret}
    assert sensitive and secret == sensitive
