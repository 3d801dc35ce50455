"""Device profiles: what one device answered to every read, stored as JSON.

A profile is made by `avctl capture` (from a real device, redacted) or assembled from public
recordings (the shipped ones, each answer with its provenance), and served by the emulator
(`avctl emulate FAMILY --profile FILE`). The format is JSON on purpose: profiles are shared,
diffed and reviewed by people, and a JSON Schema (``schema.json`` beside this module) checks a file
before anything is served from it.

An `Exchange` is one read: the request as sent (method, path, query, JSON body) and the answer
(status, content type, body as JSON or text). The emulator finds the exchange of an incoming request
by `request_key`: method, path, the query without credentials, the body as canonical JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema

from avctl.errors import UsageError
from avctl.redact import SENSITIVE_KEY_RE
from avctl.version import __version__

PROFILE_FORMAT = 1
#: a profile larger than this is refused unread (a capture of a real device is well under 2 MB)
MAX_PROFILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """One read and its answer. `answer` is parsed JSON when `is_json`, else the text."""

    action: str
    method: str
    path: str
    status: int
    answer: Any
    is_json: bool = True
    content_type: str = "application/json"
    params: Mapping[str, Any] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    #: where the answer comes from: "captured", or the public recording it was taken from
    source: str = "captured"

    def key(self, ignore_case: bool = False) -> str:
        return request_key(self.method, self.path, self.query, self.body, ignore_case)


@dataclass(frozen=True)
class Redaction:
    """What one placeholder stands for: the kind of value and every place it was found."""

    kind: str
    placeholder: str
    where: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    action: str
    reason: str


@dataclass
class Profile:
    family: str
    model: str = ""
    firmware: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    #: emulator settings that make the device this model (`model`, `firmware`...), per family
    settings: dict[str, Any] = field(default_factory=dict)
    redactions: list[Redaction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: how the profile was made (the device, or the public sources it was assembled from)
    source: str = ""
    created: str = ""
    avctl_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "avctl_profile": PROFILE_FORMAT,
            "family": self.family,
            "model": self.model,
            "firmware": self.firmware,
            "source": self.source,
            "created": self.created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "avctl_version": self.avctl_version,
            "settings": self.settings,
            "redacted": [{"kind": r.kind, "placeholder": r.placeholder, "where": list(r.where)}
                         for r in self.redactions],
            "skipped": [{"action": s.action, "reason": s.reason} for s in self.skipped],
            "reads": [_exchange_json(e) for e in self.exchanges],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "profile") -> Profile:
        try:
            jsonschema.validate(doc, _schema())
        except jsonschema.ValidationError as exc:
            at = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
            raise UsageError(f"{where}: not an avctl profile: at {at}: {exc.message}",
                             hint="make one with 'avctl capture', or see docs/fidelity.md for the format") from None
        return cls(
            family=doc["family"],
            model=doc.get("model", ""),
            firmware=doc.get("firmware", ""),
            source=doc.get("source", ""),
            created=doc.get("created", ""),
            avctl_version=doc.get("avctl_version", ""),
            settings=dict(doc.get("settings", {})),
            redactions=[Redaction(r["kind"], r["placeholder"], tuple(r.get("where", ())))
                        for r in doc.get("redacted", ())],
            skipped=[Skipped(s["action"], s["reason"]) for s in doc.get("skipped", ())],
            exchanges=[_exchange(item) for item in doc["reads"]],
        )


def _exchange_json(e: Exchange) -> dict[str, Any]:
    request: dict[str, Any] = {"method": e.method, "path": e.path}
    if e.query:
        request["query"] = [list(pair) for pair in e.query]
    if e.body is not None:
        request["body"] = e.body
    response: dict[str, Any] = {"status": e.status, "content_type": e.content_type}
    response["json" if e.is_json else "text"] = e.answer
    return {"action": e.action, "params": dict(e.params), "request": request, "response": response,
            "source": e.source}


def _exchange(item: Mapping[str, Any]) -> Exchange:
    request, response = item["request"], item["response"]
    is_json = "json" in response
    return Exchange(
        action=item["action"],
        method=request["method"].upper(),
        path=request["path"],
        status=response["status"],
        answer=response["json"] if is_json else response["text"],
        is_json=is_json,
        content_type=response.get("content_type", "application/json" if is_json else "text/plain"),
        params=dict(item.get("params", {})),
        query=tuple((str(k), str(v)) for k, v in request.get("query", ())),
        body=request.get("body"),
        source=item.get("source", "captured"),
    )


def _schema() -> Any:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads(resources.files("avctl.profile").joinpath("schema.json").read_text("utf-8"))
    return _SCHEMA


_SCHEMA: Any = None


def request_key(method: str, path: str, query: Iterable[tuple[str, str]] | str, body: Any,
                ignore_case: bool = False) -> str:
    """What identifies a read: credentials in the query (Solstice v1's `password=`) are left out, so
    a profile matches whatever password the emulator has; the body compares as canonical JSON."""
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query)
    kept = sorted((k, v) for k, v in pairs if not SENSITIVE_KEY_RE.search(k))
    path = path.rstrip("/") or "/"
    return json.dumps([method.upper(), path.lower() if ignore_case else path, kept, body],
                      sort_keys=True, separators=(",", ":"))


def shipped_profiles() -> dict[str, Path]:
    """The profiles avctl ships (assembled from public recordings of real devices), by name."""
    folder = Path(str(resources.files("avctl.profile").joinpath("shipped")))
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def find_profile(name_or_path: str | Path) -> Path:
    """A profile file: a path, or the name of a shipped profile (``trio-8800``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".json" or len(path.parts) > 1:
        return path
    shipped = shipped_profiles()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise UsageError(f"no profile file or shipped profile named {str(name_or_path)!r}",
                     hint=f"shipped profiles: {', '.join(shipped) or 'none'}; or give a file made by 'avctl capture'")


def load_profile(path: str | Path) -> Profile:
    """Read and check a profile file (or a shipped profile by name); a clear `UsageError` (file and
    JSON path) for anything wrong."""
    path = find_profile(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the profile: {exc.strerror}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_PROFILE_BYTES // (1024 * 1024)} MB; not a profile")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; not a profile") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not an avctl profile (a JSON object is expected)")
    return Profile.from_json(doc, str(path))


def save_profile(profile: Profile, path: str | Path) -> None:
    """Write atomically (a reader sees the old file or the new one), readable by the owner only:
    even redacted, a profile describes someone's room."""
    path = Path(path)
    text = json.dumps(profile.to_json(), indent=1, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
