"""Errors on dashboard pages are pages: a login redirect for who is not signed in, an HTML answer
for the rest (a fragment for htmx requests, shown in the page's message area by app.js).
The API's own paths keep their JSON errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from avctl.errors import AvctlError
from avctl.server.api.app import avctl_status
from avctl.server.service import ServiceError
from avctl.server.web.render import is_htmx, render_error

Handler = Callable[[Request, Exception], Awaitable[Response]]

#: paths that are not pages: their errors stay the API's JSON
_NOT_PAGES = ("/api/", "/healthz", "/metrics", "/static/")


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(_NOT_PAGES)


def login_redirect(request: Request) -> Response:
    """To the login page, and back here after it (htmx follows HX-Redirect with a full page load)."""
    here = request.headers.get("hx-current-url") if is_htmx(request) else None
    target = "/login?next=" + quote(here or request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                                    safe="")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _status_and_text(exc: Exception, api_status: Callable[[Exception], int]) -> tuple[int, str, str | None]:
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), None
    if isinstance(exc, ServiceError):
        return exc.status, exc.message, exc.hint
    if isinstance(exc, AvctlError):
        return api_status(exc), exc.message, exc.hint
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = " ".join(str(p) for p in first.get("loc", ()))
        return 422, f"{where or 'request'}: {first.get('msg', 'invalid')}", None
    return 500, "internal error", None


def install(app: FastAPI) -> None:
    """Wraps the app's handlers of these errors: pages get HTML, the API what it had."""

    def api_status(exc: Exception) -> int:
        assert isinstance(exc, AvctlError)
        return avctl_status(exc)

    for kind in (HTTPException, ServiceError, AvctlError, RequestValidationError):
        api_handler = cast(Handler, app.exception_handlers[kind])

        def make(api_handler: Handler) -> Handler:
            async def handler(request: Request, exc: Exception) -> Response:
                if not is_page(request):
                    return await api_handler(request, exc)
                status, message, hint = _status_and_text(exc, api_status)
                if status == 401:
                    return login_redirect(request)
                return render_error(request, status, message, hint)

            return handler

        app.add_exception_handler(kind, make(api_handler))
