"""A posted form (htmx sends ``application/x-www-form-urlencoded``), read without python-multipart.

`Posted` is a page dependency: the fields as a dict (the last value of a repeated name), the body
bounded so that a huge post costs nothing.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request

#: a rules file is at most 1 MiB; percent-encoding may triple it
MAX_FORM_BYTES = 4 * 1024 * 1024
MAX_FIELDS = 200


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The posted fields; refused (413) once past `max_bytes`, before the rest is read."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise HTTPException(status_code=415, detail="send the form as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(status_code=413, detail=f"the form is larger than {max_bytes:,} bytes")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status_code=400, detail="the form cannot be read") from None
    return dict(fields)


async def posted_form(request: Request) -> dict[str, str]:
    return await read_form(request)


Posted = Annotated[dict[str, str], Depends(posted_form)]
