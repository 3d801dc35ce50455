"""The inventory's key table: one row per key (its parser and the blocks that may set it)."""

from __future__ import annotations

import dataclasses

import pytest

from avctl.fleet.inventory import KEYS, DeviceEntry, InventoryError, keys_for, parse_inventory

INHERITABLE = ("family", "port", "ports", "scheme", "user", "password", "tags", "data", "disabled", "room",
               "schemes", "allow_cleartext", "config")


def test_which_block_may_set_which_key() -> None:
    """The table decides where a key may go (and the order "unknown key" hints list them in)."""
    site_only = ("timezone", "window", "firmware")  # a site's clock, its window, the firmware baseline
    assert keys_for("defaults") == keys_for("site") == (*INHERITABLE, *site_only)
    assert keys_for("group") == ("site", *INHERITABLE)
    assert keys_for("device") == ("address", "site", "groups", *INHERITABLE)


def test_every_device_field_comes_from_a_row() -> None:
    """A DeviceEntry field the inventory can set has a row; the rest are derived, not keys."""
    derived = {"name", "source"}
    # `port` is not a field of its own: it completes the address (DeviceEntry.port reads it there)
    assert {f.name for f in dataclasses.fields(DeviceEntry)} - derived == set(KEYS) - {"port"}


@pytest.mark.parametrize(("block", "key", "value"), [
    ("defaults", "address", "10.0.0.9"),
    ("defaults", "groups", "[lobby]"),
    ("defaults", "site", "hq"),
    ("sites.hq", "groups", "[lobby]"),
    ("groups.lobby", "address", "10.0.0.9"),
])
def test_a_key_outside_its_blocks_is_refused_with_the_line(block: str, key: str, value: str) -> None:
    where = {"defaults": "defaults:\n  family: videoos\n", "sites.hq": "sites:\n  hq:\n    tags: [x]\n",
             "groups.lobby": "groups:\n  lobby:\n    tags: [x]\n"}[block]
    indent = "  " if block == "defaults" else "    "
    text = (where + f"{indent}{key}: {value}\n"
            + ("defaults: {family: videoos}\n" if block != "defaults" else "")
            + "devices:\n  a: {address: 10.0.0.1}\n")
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, file="inv.yaml")
    line = where.count("\n") + 1
    assert str(info.value).startswith(f"inv.yaml:{line}: {block}: unknown key {key!r}")
    assert info.value.hint is not None and info.value.hint.startswith("expected one of: ")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("family", "VideoOS", "is not a family name"),
    ("port", "70000", "port"),
    ("port", "true", "must be a port number"),
    ("ports", "{ftp: 1}", "'ftp' is not http or https"),
    ("scheme", "ftp", "must be https or http, got 'ftp'"),
    ("schemes", "{https: ftp}", "'ftp' is not http or https"),
    ("user", "yes", "must be a string, got a boolean"),
    ("password", "nope:x", ""),
    ("tags", "['a b']", "'a b' is not a valid name"),
    ("data", "[1]", "must be a mapping"),
    ("disabled", "maybe", "must be true or false"),
    ("allow_cleartext", "1", "must be true or false"),
    ("room", "[1]", "must be a string"),
])
def test_each_row_checks_its_value_with_file_and_line(key: str, value: str, message: str) -> None:
    text = f"defaults:\n  family: videoos\ndevices:\n  a:\n    address: 10.0.0.1\n    {key}: {value}\n"
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, file="inv.yaml")
    assert str(info.value).startswith(f"inv.yaml:6: devices.a.{key}"), str(info.value)
    assert message in str(info.value)


def test_plaintext_password_warned_once_per_place_written() -> None:
    inv = parse_inventory("defaults: {family: videoos, password: hunter2}\n"
                          "devices:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.2}\n"
                          "  c: {address: 10.0.0.3, password: other}\n", file="inv.yaml")
    assert [w.split(": ")[0] for w in inv.warnings] == ["inv.yaml:1", "inv.yaml:5"]
    assert [d.password for d in inv] == ["hunter2", "hunter2", "other"]
