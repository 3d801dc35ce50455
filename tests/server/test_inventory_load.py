"""The server parses its inventory in a child process (`avctl.server.inventory_load`): the same
inventory and the same errors as parsing it in the process, for a fraction of the memory it leaves
behind; avctl's errors survive the trip (pickle) whole."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import avctl.errors
from avctl.errors import AvctlError, SpecError
from avctl.fleet.inventory import NOTHING, InventoryError, InventoryProblems, load_inventory
from avctl.server import inventory_load
from avctl.server.inventory_load import load_inventory_apart

FAMILIES = ("videoos", "polyuc", "solstice")


def fleet_file(path: Path, devices: int) -> Path:
    lines = ["defaults:\n  user: admin\n  password: env:FLEET_PW\nsites:\n  hq: {timezone: Europe/Berlin}\n",
             "devices:\n"]
    for i in range(devices):
        lines.append(f"  room-{i:05d}:\n    family: {FAMILIES[i % 3]}\n    address: 10.0.{i // 250}.{i % 250}:"
                     f"{443 + i % 3}\n    site: hq\n    room: r{i}\n    tags: [t{i % 5}, floor-{i % 3}]\n")
    path.write_text("".join(lines))
    return path


def test_the_same_inventory_as_in_the_process(tmp_path: Path) -> None:
    path = fleet_file(tmp_path / "fleet.yaml", 300)
    here, apart = load_inventory(path), load_inventory_apart(path)
    assert apart == here and len(apart) == 300
    assert [d.source for d in apart] == [d.source for d in here]  # file:line of each device kept
    # what 10,000 entries share stays shared after the trip (one object, not 300 copies)
    assert len({id(d.data) for d in apart}) == 1 and apart.devices[0].data == NOTHING
    assert len({id(d.tags) for d in apart}) == len({d.tags for d in apart})


def test_the_same_errors_as_in_the_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("devices:\n  a: {family: nope, address: 10.0.0.1}\n  b: {family: videoos}\n")
    for path, kind in ((broken, InventoryProblems), (tmp_path / "missing.yaml", InventoryError)):
        with pytest.raises(kind) as here:
            load_inventory(path)
        with pytest.raises(kind) as apart:
            load_inventory_apart(path)
        assert str(apart.value) == str(here.value) and vars(apart.value).keys() == vars(here.value).keys()
        assert (apart.value.file, apart.value.line, apart.value.hint) == (here.value.file, here.value.line,
                                                                          here.value.hint)
    assert isinstance(apart.value, InventoryError)
    problems = apart.value.problems if isinstance(apart.value, InventoryProblems) else ()
    assert not problems or [str(p) for p in problems] == [str(p) for p in here.value.problems]


def test_a_loading_process_that_fails_is_one_inventory_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_load, "_CHILD", "import sys; sys.stderr.write('Traceback...\\nMemoryError\\n'); "
                                                  "sys.exit(1)")
    with pytest.raises(InventoryError) as failed:
        load_inventory_apart(fleet_file(tmp_path / "fleet.yaml", 3))
    assert str(failed.value) == (f"{tmp_path / 'fleet.yaml'}: cannot load the inventory: its loading process "
                                 "failed: MemoryError")


MEASURE = """import ctypes, gc, json, sys
from pathlib import Path
from avctl.fleet.inventory import load_inventory
from avctl.server.inventory_load import load_inventory_apart
libc = ctypes.CDLL("libc.so.6")
def rss():
    gc.collect(); libc.malloc_trim(0)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
before = rss()
inventory = (load_inventory_apart if sys.argv[2] == "apart" else load_inventory)(Path(sys.argv[1]))
print(json.dumps((rss() - before) / len(inventory)))
"""


def test_the_server_keeps_a_fraction_of_the_memory_parsing_leaves(tmp_path: Path) -> None:
    """In a fresh process each: the KB of RSS per device that stay after loading 4,000 devices
    (after a collection and malloc_trim). Parsing in the process leaves ~6.5 KB per device behind
    for ~1 KB of entries; the child's result alone is what the server keeps."""
    path = fleet_file(tmp_path / "fleet.yaml", 4000)
    kept = {}
    for how in ("here", "apart"):
        done = subprocess.run([sys.executable, "-c", MEASURE, str(path), how], capture_output=True, text=True,
                              timeout=300, check=True)
        kept[how] = json.loads(done.stdout)
    print(f"KB of RSS per device kept: in the process {kept['here']:.2f}, in a child {kept['apart']:.2f}")
    assert kept["apart"] < kept["here"] / 2


def _errors() -> list[AvctlError]:
    made: list[AvctlError] = []
    for cls in vars(avctl.errors).values():
        if isinstance(cls, type) and issubclass(cls, AvctlError):
            try:
                made.append(cls("went wrong", hint="do this"))  # type: ignore[call-arg]
            except TypeError:
                continue  # other arguments: made below
    made.append(SpecError("bad key", file="x.yaml", line=3, hint="fix it"))
    made.append(InventoryProblems([InventoryError("one", file="f.yaml", line=1),
                                   InventoryError("two", file="f.yaml", line=9, hint="h")]))
    return made


@pytest.mark.parametrize("error", _errors(), ids=lambda e: type(e).__name__)
def test_avctl_errors_survive_pickle_whole(error: AvctlError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error) and back.args == error.args
    assert vars(back).keys() == vars(error).keys()
    assert all(str(getattr(back, k)) == str(getattr(error, k)) for k in vars(error))


def test_a_loading_process_that_writes_something_else_is_one_inventory_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_load, "_CHILD", "print('a plugin said hello')")
    with pytest.raises(InventoryError) as failed:
        load_inventory_apart(fleet_file(tmp_path / "fleet.yaml", 3))
    assert "its loading process failed: exit status 0" in str(failed.value)
