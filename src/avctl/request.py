"""Wire-level request and response, independent of the HTTP library.

`build_request` turns a validated action call into bytes and headers; the family code may rewrap
the body (Poly UC's `{"data": ...}` envelope) and the auth flow adds headers. Nothing here does I/O.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from avctl.errors import DeviceError, ValidationError
from avctl.spec.model import Action


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: the action this request carries out ("" for protocol requests such as a login)
    action_id: str = ""
    #: stream the response body to this file instead of memory
    stream_to: Path | None = None
    #: per-request overrides (Solstice v1 and v2 live on different ports and schemes)
    scheme: str | None = None
    port: int | None = None
    #: what secret this request carries ("" for none), e.g. "an HTTP Basic header": such a request
    #: goes over plain HTTP only with the user's opt-in (`Device(allow_cleartext=True)`)
    carries_secret: str = ""

    def with_secret(self, what: str) -> Request:
        """This request with `what` (a secret it now carries) recorded, for the cleartext check."""
        return self if self.carries_secret else self.updated(carries_secret=what)
    #: caps on the decompressed answer, in memory and streamed to `stream_to` (None: the spec
    #: model's defaults); `Device` sets them on every request it sends
    max_bytes: int | None = None
    max_file_bytes: int | None = None
    #: `stream_to` may replace an existing file (only when the user asked for it)
    overwrite: bool = False

    def with_headers(self, **headers: str) -> Request:
        names = {k.lower().replace("_", "-") for k in headers}
        kept = tuple((k, v) for k, v in self.headers if k.lower() not in names)
        added = tuple((k.replace("_", "-"), v) for k, v in headers.items())
        return self.updated(headers=kept + added)

    def updated(self, **changes: Any) -> Request:
        """A copy with `changes` to its fields: `dataclasses.replace` without its per-field work (it
        runs several times for every request a poll sends). No __post_init__ to skip: none exists."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Request has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Request)
        vars(new).update(vars(self), **changes)
        return new

    def with_query(self, **params: str) -> Request:
        return replace(self, query=self.query + tuple(params.items()))

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def target(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")



_FIELDS = frozenset(f.name for f in fields(Request))

@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    #: set when the body was streamed to disk
    file: Path | None = None
    elapsed: float = 0.0
    request: Request | None = field(default=None, compare=False)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        """The body as JSON (None when empty). ValueError if it is not JSON; DeviceError if too deep."""
        if not self.body.strip():
            return None
        try:
            data = json.loads(self.body)
        except RecursionError:
            raise self._too_deep() from None
        if _deeper_than(data, MAX_JSON_DEPTH, self.body):
            raise self._too_deep()
        return data

    def _too_deep(self) -> DeviceError:
        what = self.request.action_id or self.request.path if self.request else "answer"
        error = DeviceError(
            f"{what}: the device answered with JSON nested more than {MAX_JSON_DEPTH} levels deep; not read",
            status=self.status,
            hint="no real device answers like this: check the address is the device you meant",
        )
        error.transient = False  # even with a 5xx status: the same answer would come again
        return error

    def try_json(self) -> Any:
        """The body as JSON, or as text when it is not JSON (DeviceError if too deep)."""
        try:
            return self.json()
        except ValueError:
            return self.body.decode("utf-8", "replace") if self.body else None


#: deeper JSON is refused: the stdlib parser would overflow the stack near 1000 levels, and every
#: later consumer (printing, the job store) recurses too. Real device answers nest a few levels.
MAX_JSON_DEPTH = 64


def _deeper_than(data: Any, limit: int, raw: bytes) -> bool:
    """Whether objects and arrays nest more than `limit` levels (iteratively: no recursion)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot be that deep: skip the walk (nearly every answer)
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_binary(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return Path(value).read_bytes()


def build_request(action: Action, values: dict[str, Any], *, max_body_bytes: int | None = None) -> Request:
    """Validated values -> a Request. `values` must come from `avctl.spec.params.validate`."""
    path = action.path
    query: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    body_values: dict[str, Any] = {}
    for p in action.params:
        if p.name not in values:
            continue
        value = values[p.name]
        if p.location == "path":
            path = path.replace("{" + p.wire_name + "}", quote(_text(value), safe=""))
        elif p.location == "query":
            items = value if isinstance(value, list) else [value]
            query.extend((p.wire_name, _text(v)) for v in items)
        elif p.location == "header":
            headers.append((p.wire_name, _text(value)))
        else:
            body_values[p.wire_name] = value
    body: bytes | None = None
    if action.body == "json":
        body = json.dumps(body_values).encode()
        headers.append(("Content-Type", "application/json"))
    elif action.body == "value":
        body = json.dumps(next(iter(body_values.values()))).encode() if body_values else b""
        headers.append(("Content-Type", "application/json"))
    elif action.body == "form":
        body = urlencode({k: _text(v) for k, v in body_values.items()}).encode()
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    elif action.body == "binary":
        param = next(p for p in action.params if p.location == "body")
        body = _read_binary(body_values[param.wire_name]) if body_values else b""
        headers.append(("Content-Type", param.content_type or "application/octet-stream"))
    elif action.body == "multipart":
        body, content_type = _multipart(action, body_values)
        headers.append(("Content-Type", content_type))
    else:
        body = b"" if action.method in ("POST", "PUT", "PATCH") else None
    if max_body_bytes is not None and body is not None and len(body) > max_body_bytes:
        raise ValidationError(
            f"request body is {len(body)} bytes; the device refuses more than {max_body_bytes}",
            action=action.id,
        )
    secrets = [p.name for p in action.params if p.secret and p.name in values]
    return Request(
        method=action.method,
        path=path,
        query=tuple(query),
        headers=tuple(headers),
        body=body,
        action_id=action.id,
        scheme=action.scheme,
        port=action.port,
        carries_secret=f"the secret parameter {secrets[0]!r}" if secrets else "",
    )


def _multipart(action: Action, values: dict[str, Any]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for p in action.params:
        if p.location != "body" or p.wire_name not in values:
            continue
        value = values[p.wire_name]
        if ("binary" in p.types and not isinstance(value, str | bool | int | float)) or (
            "binary" in p.types and isinstance(value, str) and Path(value).is_file()
        ):
            name = Path(value).name if isinstance(value, (str, Path)) else p.wire_name
            data = _read_binary(value)
            head = (
                f'Content-Disposition: form-data; name="{p.wire_name}"; filename="{name}"\r\n'
                f"Content-Type: {p.content_type or 'application/octet-stream'}\r\n\r\n"
            )
        else:
            data = _text(value).encode()
            head = f'Content-Disposition: form-data; name="{p.wire_name}"\r\n\r\n'
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
