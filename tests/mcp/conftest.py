"""One emulated fleet and one `avctl mcp` session per module (each test module starts its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcp.harness import Fleet, emulated_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with emulated_fleet(tmp_path_factory.mktemp("mcp")) as f:
        yield f


@pytest.fixture(scope="module")
def errlog(fleet: Fleet) -> Path:
    """Where the `avctl mcp` processes of the module write their stderr (shown when a test fails)."""
    return fleet.home / "mcp-stderr.log"
