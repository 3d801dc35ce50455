"""The server's inventory, parsed in a short-lived child process: the server keeps only the result.

Parsing YAML builds a node graph with two marks per node, several times the size of the entries it
yields, and frees it once they exist. In a long-running process what parsing freed stays behind in
the small-object heap, scattered among what it kept: loading a 10,000-device inventory left the
process 6.4 KB larger per device (RSS, after a collection and `malloc_trim`) for 1 KB of entries.
The child parses and checks the file (the same `load_inventory`, the same errors with file:line)
and sends the `Inventory` back pickled; unpickling allocates the entries alone, side by side.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from avctl.errors import AvctlError
from avctl.fleet.inventory import Inventory, InventoryError, load_inventory
from avctl.paths import child_environment
from avctl.server.wire import decode, encode

#: what the child runs: the inventory's path follows on its command line
_CHILD = "import sys; from avctl.server.inventory_load import child_entry; child_entry(sys.argv[1])"


def load_inventory_apart(path: Path) -> Inventory:
    """`load_inventory(path)`, parsed in a child process (see the module's doc). Raises what it
    raises (an `InventoryError` with file:line, `InventoryProblems`...)."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, check=False,
                          stdin=subprocess.DEVNULL, env=child_environment())
    if done.returncode == 0:
        try:
            kind, value = decode(done.stdout)
        except Exception:  # not one message of ours (something else wrote to its output): said below
            kind, value = "", None
        if kind == "inventory" and isinstance(value, Inventory):
            return value
        if kind == "error" and isinstance(value, AvctlError):
            raise value
    last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    raise InventoryError(f"cannot load the inventory: its loading process failed: {last}", file=str(path))


def child_entry(path: str) -> None:
    """The child: the inventory (or the avctl error loading it gave), pickled on standard output."""
    try:
        message: tuple[str, object] = ("inventory", load_inventory(path))
    except AvctlError as exc:
        message = ("error", exc)
    sys.stdout.buffer.write(encode(message))
    sys.stdout.buffer.flush()
