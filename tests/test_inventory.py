"""Inventory parsing, inheritance, address forms, imports and selection, including malformed files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from avctl.errors import UsageError
from avctl.fleet.inventory import (
    Address,
    InventoryError,
    Selection,
    import_ip_list,
    import_ip_pass,
    load_inventory,
    merge_into_inventory,
    parse_address,
)

GOOD = """\
defaults:
  family: videoos
  user: admin
  password: secret:rooms-admin
  tags: [managed]
  data: {owner: av-team, tier: 2}
sites:
  hq:
    password: env:HQ_PASS
    tags: [emea]
    port: 8443
  lab: {}
groups:
  phones:
    family: polyuc
    user: Polycom
    data: {tier: 3}
  lobby:
    tags: [public]
    password: file:lobby.pw
devices:
  hq-101-codec:
    address: 10.0.0.5
    site: hq
    room: "101"
    tags: [teams]
  hq-101-phone:
    address: 10.0.0.6:80
    site: hq
    room: "101"
    groups: [phones, lobby]
    scheme: http
  lab-pod:
    family: solstice
    address: "[fe80::1]:5443"
    site: lab
    password: keyring:avctl/lab-pod
  lab-v6:
    address: "2001:db8::7"
    site: lab
    disabled: true
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_inheritance_precedence_device_group_site_defaults(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    codec = inv.get("hq-101-codec")
    assert codec.family == "videoos"
    assert codec.address == Address("10.0.0.5", 8443)       # site port fills the missing port
    assert codec.password == "env:HQ_PASS"                   # site beats defaults
    assert codec.user == "admin"
    assert codec.tags == {"managed", "emea", "teams"}        # tags are the union of all levels
    assert dict(codec.data) == {"owner": "av-team", "tier": 2}
    phone = inv.get("hq-101-phone")
    assert phone.family == "polyuc"                          # group beats defaults
    assert phone.user == "Polycom"
    assert phone.password == "file:lobby.pw"                 # group beats site
    assert phone.address == Address("10.0.0.6", 80, "http")  # the device's own port beats the site's
    assert phone.tags == {"managed", "emea", "public"}
    assert dict(phone.data) == {"owner": "av-team", "tier": 3}
    pod = inv.get("lab-pod")
    assert pod.family == "solstice" and pod.address == Address("fe80::1", 5443)
    assert pod.password == "keyring:avctl/lab-pod"
    v6 = inv.get("lab-v6")
    assert v6.address == Address("2001:db8::7", None) and v6.disabled
    assert inv.warnings == ()
    assert codec.source.endswith("inventory.yaml:22")


def test_plaintext_password_works_but_warns_once_per_place(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """\
        defaults: {family: videoos, password: hunter22}
        devices:
          a: {address: 10.0.0.1}
          b: {address: 10.0.0.2}
          c: {address: 10.0.0.3, password: "plain:other-one"}
        """))
    assert inv.get("a").password == "hunter22"
    assert len(inv.warnings) == 2
    assert inv.warnings[0].startswith(f"{tmp_path / 'inventory.yaml'}:1: plaintext password")
    assert ":5: plaintext password" in inv.warnings[1]
    # the printable summary never shows the password
    assert "hunter22" not in str(inv.get("a").summary())
    assert inv.get("a").summary()["password"] == "plain:********"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("devices:\n  a: {address: 10.0.0.1}\n", 2, "no family"),
    ("defaults: {family: videoos}\ndevices:\n  a: {adress: 10.0.0.1}\n", 3, "unknown key 'adress'"),
    ("defaults: {family: videoos}\ndevices:\n  a:\n    address: 10.0.0.1\n    port: 99999\n", 5,
     "port 99999 is out of range"),
    ("defaults: {family: videoos}\ndevices:\n  a:\n    address: 10.0.0.1:http\n", 4,
     "port 'http' is not a number"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1}\n  a: {address: 10.0.0.2}\n", 4,
     "duplicate key 'a' (first at line 3)"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 'bad host!'}\n", 3,
     "not an IP address or host name"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1, groups: [nope]}\n", 3,
     "group 'nope' is not defined"),
    ("defaults: {family: videoos}\nsites: {hq: {}}\ndevices:\n  a: {address: 10.0.0.1, site: hk}\n", 4,
     "site 'hk' is not defined"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1, password: 'secert:x'}\n", 3,
     "unknown credential scheme 'secert'"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1, disabled: maybe}\n", 3,
     "true or false"),
    ("defaults: {family: VideoOS}\ndevices: {}\n", 1, "is not a family name"),
    ("defaults: {family: videoos}\ndevices:\n  - {address: 10.0.0.1}\n", 3, "not a list"),
    ("defaults: {family: videoos}\ndevice:\n  a: {address: 10.0.0.1}\n", 2, "unknown top-level key 'device'"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1\n  b: x\n", 4, "not valid YAML"),
    ("defaults: {family: videoos}\ndevices:\n  a: {}\n", 3, "no address"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 10.0.0.1, room: yes}\n", 3, "got a boolean"),
    ("defaults: {family: videoos}\ndevices:\n  'bad name': {address: 10.0.0.1}\n", 3, "is not valid"),
    ("defaults: {family: videoos}\ndevices:\n  a: {address: 'ftp://10.0.0.1'}\n", 3, "not http or https"),
])
def test_malformed_inventory_reports_file_line_and_problem(tmp_path: Path, text: str, line: int,
                                                           fragment: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(InventoryError) as ei:
        load_inventory(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg
    assert ei.value.line == line


def test_empty_and_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="inventory is empty"):
        load_inventory(write(tmp_path, ""))
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load_inventory(tmp_path / "nope.yaml")


def test_unknown_family_rejected_when_families_known(tmp_path: Path) -> None:
    p = write(tmp_path, "devices:\n  a: {family: videoss, address: 10.0.0.1}\n")
    with pytest.raises(InventoryError, match=r":2: devices.a: unknown family 'videoss'"):
        load_inventory(p, families={"videoos", "polyuc", "solstice"})


@pytest.mark.parametrize(("text", "expected"), [
    ("10.1.2.3", Address("10.1.2.3")),
    ("10.1.2.3:8443", Address("10.1.2.3", 8443)),
    ("room-1.example.com:80", Address("room-1.example.com", 80)),
    ("[2001:db8::1]:443", Address("2001:db8::1", 443)),
    ("[2001:DB8::1]", Address("2001:db8::1")),
    ("2001:db8::1", Address("2001:db8::1")),
    ("https://10.1.2.3:5443/", Address("10.1.2.3", 5443, "https")),
    ("http://phone-7", Address("phone-7", None, "http")),
])
def test_parse_address_forms(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "10.0.0.1:0", "[::1", "[zz::1]:80", "a b", "https://h/path", "h:1:x:"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_address_str_brackets_v6() -> None:
    assert str(Address("2001:db8::1", 443)) == "[2001:db8::1]:443"
    assert str(Address("10.0.0.1")) == "10.0.0.1"


# --- selection -----------------------------------------------------------------------------------


def names(inv_path: Path, *exprs: str) -> list[str]:
    inv = load_inventory(inv_path)
    return [d.name for d in inv.select(Selection.parse(list(exprs)))]


def test_selection_keys_globs_and_combinations(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    everything = ["hq-101-codec", "hq-101-phone", "lab-pod", "lab-v6"]
    assert names(p) == everything
    assert names(p, "hq-*") == ["hq-101-codec", "hq-101-phone"]
    assert names(p, "family=polyuc") == ["hq-101-phone"]
    assert names(p, "family=videoos|solstice") == ["hq-101-codec", "lab-pod", "lab-v6"]
    assert names(p, "site=hq,tag=teams") == ["hq-101-codec"]              # different keys: AND
    assert names(p, "site=hq", "tag=public") == ["hq-101-phone"]           # separate options: still AND
    assert names(p, "site=hq", "site=lab", "family=solstice") == ["lab-pod"]  # same key ORs, then AND
    assert names(p, "room=101") == ["hq-101-codec", "hq-101-phone"]
    assert names(p, "tag=EMEA") == ["hq-101-codec", "hq-101-phone"]        # case-insensitive
    assert names(p, "group=phones") == ["hq-101-phone"]
    assert names(p, "host=10.0.0.*") == ["hq-101-codec", "hq-101-phone"]
    assert names(p, "tag!=public") == ["hq-101-codec", "lab-pod", "lab-v6"]
    assert names(p, "site=lab,name!=*v6") == ["lab-pod"]
    assert names(p, "nothing-matches*") == []


def test_selection_from_options_and_errors() -> None:
    sel = Selection.from_options(["site=hq"], tag=["lobby", "teams"], family=[])
    assert str(sel) == "site=hq,tag=lobby,tag=teams"
    assert str(Selection()) == "all" and not Selection()
    with pytest.raises(UsageError, match="cannot select on 'colour'"):
        Selection.parse("colour=red")
    with pytest.raises(UsageError, match="has no value"):
        Selection.parse("site=")


# --- imports -------------------------------------------------------------------------------------


def test_import_ip_pass_puts_passwords_in_secrets_not_inventory(tmp_path: Path) -> None:
    src = write(tmp_path, "\ufeff192.168.1.100,789\n\n# a comment\n 192.168.1.101 , p,with,commas \n",
                "IP_Pass.txt")
    res = import_ip_pass(src, site="hq", tags=["imported"])
    assert list(res.devices) == ["videoos-192-168-1-100", "videoos-192-168-1-101"]
    assert res.devices["videoos-192-168-1-101"] == {
        "family": "videoos", "address": "192.168.1.101", "site": "hq", "tags": ["imported"],
        "password": "secret:videoos-192-168-1-101"}
    assert res.secrets == {"videoos-192-168-1-100": "789", "videoos-192-168-1-101": "p,with,commas"}
    out = tmp_path / "inv.yaml"
    merge_into_inventory(out, res.devices)
    text = out.read_text()
    assert "789" not in text and "p,with,commas" not in text
    inv = load_inventory(out)
    assert [d.name for d in inv] == list(res.devices)
    assert inv.get("videoos-192-168-1-100").password_ref is not None
    assert inv.warnings == ()


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("10.0.0.1,pw\n10.0.0.2\n", 2, "expected 'IP,Password', found no comma"),
    ("10.0.0.1,\n", 1, "the password is empty"),
    (",pw\n", 1, "the IP is empty"),
    ("10.0.0.1,a\n\n10.0.0.1,b\n", 3, "listed twice (first at line 1)"),
    ("10.0.0.300,a\n", 1, "bad address"),
])
def test_import_ip_pass_malformed(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    src = write(tmp_path, text, "IP_Pass.txt")
    with pytest.raises(InventoryError) as ei:
        import_ip_pass(src)
    assert str(ei.value).startswith(f"{src}:{line}: ")
    assert fragment in str(ei.value)


def test_import_ip_list_shared_reference(tmp_path: Path) -> None:
    src = write(tmp_path, "10.252.149.67\n10.252.149.59\n\n", "ip.txt")
    res = import_ip_list(src, password="env:UC_PASS", user="Polycom", site="branch")
    assert res.secrets == {}
    assert res.devices["polyuc-10-252-149-59"] == {
        "family": "polyuc", "address": "10.252.149.59", "site": "branch", "user": "Polycom",
        "password": "env:UC_PASS"}


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("10.0.0.1\n10.0.0.2 10.0.0.3\n", 2, "found 2 fields"),
    ("10.0.0.1,pw\n", 1, "found a comma"),
    ("10.0.0.1\nnot_a_host!\n", 2, "bad address"),
    ("\n\n", None, "no devices"),
])
def test_import_ip_list_malformed(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    src = write(tmp_path, text, "ip.txt")
    with pytest.raises(InventoryError) as ei:
        import_ip_list(src, password="env:X")
    prefix = f"{src}:{line}: " if line else f"{src}: "
    assert str(ei.value).startswith(prefix)
    assert fragment in str(ei.value)


def test_merge_refuses_clashes_and_keeps_existing(tmp_path: Path) -> None:
    inv = write(tmp_path, GOOD)
    src = write(tmp_path, "10.0.0.9\n", "ip.txt")
    res = import_ip_list(src, password="env:X", name_prefix="hq-101-")
    assert merge_into_inventory(inv, res.devices) == 1
    loaded = load_inventory(inv)
    assert len(loaded) == 5 and loaded.get("hq-101-codec").password == "env:HQ_PASS"
    with pytest.raises(UsageError, match="already present: hq-101-10-0-0-9"):
        merge_into_inventory(inv, res.devices)
