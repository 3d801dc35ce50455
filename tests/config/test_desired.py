"""Desired configuration from inventory blocks: merge, ${field} references, catalogue checks with
file:line, secrets refused, the admin-password check, and the shipped baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from avctl.config.desired import ConfigError, desired_fleet, fill_refs
from avctl.config.engine import restore_desired
from avctl.config.model import SECRET_MARKER, Snapshot
from avctl.families import builtin_spec
from avctl.fleet.inventory import load_inventory

BASELINES = Path(__file__).resolve().parents[2] / "docs" / "baselines"


def inventory(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def desired(path: Path) -> dict[str, dict[str, object]]:
    found = desired_fleet(load_inventory(path).devices, builtin_spec)
    return {dev: {k: d.value for k, d in keys.items()} for dev, keys in found.items()}


def test_precedence_refs_and_wire_forms(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("videoos:\n  system.network.wireless.bt.enabled: true\n"
                                        "polyuc:\n  up.backlight.idleIntensity: 1\n")
    path = inventory(tmp_path, """\
defaults:
  config:
    templates: [base.yaml]
    videoos: {system.network.wireless.bt.enabled: false, device.local.devicename: "${room} $$1 ${data.floor}"}
sites:
  hq: {config: {polyuc: {up.backlight.idleIntensity: 3}}}
devices:
  c1: {family: videoos, address: 127.0.0.1:1, room: "R1", site: hq, data: {floor: 3}}
  p1: {family: polyuc, address: 127.0.0.1:2, site: hq, config: {polyuc: {reg.1.label: "${name}@${site}"}}}
  s1: {family: solstice, address: 127.0.0.1:3}
""")
    assert desired(path) == {
        "c1": {"system.network.wireless.bt.enabled": "False", "device.local.devicename": "R1 $1 3"},
        "p1": {"up.backlight.idleIntensity": "3", "reg.1.label": "p1@hq"},
    }  # s1: nothing desired for its family


def test_every_problem_is_listed_with_file_line_and_nothing_else_happens(tmp_path: Path) -> None:
    path = inventory(tmp_path, """\
defaults:
  config:
    videoso: {x: 1}
    polyuc:
      up.backlight.idleIntensity: 7
      reg.1.auth.password: hunter2
      reg.1.label: "${room}"
    solstice:
      sharing.airplay.enabld: false
      avctl.admin_password: weak
devices:
  p1: {family: polyuc, address: 127.0.0.1:2}
  s1: {family: solstice, address: 127.0.0.1:3}
""")
    with pytest.raises(ConfigError) as err:
        desired(path)
    text = str(err.value)
    assert "invalid desired configuration (6 problems)" in text
    assert f"{path}:3: defaults: no device family 'videoso'" in text
    assert f"{path}:5: polyuc (device p1): up.backlight.idleIntensity: must be between 0 and 3" in text
    assert f"{path}:6: polyuc (device p1): reg.1.auth.password: a secret" in text
    assert "hunter2" not in text  # a secret written in the inventory is not repeated
    assert f"{path}:7: polyuc (device p1): ${{room}}: device p1 has no room" in text
    assert f"{path}:9: solstice (device s1): unknown configuration key 'sharing.airplay.enabld'" in text
    assert "did you mean 'sharing.airplay.enabled'" in text
    assert f"{path}:10: solstice (device s1): avctl.admin_password: expected not_default" in text


def test_read_only_keys_are_kept_as_unsettable(tmp_path: Path) -> None:
    path = inventory(tmp_path, "defaults: {config: {videoos: {cast.airplay.enabled: false}}}\n"
                               "devices: {c1: {family: videoos, address: 127.0.0.1:1}}\n")
    found = desired_fleet(load_inventory(path).devices, builtin_spec)
    key = found["c1"]["cast.airplay.enabled"]
    assert (key.value, key.settable) == ("False", False)


def test_solstice_restart_and_network_keys_carry_how_they_apply(tmp_path: Path) -> None:
    path = inventory(tmp_path, "defaults: {config: {solstice: {sharing.airplay.enabled: false, "
                               "connection.lldp.enabled: true, display.name: x}}}\n"
                               "devices: {s1: {family: solstice, address: 127.0.0.1:1}}\n")
    keys = desired_fleet(load_inventory(path).devices, builtin_spec)["s1"]
    assert (keys["sharing.airplay.enabled"].applies, keys["sharing.airplay.enabled"].write_via) == (
        "restart", "config_update")
    assert (keys["connection.lldp.enabled"].applies, keys["connection.lldp.enabled"].write_via) == (
        "reboot", "network_config_update")
    assert keys["display.name"].applies == "live"


def test_unknown_field_reference(tmp_path: Path) -> None:
    entry = load_inventory(inventory(tmp_path, "devices: {c1: {family: videoos, address: 127.0.0.1:1}}\n")).get("c1")
    with pytest.raises(Exception, match=r"\$\{serial\} is not a device field"):
        fill_refs("${serial}", entry)
    assert fill_refs(["${name}", {"a": "$${x}"}], entry) == ["c1", {"a": "${x}"}]


def test_shipped_baselines_validate_for_every_family(tmp_path: Path) -> None:
    path = inventory(tmp_path, f"""\
defaults:
  config: {{templates: ['{BASELINES / "secure-rooms.yaml"}', '{BASELINES / "room-names.yaml"}']}}
devices:
  c1: {{family: videoos, address: 127.0.0.1:1, room: R1}}
  p1: {{family: polyuc, address: 127.0.0.1:2, room: R1}}
  s1: {{family: solstice, address: 127.0.0.1:3, room: R1}}
""")
    found = desired(path)
    assert set(found) == {"c1", "p1", "s1"}
    assert all(found[d]["avctl.admin_password"] == "not_default" for d in found)
    assert found["s1"]["display.splash.screen_key.enabled"] is True
    assert found["c1"]["system.network.wireless.bt.enabled"] == "False"


def test_restore_leaves_secrets_read_only_keys_and_the_v1_record() -> None:
    spec = builtin_spec("solstice")
    snap = Snapshot(1, "s1", "solstice", 0.0, 0.0, "d", {
        "display.name": "Room", "security.admin_password": SECRET_MARKER, "v1.m_displayId": "abc"},
        secrets=("security.admin_password",))
    plan = restore_desired(snap, spec)
    assert list(plan.desired) == ["display.name"]
    assert set(plan.left) == {"security.admin_password", "v1.m_displayId"}
