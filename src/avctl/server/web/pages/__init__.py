"""The dashboard's pages: one module per page (or group of pages), each with its own ``router``.

Every module of this package that has a ``router`` is mounted: a new page is a new module.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def _routers() -> tuple[APIRouter, ...]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return tuple(found)


ROUTERS = _routers()
