"""`mount_web(app)`: the dashboard's pages, its live-update stream and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from avctl.server.web import errors, live
from avctl.server.web.headers import SecurityHeaders
from avctl.server.web.pages import ROUTERS

STATIC = Path(__file__).parent / "static"


def mount_web(app: FastAPI) -> None:
    """Adds the dashboard to the API's app (its pages are outside ``/api``)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(live.router)
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    app.add_middleware(SecurityHeaders)
