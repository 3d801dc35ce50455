"""What an action would send to a device, without sending it: the dashboard's request preview.

The request is built by the code that builds real requests (`Device.prepare`: validation, the
spec's request builder, the family's wrapping, the inventory's port and scheme maps), on a
`Device` whose transport refuses to send, so a preview can never reach the device. Secret
parameters are replaced by a mask before the request is built, so the preview holds no secret in
any encoding; the login the device needs (its credentials) is named, never shown.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avctl.device import Device
from avctl.errors import AvctlError, UsageError
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import spec_provider
from avctl.redact import MASK
from avctl.request import Request, Response
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.devices import find_device
from avctl.server.service.errors import check
from avctl.spec import Spec
from avctl.spec.model import Action
from avctl.transport.http import Endpoint

#: a body longer than this is shown cut (a JSON configuration can be large)
MAX_BODY_CHARS = 8_000


class _NoSend:
    """A transport for building requests only: sending is a bug, refused loudly."""

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        raise UsageError("a request preview is never sent")

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class RequestPreview:
    method: str
    #: scheme://host:port/path?query, as the request would go out
    url: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    #: the body as text (JSON pretty-printed), "" for none
    body: str
    #: how the device is logged in to first ("" for none): its credentials are never shown
    auth: str
    #: secret parameters given, shown as the mask
    masked: tuple[str, ...]


def device_spec(ctx: ServerContext, entry: DeviceEntry) -> Spec:
    """The spec the server runs the device's actions with (the server's overrides included)."""
    spec: Spec = spec_provider(ctx.spec_overrides)(entry.family)
    return spec


def device_action(ctx: ServerContext, principal: Principal, name: str, action_id: str) -> tuple[DeviceEntry, Action]:
    """The device (in scope) and one action of its spec (UnknownActionError names close ones)."""
    check(principal, "read")
    entry = find_device(ctx, principal, name)
    return entry, device_spec(ctx, entry).action(action_id)


def _body_text(body: bytes | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + "\n… (cut)"


def preview_action(ctx: ServerContext, principal: Principal, name: str, action_id: str,
                   params: Mapping[str, Any]) -> RequestPreview:
    """The request `action_id` with `params` would send to device `name` (ValidationError if the
    parameters do not fit the spec: the same refusal a run would meet)."""
    entry, action = device_action(ctx, principal, name, action_id)
    spec = device_spec(ctx, entry)
    dev = Device(spec, entry.host, port=entry.port, scheme=entry.scheme, transport=_NoSend(), name=entry.name,
                 ports=entry.ports, schemes=entry.schemes, allow_cleartext=entry.allow_cleartext)
    dev.prepare(action_id, params)  # the real parameters are checked as a run would check them
    secret = tuple(p.name for p in action.params if p.secret and params.get(p.name) not in (None, ""))
    shown = {k: (MASK if k in secret else v) for k, v in params.items()}
    try:
        _action, request = dev.prepare(action_id, shown)
    except AvctlError:
        # a secret the spec constrains (a pattern, a length) that the mask does not fit: the path
        # template and a hidden body rather than anything built from the secret
        _action, real = dev.prepare(action_id, params)
        request = Request(method=real.method, path=action.path, scheme=real.scheme, port=real.port,
                          body=MASK.encode() if real.body else None)
    scheme = request.scheme or dev.endpoint.scheme
    endpoint = Endpoint(scheme, dev.endpoint.host, request.port or dev.endpoint.port)
    auth = action.auth or spec.transport.auth_type
    return RequestPreview(method=request.method, url=endpoint.url(request.target), path=request.path,
                          query=request.query, headers=request.headers, body=_body_text(request.body),
                          auth="" if auth == "none" else auth, masked=secret)
