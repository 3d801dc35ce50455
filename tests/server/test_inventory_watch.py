"""Inventory reload: a changed file is picked up, a broken edit keeps the running inventory, SIGHUP forces."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from avctl.fleet.inventory import Inventory, load_inventory
from avctl.server.inventory_load import load_inventory_apart
from avctl.server.watch import InventoryWatcher

ONE = """devices:
  room-1: {family: videoos, address: 127.0.0.1:9443}
"""
TWO = ONE + "  room-2: {family: polyuc, address: 127.0.0.1:9444}\n"


Loader = Callable[[Path], Inventory]


def _watch(path: Path, loader: Loader = load_inventory) -> tuple[InventoryWatcher, list[list[str]]]:
    seen: list[list[str]] = []

    def on_inventory(inv: Inventory) -> None:
        seen.append([d.name for d in inv.devices])

    return InventoryWatcher(path, on_inventory, loader=loader), seen


@pytest.mark.parametrize("loader", [load_inventory, load_inventory_apart])  # the server's: in a child
def test_a_change_reloads_and_a_broken_edit_keeps_the_devices(tmp_path: Path, loader: Loader) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(ONE)
    watcher, seen = _watch(path, loader)
    watcher.load_first()
    assert watcher.check() is False  # unchanged
    path.write_text(TWO)
    assert watcher.check() is True
    path.write_text(TWO + "  room-3: {family: videoos, address: [nonsense\n")
    assert watcher.check() is False
    assert watcher.error is not None and "fleet.yaml:" in watcher.error  # file:line of the problem
    assert watcher.inventory is not None and len(watcher.inventory) == 2
    assert watcher.check() is False  # reported once; nothing new
    path.write_text(ONE)
    assert watcher.check() is True and watcher.error is None
    assert seen == [["room-1"], ["room-1", "room-2"], ["room-1"]]


def test_a_missing_file_keeps_the_devices(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(ONE)
    watcher, seen = _watch(path)
    watcher.load_first()
    path.unlink()
    assert watcher.check() is False and watcher.error and "cannot read" in watcher.error
    assert seen == [["room-1"]]


async def test_sighup_reloads_an_unchanged_file_from_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(ONE)
    watcher, seen = _watch(path)
    watcher.every = 3600  # only the forced reload can fire in this test
    watcher.load_first()
    task = asyncio.create_task(watcher.run())
    try:
        watcher.reload_now()
        for _ in range(500):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert seen == [["room-1"], ["room-1"]]
    finally:
        task.cancel()
