"""Downloads (`response: file`) saved to disk, safely: the device may be hostile.

The device proposes a file name; avctl takes it only if it is a plain name (no separators, no dot
file, no control characters, at most 255 bytes) and never replaces an existing file unless the
user asked. The body goes to a temporary file beside the target, capped, and is published under
the final name atomically (a hard link fails if the name exists, so a race cannot clobber a file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import unicodedata
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from avctl.errors import DeviceError, ResponseTooLarge, UsageError
from avctl.request import Request
from avctl.spec.model import DEFAULT_MAX_DOWNLOAD_BYTES

if TYPE_CHECKING:  # the responses come from `HttpTransport`, which imports it
    import aiohttp

CHUNK = 1 << 16
NAME_MAX = 255  # bytes, as most file systems count


def label(request: Request) -> str:
    """What a message calls the request: the action, or method and path for protocol requests."""
    return request.action_id or f"{request.method} {request.path}"


def too_large(request: Request, status: int, cap: int, *, download: bool) -> ResponseTooLarge:
    what, option, key = (
        ("download", "--max-download", "max_download_bytes")
        if download
        else ("answer", "--max-response", "max_response_bytes")
    )
    return ResponseTooLarge(
        f"{label(request)}: the device's {what} is larger than {cap} bytes; stopped reading",
        status=status,
        cap=cap,
        hint=f"if the device should send that much, raise the cap: {option} BYTES "
        f"(avctl call, avctl fleet), {key}= (Device), or {key} in the spec's Transport block",
    )


async def capped_chunks(resp: aiohttp.ClientResponse, request: Request, cap: int, *,
                        download: bool) -> AsyncIterator[bytes]:
    """The body in chunks (decompressed: aiohttp inflates as we read), refused once past `cap`."""
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > cap:
            resp.close()  # the rest is never read: the connection cannot be reused
            raise too_large(request, resp.status, cap, download=download)
        yield chunk


async def save_download(resp: aiohttp.ClientResponse, request: Request) -> Path:
    """Stream the body to `request.stream_to` (a file, or a folder for the device's file name)."""
    assert request.stream_to is not None
    target = request.stream_to
    if target.is_dir():
        target = target / _device_name(resp, request)
    if not request.overwrite and os.path.lexists(target):
        raise _exists(request, target)  # before reading anything
    cap = request.max_file_bytes or DEFAULT_MAX_DOWNLOAD_BYTES
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".avctl-", suffix=".part")
    except OSError as exc:
        raise _unwritable(request, target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in capped_chunks(resp, request, cap, download=True):
                fh.write(chunk)
        _publish(Path(tmp), target, request)
    except OSError as exc:
        raise _unwritable(request, target, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # the partial file, or the second name of the published one
    return target


def _publish(tmp: Path, target: Path, request: Request) -> None:
    if request.overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if the name exists, however it got there
    except FileExistsError:
        raise _exists(request, target) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # a file system without hard links: claim the name exclusively, then move onto it
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise _exists(request, target) from None
        os.replace(tmp, target)


def _device_name(resp: aiohttp.ClientResponse, request: Request) -> str:
    with warnings.catch_warnings():
        # aiohttp warns about a malformed parameter by printing it raw: escape sequences and all
        warnings.simplefilter("ignore")
        disposition = resp.content_disposition
    name = (disposition.filename if disposition else None) or resp.url.name or "download.bin"
    why = refused_name(name)
    if why:
        shown = repr(name[:80]) + ("..." if len(name) > 80 else "")
        raise DeviceError(
            f"{label(request)}: the device named the download {shown}; refused: {why}",
            status=resp.status,
            hint="choose the file name yourself: avctl call -o FILE, or Device.call(download_to=FILE)",
        )
    return name


def refused_name(name: str) -> str | None:
    """Why a device-chosen file name is unsafe to create in the download folder, or None."""
    if name in ("", ".", ".."):
        return "not a file name"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return "it contains control or formatting characters"
    if name.startswith("."):
        return "it is a hidden (dot) file"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return f"it is longer than {NAME_MAX} bytes"
    return None


def _exists(request: Request, target: Path) -> UsageError:
    return UsageError(
        f"{label(request)}: {target} exists; not replaced",
        hint="add --overwrite (Device.call(overwrite=True)) to replace it, or choose another name with -o FILE",
    )


def _unwritable(request: Request, target: Path, exc: OSError) -> UsageError:
    return UsageError(
        f"{label(request)}: cannot save the download as {target}: {exc.strerror or exc}",
        hint="choose a writable folder or file with -o",
    )
