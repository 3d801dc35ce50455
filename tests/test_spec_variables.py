"""The configuration catalogue (a spec's `## Variables`): the loader's checks with file:line, and
avctl.spec.variables (lookup, check_value, known_keys) over the three built-in families."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from avctl.errors import ValidationError
from avctl.families import builtin_spec
from avctl.spec import read_spec
from avctl.spec.loader import VARIABLE_KEYS
from avctl.spec.model import Variable
from avctl.spec.variables import applies, check_value, known_keys, lookup, schema_leaf

from .test_spec_keys import CATALOG, _errors
from .test_spec_keys import HEAD as ACTIONS_HEAD

VIDEOOS = builtin_spec("videoos")
POLYUC = builtin_spec("polyuc")
SOLSTICE = builtin_spec("solstice")

HEAD = ACTIONS_HEAD + """\
- {id: cfg_get, label: Read, kind: query, method: GET, path: /cfg}
- {id: cfg_set, label: Write, method: POST, path: /cfg}
```

## Variables

```yaml
"""
VARIABLES_LINE = HEAD.count("\n") + 1  # the file line of the first Variables entry


def _spec_file(tmp_path: Path, variables_yaml: str) -> Path:
    path = tmp_path / "t.md"
    path.write_text(HEAD + variables_yaml + "```\n", encoding="utf-8")
    return path


def _entry(spec: Any, key: str) -> Variable:
    var = lookup(spec, key)
    assert var is not None, key
    return var


def _rejects(spec: Any, key: str, value: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check_value(spec, key, value)
    return info.value.message


# --- the loader -----------------------------------------------------------------------------------


def test_every_variable_field_is_one_row() -> None:
    filled = [row.field or row.key for row in VARIABLE_KEYS]
    assert len(filled) == len(set(filled)), filled
    assert set(filled) == {f.name for f in dataclasses.fields(Variable)} - {"id", "line"}


def test_an_entry_with_every_field_lands_in_its_fields(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, """\
- id: a.level
  type: integer
  access: RW
  secret: false
  applies: restart
  read_via: cfg_get
  write_via: cfg_set
  minimum: 0
  maximum: 9
  wire: string
  default: 3
  notes: the level
- {id: a.on, type: boolean, wire: string, wire_true: "yes", wire_false: "no", default: true}
- {id: a.mode, type: enum, values: [x, y], pattern: "^[xy]$", access: RO}
""")
    result = read_spec(path)
    assert result.errors == []
    assert result.spec is not None
    level, on, mode = result.spec.variables
    assert level == Variable(id="a.level", type="integer", access="RW", applies="restart", read_via="cfg_get",
                             write_via="cfg_set", minimum=0, maximum=9, wire="string", default=3,
                             has_default=True, notes="the level", line=VARIABLES_LINE)
    assert (on.wire_true, on.wire_false, on.line) == ("yes", "no", VARIABLES_LINE + 12)
    assert (mode.type, mode.values, mode.pattern, mode.access) == ("enum", ("x", "y"), "^[xy]$", "RO")


@pytest.mark.parametrize(("entry", "message"), [
    ("{id: a, colour: red}", "variable a: unknown field 'colour'"),
    ("{id: a, type: integr}", "variable a: unknown type 'integr'"),
    ("{id: a, type: enum}", "variable a: enum without 'values'"),
    ("{id: a, access: rw}", "variable a: access must be one of RW, RO, WO, not 'rw'"),
    ("{id: a, applies: later}", "variable a: applies must be one of live, restart, reboot, not 'later'"),
    ("{id: a, secret: yes please}", "variable a: secret must be true or false"),
    ("{id: a, read_via: nope}", "variable a: unknown action 'nope'"),
    ("{id: a, write_via: cfg_gett}", "variable a: unknown action 'cfg_gett'"),
    ("{id: a, access: RO, write_via: cfg_set}", "variable a: a read-only variable has no write_via"),
    ("{id: a, pattern: '(['}", "variable a: pattern '([' is not a regular expression"),
    ("{id: a, wire: xml}", "variable a: wire must be one of json, string, not 'xml'"),
    ("{id: a, type: boolean, wire: string}", "variable a: a boolean sent as a string needs wire_true and wire_false"),
    ("{id: a, type: object, wire: string}", "variable a: an object has no string form: use wire: json"),
    ("{id: a, wire: string, default: [1]}", "variable a: default: expected a string or a number, got [1]"),
    ("{id: a, type: integer, maximum: 3, default: 7}", "variable a: default: must be at most 3, got 7"),
    ("{id: a, schema_ref: missing.json}", "variable a: schema_ref missing.json:"),
    ("{id: a, schema_ref: ../../etc/x.json}",
     "variable a: schema_ref must be the name of a file beside the spec, not '../../etc/x.json'"),
    ("{id: a, schema_ref: /dev/zero}", "variable a: schema_ref must be the name of a file beside the spec"),
    ("{type: string}", "a variable must be a mapping with an 'id'"),
])
def test_a_bad_entry_is_an_error_with_its_line(tmp_path: Path, entry: str, message: str) -> None:
    path = _spec_file(tmp_path, "- {id: fine, type: string}\n- " + entry + "\n")
    errors = _errors(path)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}:{VARIABLES_LINE + 1}: error: {message}"), errors


def test_a_duplicate_id_names_the_first_line(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, "- {id: a}\n- {id: b}\n- {id: a}\n")
    assert _errors(path) == [
        f"{path}:{VARIABLES_LINE + 2}: error: variable 'a' is declared twice (first at line {VARIABLES_LINE})"]


def test_entries_under_a_schema_must_name_its_keys(tmp_path: Path) -> None:
    (tmp_path / "c.schema.json").write_text(json.dumps({"type": "object", "properties": {
        "net": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer"}}},
        "name": {"type": "string"}}}))
    path = _spec_file(tmp_path, """\
- {id: "*", schema_ref: c.schema.json}
- {id: net.*, applies: reboot}
- {id: net.hots, applies: restart}
- {id: disk.*, applies: restart}
""")
    assert _errors(path) == [
        f"{path}:{VARIABLES_LINE + 2}: error: variable net.hots: no such key in c.schema.json",
        f"{path}:{VARIABLES_LINE + 3}: error: variable disk.*: no such key in c.schema.json",
    ]


def test_the_section_must_be_a_list(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, "a: {type: string}\n")
    assert _errors(path) == [f"{path}:{VARIABLES_LINE}: error: Variables must be a YAML list"]


def test_a_schema_that_is_not_an_object_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    path = _spec_file(tmp_path, "- {id: '*', schema_ref: list.json}\n")
    assert _errors(path) == [f"{path}:{VARIABLES_LINE}: error: variable *: schema_ref list.json: "
                             "not a JSON schema of an object with properties"]


def test_a_spec_without_the_section_has_no_variables(tmp_path: Path) -> None:
    path = tmp_path / "t.md"
    path.write_text(HEAD.split("## Variables")[0], encoding="utf-8")
    result = read_spec(path)
    assert result.errors == [] and result.spec is not None and result.spec.variables == ()


@pytest.mark.skipif(not CATALOG.is_dir(), reason="../shared (catalog sample) not beside the repo")
def test_catalog_variables_are_read_in_their_own_spellings() -> None:
    """The public catalog writes access: read_write / read, type: float, min/max, and fields of its
    own (property, unit): taken as far as they go, reported nowhere (its lint output is unchanged,
    see test_spec_keys)."""
    medea = read_spec(CATALOG / "barco" / "barco_medea_ip.md").spec
    assert medea is not None and len(medea.variables) > 100
    assert (medea.variables[0].id, medea.variables[0].type, medea.variables[0].access) == (
        "dmx.artnet", "boolean", "RW")
    dc4k = read_spec(CATALOG / "barco" / "barco_138_dc4k_113_166_ip.md").spec
    assert dc4k is not None
    by_id = {v.id: v for v in dc4k.variables}
    assert (by_id["illumination_state"].access, by_id["illumination_state"].type) == ("RO", "enum")
    assert (by_id["laser_power"].access, by_id["laser_power"].type) == ("RW", "number")
    fsn = read_spec(CATALOG / "barco" / "barco_fsn_color_touch_screen_display_ip.md").spec
    assert fsn is not None
    brightness = next(v for v in fsn.variables if v.id == "brightness")
    assert (brightness.minimum, brightness.maximum, brightness.default) == (-1, 1, 0)


def test_the_builtin_catalogues_load_clean() -> None:
    for spec in (VIDEOOS, POLYUC, SOLSTICE):
        assert spec.variables, spec.family
        assert read_spec(spec.source).errors == []
        for var in spec.variables:
            for via in (var.read_via, var.write_via):
                assert via is None or spec.has_action(via)


# --- lookup and known_keys ------------------------------------------------------------------------


def test_videoos_keys_are_the_catalogue() -> None:
    assert known_keys(VIDEOOS) == sorted([
        "system.network.wireless.wifi.enabled", "system.network.wireless.bt.enabled", "cast.miracast.enabled",
        "cast.airplay.enabled", "comm.nics.sipnic.sipusername", "comm.nics.h323nic.h323name",
        "comm.nics.h323nic.h323extension", "device.local.devicename", "device.local.adminpassword"])
    password = lookup(VIDEOOS, "device.local.adminpassword")
    assert password is not None and password.secret and password.access == "WO"
    assert lookup(VIDEOOS, "cast.miracast.enabled") is not None
    assert lookup(VIDEOOS, "cast.miracast") is None


def test_polyuc_has_its_companions_and_secrets() -> None:
    keys = known_keys(POLYUC)
    assert {"device.set", "device.prov.serverName", "device.prov.serverName.set", "reg.1.auth.password",
            "device.prov.password", "device.prov.password.set", "apps.restapi.enabled"} <= set(keys)
    assert [k for k in keys if _entry(POLYUC, k).secret] == ["device.prov.password", "reg.1.auth.password"]
    assert all(k.endswith(".set") or not k.startswith("device.") or f"{k}.set" in keys
               for k in keys if k != "device.set")


def test_solstice_keys_are_the_schema_leaves() -> None:
    keys = known_keys(SOLSTICE)
    assert "sharing.airplay.enabled" in keys and "connection.ethernet.vlans.0.tag" in keys
    assert "display.splash.images.5.32x9.hash" in keys
    assert not any(k.endswith((".secret", ".secret_salt", ".secret_hash")) for k in keys)
    secret = [k for k in keys if _entry(SOLSTICE, k).secret]
    assert {"security.admin_password", "connection.http_proxy.password", "kepler.secret_key",
            "security.display_certificate.key.data"} <= set(secret)
    assert "security.display_certificate.key.name" not in secret
    assert "conference.url_parsing" in keys  # an open map is one key
    assert lookup(SOLSTICE, "sharing.airplay") is None  # a branch, not a key
    assert lookup(SOLSTICE, "sharing.airplay.enabledd") is None
    assert schema_leaf(SOLSTICE, "connection.ethernet.vlans.0.tag") == {
        "type": "integer", "minimum": 1, "maximum": 4094}


def test_the_most_specific_entry_wins() -> None:
    vlan = lookup(SOLSTICE, "connection.ethernet.vlans.0.tag")
    assert vlan is not None
    assert (vlan.id, vlan.applies, vlan.write_via) == ("connection.*", "reboot", "network_config_update")
    assert (vlan.type, vlan.minimum, vlan.maximum) == ("integer", 1, 4094)  # from the schema
    output = lookup(SOLSTICE, "display.output_mode")
    assert output is not None and (output.id, output.applies) == ("display.output_mode", "restart")
    airplay = lookup(SOLSTICE, "sharing.airplay.enabled")
    assert airplay is not None and (airplay.id, airplay.applies, airplay.type) == ("sharing.airplay.*", "restart",
                                                                                   "boolean")
    name = lookup(SOLSTICE, "display.name")
    assert name is not None and (name.id, name.applies, name.write_via) == ("*", "live", "config_update")


def test_applies_covers_paths_below_and_above_the_keys() -> None:
    assert applies(SOLSTICE, "security.display_certificate.password.secret_hash") == "restart"
    assert applies(SOLSTICE, "connection.ethernet.enabled") == "reboot"
    assert applies(SOLSTICE, "connection") == "reboot"  # the whole branch at once
    assert applies(SOLSTICE, "display") == "restart"
    assert applies(SOLSTICE, "display.name") == "live"


# --- check_value ----------------------------------------------------------------------------------


def test_videoos_values_travel_as_strings() -> None:
    key = "system.network.wireless.bt.enabled"
    assert check_value(VIDEOOS, key, False) == "False"
    assert check_value(VIDEOOS, key, True) == "True"
    assert check_value(VIDEOOS, key, "False") == "False"  # the wire form, written as a string
    assert _rejects(VIDEOOS, key, "maybe") == f"{key}: expected a boolean, got 'maybe'"
    assert _rejects(VIDEOOS, key, "false") == f"{key}: expected a boolean, got 'false'"
    assert _rejects(VIDEOOS, key, 1) == f"{key}: expected a boolean, got 1"
    assert check_value(VIDEOOS, "comm.nics.h323nic.h323extension", 4711) == "4711"
    assert _rejects(VIDEOOS, "cast.miracast.enabled", False) == (
        "cast.miracast.enabled: read-only: cannot be set through the API")
    assert _rejects(VIDEOOS, "system.network.wireless.bt.enable", False) == (
        "unknown configuration key 'system.network.wireless.bt.enable' for family videoos "
        "(did you mean 'system.network.wireless.bt.enabled'?)")
    assert check_value(VIDEOOS, "device.local.adminpassword", "s3cret!") == "s3cret!"


def test_polyuc_values_travel_as_strings() -> None:
    assert check_value(POLYUC, "diags.pcap.enabled", True) == "1"
    assert check_value(POLYUC, "diags.pcap.enabled", "0") == "0"
    assert _rejects(POLYUC, "diags.pcap.enabled", "True") == "diags.pcap.enabled: expected a boolean, got 'True'"
    assert check_value(POLYUC, "up.backlight.idleIntensity", 3) == "3"
    assert check_value(POLYUC, "tone.dtmf.level", "-15") == "-15"
    assert _rejects(POLYUC, "up.backlight.idleIntensity", 5) == (
        "up.backlight.idleIntensity: must be between 0 and 3, got 5")
    assert _rejects(POLYUC, "up.backlight.idleIntensity", "high") == (
        "up.backlight.idleIntensity: expected an integer, got 'high'")
    assert _rejects(POLYUC, "up.backlight.idleIntensity", 1.5) == (
        "up.backlight.idleIntensity: expected an integer, got 1.5")
    assert _rejects(POLYUC, "reg.1.auth.pasword", "x").endswith("(did you mean 'reg.1.auth.password'?)")


def test_a_wrong_secret_is_never_echoed() -> None:
    message = _rejects(POLYUC, "reg.1.auth.password", ["hunter2"])
    assert message == "reg.1.auth.password: expected a string, got (not shown: secret)"
    assert "hunter2" not in message
    assert "hunter2" not in _rejects(SOLSTICE, "security.admin_password", {"hunter2": 1})


def test_solstice_values_travel_as_json() -> None:
    assert check_value(SOLSTICE, "sharing.airplay.enabled", False) is False
    assert _rejects(SOLSTICE, "sharing.airplay.enabled", "False") == (
        "sharing.airplay.enabled: expected a boolean, got 'False'")
    assert check_value(SOLSTICE, "connection.ethernet.vlans.0.tag", 10) == 10
    assert _rejects(SOLSTICE, "connection.ethernet.vlans.0.tag", 5000) == (
        "connection.ethernet.vlans.0.tag: must be between 1 and 4094, got 5000")
    assert _rejects(SOLSTICE, "connection.ethernet.vlans.0.tag", "10") == (
        "connection.ethernet.vlans.0.tag: expected an integer, got '10'")
    ip_type = "connection.ethernet.ip_configuration.ip_type"
    assert check_value(SOLSTICE, ip_type, "static") == "static"
    assert _rejects(SOLSTICE, ip_type, "manual") == f"{ip_type}: not one of static, dhcp: got 'manual'"
    # a secret is written in the schema's write form
    assert check_value(SOLSTICE, "security.admin_password", "n3w") == {"secret": "n3w"}
    assert _rejects(SOLSTICE, "sharing.airplay", {"enabled": True}).startswith(
        "unknown configuration key 'sharing.airplay' for family solstice (did you mean")
