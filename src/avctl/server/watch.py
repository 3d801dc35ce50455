"""Inventory reload without a restart: on a change of the file (checked every few seconds) or SIGHUP.

A reload that fails (a typo, a half-saved file) keeps the inventory that was running and says
what is wrong with file:line: one bad edit must not stop the monitoring of every room. A SIGHUP
reloads even an unchanged file, so that credentials behind references (the secrets file, a password
file) are read again; the poll engine restarts only the devices whose login changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from avctl.errors import AvctlError
from avctl.fleet.inventory import Inventory, load_inventory

log = logging.getLogger(__name__)

#: called with each inventory that loaded (the first one and every reload that changed something)
OnInventory = Callable[[Inventory], None]


class InventoryWatcher:
    def __init__(self, path: str | Path, on_inventory: OnInventory, *, every: float = 2.0,
                 loader: Callable[[Path], Inventory] = load_inventory) -> None:
        self.path = Path(path)
        self.on_inventory = on_inventory
        self.every = every
        self._loader = loader
        self._digest: str | None = None
        self._wake = asyncio.Event()
        self._force = False
        self.inventory: Inventory | None = None
        #: the last reload error (None after a good load), for /healthz and the logs
        self.error: str | None = None
        self.reloads = 0

    def load_first(self) -> Inventory:
        """The inventory at start-up: errors here are fatal (raised), unlike on reload."""
        inventory = self._loader(self.path)
        self._digest = self._file_digest()
        self.inventory = inventory
        self.on_inventory(inventory)
        return inventory

    def reload_now(self) -> None:
        """SIGHUP: reload at once, even if the file did not change."""
        self._force = True
        self._wake.set()

    def check(self) -> bool:
        """One look at the file; reload if it changed (or a reload was asked for). True if reloaded."""
        inventory = self._changed()
        if inventory is not None:
            self.on_inventory(inventory)
        return inventory is not None

    def _changed(self) -> Inventory | None:
        """The file's new inventory, if it changed and loads; None otherwise (blocking: file I/O)."""
        force, self._force = self._force, False
        digest = self._file_digest()
        if digest is None:
            self._report(f"{self.path}: cannot read the inventory file; keeping the devices loaded before")
            return None
        if digest == self._digest and not force:
            return None
        try:
            inventory = self._loader(self.path)
        except AvctlError as exc:
            self._digest = digest  # report a broken file once, not every few seconds
            self._report(f"inventory not reloaded, keeping the devices loaded before: {exc}")
            return None
        self._digest = digest
        self.error = None
        self.inventory = inventory
        self.reloads += 1
        log.info("avctl serve: inventory reloaded: %d devices", len(inventory))
        return inventory

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every)
            self._wake.clear()
            # read and parse off the loop; the callback runs on the loop (it reconfigures pollers)
            inventory = await asyncio.to_thread(self._changed)
            if inventory is not None:
                self.on_inventory(inventory)

    def _file_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def _report(self, message: str) -> None:
        if message != self.error:
            log.error("avctl serve: %s", message)
        self.error = message
