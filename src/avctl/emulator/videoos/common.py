"""Helpers shared by the VideoOS handler mixins: body and query checks with the reference's codes.

A body that is not the JSON object an action takes answers 400; a required field that is missing
answers 400, or 415 where the reference lists 415 ("payload invalid or missing required field")
for the endpoint. Field types are checked with the spec's own parameter declarations, as the
device checks what its API documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema
from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError
from avctl.spec.params import param_schema

if TYPE_CHECKING:
    from avctl.emulator.core import Faults
    from avctl.emulator.videoos.calls import Connection
    from avctl.emulator.videoos.state import VideoOSState


def fail(reason: str) -> dict[str, Any]:
    return {"success": False, "reason": reason}


def body_object(ctx: Ctx, *, missing: int = 400) -> dict[str, Any]:
    """The JSON object body, checked against the action's body parameters."""
    body = ctx.json()
    if not isinstance(body, dict):
        raise HTTPError(400, fail("expected a JSON object body"))
    for p in ctx.action.params:
        if p.location != "body":
            continue
        if p.wire_name not in body:
            if p.required or p.has_const:
                raise HTTPError(missing, fail(f"missing required field {p.wire_name!r}"))
            continue
        value = body[p.wire_name]
        if p.has_const:
            if value != p.const:
                raise HTTPError(400, fail(f"{p.wire_name} must be {p.const!r}"))
            continue
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(param_schema(p)).iter_errors(value)
        )
        if error is not None:
            raise HTTPError(400, fail(f"{p.wire_name}: {error.message}"))
    return body


def path_int(ctx: Ctx, name: str) -> int:
    """A numeric id from the path; anything else names nothing (404)."""
    text = ctx.path_params.get(name, "")
    try:
        return int(text)
    except ValueError:
        raise HTTPError(404, fail(f"no such {name} {text!r}")) from None


def query_int(ctx: Ctx, name: str, default: int, *, minimum: int = 1) -> int:
    text = ctx.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(400, fail(f"{name} must be an integer")) from None
    if value < minimum:
        raise HTTPError(400, fail(f"{name} must be >= {minimum}"))
    return value


def query_bool(ctx: Ctx, name: str) -> bool | None:
    text = ctx.query.get(name)
    if text is None:
        return None
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise HTTPError(400, fail(f"{name} must be true or false"))


def page(items: list[dict[str, Any]], start: int, limit: int, href: str) -> dict[str, Any]:
    """1-based paging with a `next` link when more remain (directory favorites and queries)."""
    chunk = items[start - 1 : start - 1 + limit]
    out: dict[str, Any] = {"entries": chunk}
    if start - 1 + limit < len(items):
        out["next"] = {"rel": "next", "href": f"{href}?start={start + limit}&limit={limit}"}
    return out


class HandlerBase:
    """What the mixins use from `EmulatedVideoOS` / `EmulatedDevice` (declared for type checking)."""

    state: VideoOSState
    sessions: dict[str, dict[str, Any]]
    faults: Faults
    host: str

    if TYPE_CHECKING:
        # declared only for the type checker: a real method here would shadow EmulatedDevice's

        def reboot(self, seconds: float | None = None) -> None: ...

        def reset_certificate(self) -> None: ...

        def _login(self, request: web.Request, body: bytes) -> web.StreamResponse: ...

        def _logout(self, request: web.Request) -> web.StreamResponse: ...

        def _dial(
            self, address: str, rate: int | None, dial_type: str | None, conf_id: int | None = None
        ) -> Connection: ...
