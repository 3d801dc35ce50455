"""What the server's own child processes send it (the poller's messages, a parsed inventory): pickle,
over pipes to and from this avctl, never bytes from anyone else.

Inventory entries hold read-only mappings, which pickle does not know: they travel as dicts and come
back read-only. Objects shared inside one message (the empty mapping 10,000 entries share, their tags)
stay shared: pickle's memo writes each once.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from types import MappingProxyType
from typing import Any


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


_TABLE = copyreg.dispatch_table.copy()
_TABLE[MappingProxyType] = lambda m: (read_only, (dict(m),))


def encode(message: Any) -> memoryview:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TABLE
    pickler.dump(message)
    return buffer.getbuffer()


def decode(data: bytes) -> Any:
    return pickle.loads(data)
