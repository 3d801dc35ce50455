"""``config:`` blocks in the inventory and the template files they name: precedence, lines, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from avctl.fleet.config_blocks import ConfigBlock
from avctl.fleet.inventory import InventoryError, load_inventory, merge_into_inventory

INVENTORY = """\
defaults:
  family: videoos
  config:
    templates: [base/all.yaml, base/defaults.yaml]
    videoos:
      k.defaults: defaults
      k.site: defaults
sites:
  hq:
    config:
      templates: base/site.yaml
      videoos:
        k.site: site
        k.group: site
groups:
  first:
    config:
      videoos: {k.group: first}
  last:
    config:
      videoos: {k.group: last, k.last: last}
devices:
  hq-101:
    address: 10.0.0.1
    site: hq
    groups: [first, last]
    config:
      templates: [base/device.yaml]
      videoos:
        k.device: device
      solstice:
        sharing.airplay.enabled: false
  bare:
    address: 10.0.0.2
    config: {}
"""

TEMPLATES = {
    "base/all.yaml": "videoos:\n  k.all: all\n  k.defaults: all\n",
    "base/defaults.yaml": "videoos:\n  k.tdefaults: tdefaults\n  k.defaults: tdefaults\n",
    "base/site.yaml": "# the site's baseline\nvideoos:\n  k.site: tsite\n  k.tsite: tsite\n",
    "base/device.yaml": "videoos:\n  k.device: tdevice\n  k.group: tdevice\n",
}


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder / next(iter(files))


def merged(blocks: tuple[ConfigBlock, ...], family: str) -> dict[str, Any]:
    """What avctl.config does with the blocks: later ones win key by key."""
    out: dict[str, Any] = {}
    for block in blocks:
        out.update({k: v.value for k, v in block.for_family(family).items()})
    return out


@pytest.fixture
def inv_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fleet"
    path = write(folder, {"inventory.yaml": INVENTORY, **TEMPLATES})
    monkeypatch.chdir(tmp_path)  # templates are relative to the inventory's folder, not the working one
    return path


def test_blocks_come_lowest_precedence_first_with_templates_before_their_level(inv_path: Path) -> None:
    dev = load_inventory(inv_path).get("hq-101")
    assert [b.level for b in dev.config] == [
        "template base/all.yaml (from defaults)", "template base/defaults.yaml (from defaults)", "defaults",
        "template base/site.yaml (from site hq)", "site hq",
        "group last", "group first",  # the first listed group wins, as for connection settings
        "template base/device.yaml (from device hq-101)", "device hq-101",
    ]


def test_the_nearest_level_wins_key_by_key(inv_path: Path) -> None:
    dev = load_inventory(inv_path).get("hq-101")
    assert merged(dev.config, "videoos") == {
        "k.all": "all", "k.tdefaults": "tdefaults",
        "k.defaults": "defaults",     # defaults' own keys beat its templates
        "k.tsite": "tsite",
        "k.site": "site",             # site beats defaults and its own template
        "k.last": "last",
        "k.group": "tdevice",         # the device's template beats every group; first beats last, last beats site
        "k.device": "device",         # the device's own keys beat its templates
    }
    assert merged(dev.config[:-2], "videoos")["k.group"] == "first"
    assert merged(dev.config, "solstice") == {"sharing.airplay.enabled": False}
    assert merged(dev.config, "polyuc") == {}


def test_where_names_the_file_and_line_of_each_value_and_block(inv_path: Path) -> None:
    dev = load_inventory(inv_path).get("hq-101")
    by_level = {b.level: b for b in dev.config}
    inv, folder = str(inv_path), inv_path.parent
    assert by_level["defaults"].where == f"{inv}:4"
    assert by_level["defaults"].families["videoos"]["k.defaults"].where == f"{inv}:6"
    assert by_level["site hq"].families["videoos"]["k.group"].where == f"{inv}:14"
    assert by_level["group last"].families["videoos"]["k.last"].where == f"{inv}:21"
    assert by_level["device hq-101"].families["solstice"]["sharing.airplay.enabled"].where == f"{inv}:32"
    site_template = by_level["template base/site.yaml (from site hq)"]
    assert site_template.where == f"{folder / 'base/site.yaml'}:1"
    assert site_template.families["videoos"]["k.tsite"].where == f"{folder / 'base/site.yaml'}:4"


def test_a_device_without_config_has_none_and_the_rest_is_unchanged(inv_path: Path) -> None:
    inv = load_inventory(inv_path)
    bare = inv.get("bare")
    assert [b.level for b in bare.config] == ["template base/all.yaml (from defaults)",
                                              "template base/defaults.yaml (from defaults)", "defaults"]
    alone = write(inv_path.parent / "alone", {"inv.yaml": "devices:\n  a: {family: polyuc, address: 10.0.0.9}\n"})
    assert load_inventory(alone).get("a").config == ()
    assert "config" not in inv.get("hq-101").summary()


def test_values_are_kept_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, {"inv.yaml": """\
        devices:
          a:
            family: videoos
            address: 10.0.0.1
            config:
              videoos:
                text: "False"
                flag: false
                number: 5
                empty: ""
                items: [a, b]
                nested: {x: 1}
                "null": "null"
        """})
    values = {k: v.value for k, v in load_inventory(path).get("a").config[0].for_family("videoos").items()}
    assert values == {"text": "False", "flag": False, "number": 5, "empty": "", "items": ["a", "b"],
                      "nested": {"x": 1}, "null": "null"}


def test_an_absolute_template_path_and_known_families(tmp_path: Path) -> None:
    template = write(tmp_path / "elsewhere", {"t.yaml": "solstice:\n  k: 1\n"})
    path = write(tmp_path, {"inv.yaml": f"defaults:\n  config:\n    templates: {template}\n"
                                        "devices:\n  a: {family: solstice, address: 10.0.0.1}\n"})
    dev = load_inventory(path, families=["solstice", "videoos"]).get("a")
    assert [(b.level, b.where) for b in dev.config] == [(f"template {template} (from defaults)", f"{template}:1")]


def test_an_import_keeps_the_config_of_the_inventory(inv_path: Path) -> None:
    merge_into_inventory(inv_path, {"new": {"family": "videoos", "address": "10.0.0.3"}})
    inv = load_inventory(inv_path)
    assert merged(inv.get("new").config, "videoos") == {"k.all": "all", "k.tdefaults": "tdefaults",
                                                         "k.defaults": "defaults", "k.site": "defaults"}
    assert merged(inv.get("hq-101").config, "videoos")["k.group"] == "tdevice"


# --- errors: each names file:line ------------------------------------------------------------------

DEVICE = "devices:\n  a:\n    family: videoos\n    address: 10.0.0.1\n    config:\n"


@pytest.mark.parametrize(("config", "line", "message"), [
    ("      - videoos\n", 6, " must be a mapping"),
    ("      Videoos: {k: v}\n", 6, ".Videoos: 'Videoos' is not a family name"),
    ("      videoos: [k]\n", 6, ".videoos must be a mapping"),
    ("      videoos:\n        ok: 1\n        a key: 1\n", 8, ".videoos: 'a key' is not a configuration key"),
    ("      videoos:\n        '': 1\n", 7, ".videoos: '' is not a configuration key"),
    ("      videoos:\n        k: 1\n        k: 2\n", 8, ".videoos: duplicate key 'k' (first at line 7)"),
    ("      videoos:\n        k:\n", 7, ".videoos.k: no value (null)"),
    ("      videoos:\n        k: ~\n", 7, ".videoos.k: no value (null)"),
    ("      videoos:\n        <<: {k: 1}\n", 7, ".videoos: YAML merge keys ('<<') are not read"),
    ("      templates:\n", 6, ".templates: must be a file path or a list of file paths"),
    ("      templates: {a: b}\n", 6, ".templates: must be a file path or a list of file paths"),
    ("      templates: ['']\n", 6, ".templates: empty file path"),
])
def test_a_bad_block_is_refused_with_file_and_line(tmp_path: Path, config: str, line: int, message: str) -> None:
    path = write(tmp_path, {"inv.yaml": DEVICE + config})
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:{line}: devices.a.config{message}"), str(info.value)


def test_the_hint_for_a_null_value_says_to_quote_or_remove(tmp_path: Path) -> None:
    path = write(tmp_path, {"inv.yaml": DEVICE + "      videoos: {k: null}\n"})
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.hint is not None and "quote it" in info.value.hint and "remove the key" in info.value.hint


def test_an_unknown_family_is_refused_when_the_families_are_known(tmp_path: Path) -> None:
    path = write(tmp_path, {"inv.yaml": "defaults:\n  config:\n    videoos: {k: 1}\n    vidoeos: {k: 2}\n"
                                        "devices:\n  a: {family: videoos, address: 10.0.0.1}\n"})
    assert len(load_inventory(path).get("a").config[0].families) == 2  # without families=, any name is fine
    with pytest.raises(InventoryError) as info:
        load_inventory(path, families=["polyuc", "solstice", "videoos"])
    assert str(info.value).startswith(f"{path}:4: defaults.config.vidoeos: unknown family 'vidoeos'")
    assert info.value.hint == "known: polyuc, solstice, videoos"


def load_with_template(tmp_path: Path, template: str | bytes | None) -> None:
    """An inventory whose site names t.yaml on its line 6 (``template`` None: no such file)."""
    if isinstance(template, bytes):
        (tmp_path / "t.yaml").write_bytes(template)
    elif template is not None:
        (tmp_path / "t.yaml").write_text(template, encoding="utf-8")
    path = write(tmp_path, {"inv.yaml": "sites:\n  hq:\n    config:\n      templates:\n        - other.yaml\n"
                                        "        - t.yaml\n"
                                        "devices:\n  a: {family: videoos, address: 10.0.0.1, site: hq}\n",
                            "other.yaml": "videoos: {k: 1}\n"})
    load_inventory(path, families=["videoos", "polyuc"])


@pytest.mark.parametrize(("template", "message"), [
    (None, "cannot read template 't.yaml': No such file or directory"),
    (b"videoos:\n  k: caf\xe9\n", "template 't.yaml' is not UTF-8 text (bad byte on its line 2)"),
    ("", "template 't.yaml' is empty"),
    ("# nothing\n", "template 't.yaml' is empty"),
])
def test_a_template_that_cannot_be_read_fails_at_the_line_naming_it(tmp_path: Path, template: str | bytes | None,
                                                                     message: str) -> None:
    with pytest.raises(InventoryError) as info:
        load_with_template(tmp_path, template)
    where = f"{tmp_path / 'inv.yaml'}:6: sites.hq.config.templates"
    assert str(info.value).startswith(f"{where}: {message}"), str(info.value)


def test_a_folder_named_as_a_template_fails_at_the_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").mkdir()
    with pytest.raises(InventoryError) as info:
        load_with_template(tmp_path, None)
    assert str(info.value).startswith(f"{tmp_path / 'inv.yaml'}:6: sites.hq.config.templates: cannot read template")


@pytest.mark.parametrize(("template", "line", "message"), [
    ("videoos:\n  k: [1, 2\n", 3, "not valid YAML"),
    ("videoos:\n  k: !!python/object:os.system x\n", 2, "tag '!!python/object:os.system' is not allowed"),
    ("- videoos\n", 1, "template must be a mapping"),
    ("videoos: {k: 1}\ntemplates: [other.yaml]\n", 2, "a template cannot name other templates"),
    ("cast.airplay.enabled: false\n", 1, "cast.airplay.enabled: 'cast.airplay.enabled' is not a family name"),
    ("videoos: {k: 1}\nsolstcie: {k: 1}\n", 2, "solstcie: unknown family 'solstcie'"),
    ("videoos:\n  k: 1\n  bad key: 2\n", 3, "videoos: 'bad key' is not a configuration key"),
    ("videoos:\n\n  k: ~\n", 3, "videoos.k: no value (null)"),
])
def test_an_error_inside_a_template_names_its_own_line(tmp_path: Path, template: str, line: int,
                                                       message: str) -> None:
    with pytest.raises(InventoryError) as info:
        load_with_template(tmp_path, template)
    assert str(info.value).startswith(f"{tmp_path / 't.yaml'}:{line}: {message}"), str(info.value)


def test_a_template_named_by_several_levels_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {"inv.yaml": "defaults:\n  config: {templates: t.yaml}\n"
                                        "sites:\n  hq:\n    config: {templates: [t.yaml, ./t.yaml]}\n"
                                        "devices:\n  a: {family: videoos, address: 10.0.0.1, site: hq}\n"
                                        "  b: {family: videoos, address: 10.0.0.2, config: {templates: t.yaml}}\n",
                            "t.yaml": "videoos: {k: 1}\n"})
    opened: list[str] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    inv = load_inventory(path)
    assert opened.count("t.yaml") == 1
    assert [b.level for b in inv.get("a").config] == [
        "template t.yaml (from defaults)", "template t.yaml (from site hq)", "template ./t.yaml (from site hq)"]
    assert merged(inv.get("b").config, "videoos") == {"k": 1}
