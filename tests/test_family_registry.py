"""The family-plugin registry and the other registries: duplicates are errors, lookups are lazy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from avctl.auth import Auth, register_auth
from avctl.emulator.core import EmulatedDevice, emulator_class, register_emulator
from avctl.errors import UsageError
from avctl.families import Family, builtin_spec, family_names, get_family, register_family
from avctl.families.registry import FamilyPlugin, get_plugin, register_plugin, unregister_plugin


@pytest.fixture
def scratch() -> Iterator[str]:
    yield "scratchfam"
    unregister_plugin("scratchfam")


def test_builtin_families_come_from_the_entry_point_group() -> None:
    assert family_names() == ["polyuc", "solstice", "videoos"]
    for name in family_names():
        plugin = get_plugin(name)
        assert plugin.name == name and get_family(name).name == name
        assert builtin_spec(name).family == name
        assert emulator_class(name).family == name


def test_register_family_twice_is_an_error(scratch: str) -> None:
    class Scratch(Family):
        name = scratch

    register_family(Scratch)
    assert isinstance(get_family(scratch), Scratch)
    with pytest.raises(UsageError, match=r"'scratchfam' is provided twice: by register_family\(.*Scratch\)"):
        register_family(Scratch)
    with pytest.raises(UsageError, match=r"'videoos' is provided twice: by avctl .*videoos:plugin"):
        register_plugin(FamilyPlugin("videoos", Family))


def test_register_emulator_for_a_family_that_has_one_is_an_error() -> None:
    class Other(EmulatedDevice):
        family = "videoos"

    with pytest.raises(UsageError, match=r"emulator for family 'videoos' is registered twice: by"):
        register_emulator(Other)
    assert emulator_class("videoos") is not Other


def test_register_auth_twice_is_an_error() -> None:
    with pytest.raises(UsageError, match="auth type 'videoos_session' is registered twice"):
        register_auth("videoos_session")(lambda spec, creds: Auth())


def test_a_family_without_emulator_or_spec_says_so(scratch: str) -> None:
    register_plugin(FamilyPlugin(scratch, Family))
    with pytest.raises(UsageError, match="'scratchfam' ships no emulator"):
        emulator_class(scratch)
    with pytest.raises(UsageError, match="'scratchfam' ships no spec"):
        builtin_spec(scratch)


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown device family 'nope'") as info:
        get_family("nope")
    assert info.value.hint == "known families: polyuc, solstice, videoos"


def test_lookups_are_lazy_and_the_client_never_imports_the_emulator() -> None:
    code = (
        "import sys\n"
        "from avctl.families import builtin_spec, family_names, get_family\n"
        "assert family_names() == ['polyuc', 'solstice', 'videoos']\n"
        "assert not any(m.startswith('avctl.families.') and m != 'avctl.families.registry' for m in sys.modules)\n"
        "get_family('videoos'); builtin_spec('solstice')\n"
        "assert 'avctl.families.polyuc' not in sys.modules\n"
        "assert not [m for m in sys.modules if m.startswith('avctl.emulator') or m == 'aiohttp.web']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
