"""Verbs across families (issue 15): every verb a family's API allows is offered, the verb x family
table of docs/fleet.md says what the specs say, and the verbs work against the emulators."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.families import builtin_spec

from .first_hour_fleet import avctl, mixed_fleet

DOCS = Path(__file__).parent.parent / "docs" / "fleet.md"
FAMILIES = ("videoos", "polyuc", "solstice")


def documented_verbs() -> dict[str, dict[str, bool]]:
    """The verb x family table of docs/fleet.md: verb -> family -> offered."""
    text = DOCS.read_text()
    table = text[text.index("| verb | videoos | polyuc | solstice |"):].split("\n\n")[0].splitlines()
    out: dict[str, dict[str, bool]] = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        verb = cells[0].strip("`").split()[0]  # `volume volume=N` -> volume
        out[verb] = {fam: cell.startswith("yes") for fam, cell in zip(FAMILIES, cells[1:4], strict=True)}
    return out


def test_docs_table_is_the_specs_macros() -> None:
    offered = {fam: set(builtin_spec(fam).macros) for fam in FAMILIES}
    every = set().union(*offered.values())
    documented = documented_verbs()
    assert set(documented) == every | {"status"}
    for verb, row in documented.items():
        if verb == "status":
            assert all(row.values())
            continue
        assert row == {fam: verb in offered[fam] for fam in FAMILIES}, verb


def test_each_gap_says_why() -> None:
    """A "no" in the table carries the reason the API gives none (not an oversight)."""
    text = DOCS.read_text()
    table = text[text.index("| verb | videoos | polyuc | solstice |"):].split("\n\n")[0]
    for line in table.splitlines()[2:]:
        for cell in line.strip("|").split("|")[1:4]:
            if cell.strip().startswith("no"):
                assert re.search(r"no: \w+", cell.strip()), line


def test_mute_and_unmute_reach_phones_and_codecs(emulators: EmulatorThread, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    out = avctl("fleet", "mute", "-i", str(fleet.inventory), "--json").stdout
    doc = json.loads(out[out.index("{"):])
    by_device = {d["device"]: d["status"] for d in doc["devices"]}
    assert by_device == {"codec-1": "ok", "phone-1": "ok", "pod-1": "skipped"}
    assert fleet.codec.state.muted and fleet.phone.phone.muted
    avctl("fleet", "unmute", "-i", str(fleet.inventory))
    assert not fleet.codec.state.muted and not fleet.phone.phone.muted


def test_end_call_ends_a_pods_session(emulators: EmulatorThread, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    """The gap filled for Solstice: a pod's "call" is its sharing session; end_call disconnects it."""
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    fleet.pod.state.connected_users = 3
    fleet.pod.state.post_count = 2
    before = avctl("fleet", "status", "-i", str(fleet.inventory), "--family", "solstice", "--json").stdout
    assert json.loads(before[before.index("{"):])["devices"][0]["data"]["in_call"] is True
    # disruptive: refused without confirmation, and nothing is sent
    refused = avctl("fleet", "end_call", "-i", str(fleet.inventory), "--family", "solstice", code=None)
    assert refused.exit_code != 0 and fleet.pod.state.connected_users == 3
    out = avctl("fleet", "end_call", "-i", str(fleet.inventory), "--family", "solstice", "-y", "--json").stdout
    assert json.loads(out[out.index("{"):])["summary"]["ok"] == 1
    assert fleet.pod.state.connected_users == 0 and fleet.pod.state.post_count == 0
    assert any(r.path == "/api/control/boot" for r in fleet.pod.requests)
    after = avctl("fleet", "status", "-i", str(fleet.inventory), "--family", "solstice", "--json").stdout
    assert json.loads(after[after.index("{"):])["devices"][0]["data"]["in_call"] is False


# --- "did you mean" -------------------------------------------------------------------------------


def one_error(result_output: str) -> None:
    assert "Traceback" not in result_output


@pytest.mark.parametrize(("args", "says"), [
    (("fleat",), "Did you mean 'fleet'?"),
    (("trst", "list"), "Did you mean 'trust'?"),
    (("jobs", "lst"), "Did you mean 'list'?"),
    (("trust", "lst"), "Did you mean 'list'?"),  # a typo, not a host named lst to connect to
    (("trust", "remve", "10.0.0.1"), "Did you mean 'remove'?"),
])
def test_subcommand_suggestions(args: tuple[str, ...], says: str, avctl_home: Path) -> None:
    result = avctl(*args, code=2)
    one_error(result.output)
    assert says in result.stderr, result.stderr


@pytest.mark.parametrize("args", [
    ("call", "-f", "videos", "127.0.0.1:1", "system_get"),
    ("conformance", "-f", "videos"),
    ("capture", "-f", "videos", "127.0.0.1:1", "-o", "x.yaml"),
    ("actions", "videos"),
    ("describe", "videos", "system_get"),
])
def test_family_suggestions_in_every_command_taking_one(args: tuple[str, ...], avctl_home: Path) -> None:
    result = avctl(*args, code=2)
    one_error(result.output)
    assert "avctl: error: unknown device family 'videos' (did you mean videoos?)" in result.stderr, result.stderr


def test_verb_and_action_suggestions(emulators: EmulatorThread, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, avctl_home: Path) -> None:
    fleet = mixed_fleet(emulators, tmp_path, monkeypatch)
    inv = str(fleet.inventory)
    verb = avctl("fleet", "mutee", "-i", inv, code=2)
    assert "avctl: error: no selected device can run 'mutee'" in verb.stderr
    assert "did you mean 'mute' or 'unmute'? 'avctl fleet --help' lists the verbs" in verb.stderr
    action = avctl("fleet", "run", "audio_mute_set", "-i", inv, code=2)
    assert "did you mean 'audio_muted_set'" in action.stderr and "'avctl actions FAMILY'" in action.stderr
    nothing_close = avctl("fleet", "run", "zzzz", "-i", inv, code=2)
    assert "did you mean" not in nothing_close.stderr
    assert not any(r.method != "GET" for r in fleet.codec.requests)  # nothing was sent


def test_an_unknown_family_in_the_inventory_is_named(tmp_path: Path, avctl_home: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  a: {address: 10.0.0.1, family: videos, password: env:X}\n")
    result = avctl("fleet", "status", "-i", str(inv), code=2)
    # the inventory names where it is written (file:line) and the close family
    assert "inv.yaml:2: devices.a: unknown family 'videos'" in result.stderr
    assert "did you mean 'videoos'?" in result.stderr
