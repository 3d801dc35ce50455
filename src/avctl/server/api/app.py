"""The REST API: `create_app(ctx)` -> a FastAPI app serving ``/api/v1``, ``/healthz`` and ``/metrics``.

Thin by design: every route parses its request, calls one service function
(``avctl.server.service``) and shapes the answer; authorisation is each route's dependency
(``avctl.server.access.deps``) plus the service's own checks of scope and disruptive actions.
Errors are JSON ``{"error": ..., "hint": ..., "param": ...}`` with the fitting status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from avctl.errors import AvctlError, UsageError, ValidationError
from avctl.fleet.store import StoreError
from avctl.server.access.deps import current_principal, is_guard
from avctl.server.access.routes import router as access_router
from avctl.server.api import alerts, audit, config, devices, jobs, rules, schedules, system
from avctl.server.api.deps import Anyone, authenticate_again
from avctl.server.context import ServerContext
from avctl.server.service import ServiceError
from avctl.version import __version__

PREFIX = "/api/v1"


def problem(status: int, error: str, *, hint: str | None = None, param: str | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if hint:
        body["hint"] = hint
    if param:
        body["param"] = param
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def avctl_status(exc: AvctlError) -> int:
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, UsageError):
        return 400
    return 502  # a device's error reaching the API outside an outcome


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.message, hint=exc.hint)


async def _avctl_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AvctlError)
    return problem(avctl_status(exc), exc.message, hint=exc.hint, param=getattr(exc, "param", None))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


def _calls(dependant: Any) -> Iterator[Any]:
    """The dependencies' callables, each after those it depends on."""
    for sub in getattr(dependant, "dependencies", ()):
        yield from _calls(sub)
        yield sub.call


async def _refusal(request: Request) -> HTTPException | None:
    """For a request FastAPI could not parse: how its credentials and guards refuse it, if they do."""
    calls = list(_calls(getattr(request.scope.get("route"), "dependant", None)))
    if current_principal not in calls:
        return None  # open (the login): the body's error is the answer
    try:
        principal = await authenticate_again(request)
        for call in calls:
            if is_guard(call):
                call(principal)
    except HTTPException as refused:
        return refused
    return None


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI parses a JSON body before it runs the dependencies: without this, a caller with no
    # credentials, a cookie without its CSRF token or a role that may not would be told about the body
    refused = await _refusal(request)
    if refused is not None:
        return await _http_error(request, refused)
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(p) for p in first.get("loc", ())]
    param = where[-1] if where else None
    return problem(422, f"{' '.join(where) or 'request'}: {first.get('msg', 'invalid')}", param=param,
                   hint="see /api/v1/docs for what this endpoint takes")


def _documentation(app: FastAPI) -> None:
    """The OpenAPI document and its browser view, for signed-in users only (deny by default)."""

    @app.get(f"{PREFIX}/openapi.json", include_in_schema=False)
    def openapi(_principal: Anyone) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    def docs(_principal: Anyone) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{PREFIX}/openapi.json", title="avctl server API")


def create_app(ctx: ServerContext) -> FastAPI:
    app = FastAPI(title="avctl server", version=__version__,
                  description="A fleet service for Poly VideoOS codecs, Poly UC phones and Mersive Solstice pods: "
                              "devices and their state, actions, fleet jobs, alerts, the audit log.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.db = ctx.db  # what the access dependencies read (users, sessions, tokens)
    _documentation(app)
    for module in (devices, config, jobs, schedules, alerts, audit, rules):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(access_router)  # login, logout, whoami, tokens, users: already under /api/v1
    app.include_router(system.router)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(AvctlError, _avctl_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    return app
