"""What may be shown: secrets masked, device text made printable.

Two defences for everything avctl writes to a terminal, a pipe, a log or a file:

* :data:`REDACTOR` knows every secret of the run (passwords from the inventory, from
  ``--password-env``/``--password-file``/``AVCTL_PASSWORD``/the prompt, secret action parameters)
  and masks them, together with anything under a sensitive key (``password``, ``token``...).
  Commands register their secrets before the first request.
* :func:`printable` turns device-supplied text into text: control characters (C0, DEL, C1, ESC)
  and bidi overrides are shown as visible escapes (``\\x1b``, ``\\u202e``), so a hostile device
  cannot move the cursor, retitle the terminal or reorder what the user reads.

This module is core (no fleet, no CLI): the single-device ``avctl call`` and the fleet share it.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "********"
#: parameter / field names whose values are secrets whatever they contain
SENSITIVE_KEY_RE = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|api[_-]?key|private[_-]?key|pin$|lock[_-]?code|session[_-]?id",
    re.IGNORECASE)


class Secret:
    """A secret value that does not show itself: str, repr and format print a mask.

    Call :meth:`reveal` at the one place the value must go on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # pickling would write it in clear somewhere
        raise TypeError("Secret values cannot be pickled")


class Redactor:
    """Scrubs known secret values and sensitive keys from anything about to be written or shown."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | Secret) -> None:
        raw = value.reveal() if isinstance(value, Secret) else value
        # one- or two-character "secrets" would mangle every string; they are not worth a mask
        if len(raw) < 3:
            return
        with self._lock:
            if raw not in self._values:
                self._values.add(raw)
                self._pattern = None

    def forget_all(self) -> None:
        """Forget every registered value (a test starting clean; a process starting over)."""
        with self._lock:
            self._values.clear()
            self._pattern = None

    def _regex(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # longest first so a secret containing another is masked whole
                alts = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(_any_encoding(v) for v in alts))
            return self._pattern

    def text(self, s: str) -> str:
        rx = self._regex()
        return rx.sub(MASK, s) if rx else s

    def __call__(self, obj: Any) -> Any:
        return self.redact(obj)

    def redact(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like) with secrets masked: sensitive keys and known values."""
        if isinstance(obj, Secret):
            return MASK
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                key = str(k)
                if SENSITIVE_KEY_RE.search(key) and v not in (None, "", False):
                    out[key] = MASK
                else:
                    out[key] = self.redact(v)
            return out
        if isinstance(obj, (list, tuple)):
            return [self.redact(v) for v in obj]
        return obj


def _any_encoding(raw: str) -> str:
    """A pattern for ``raw`` as written or URL-encoded by any encoder (Solstice v1 sends the password
    as ``?password=``; encoders differ on which characters they escape, and an error quoting the
    URL must not show it in any of those forms)."""
    parts = []
    for ch in raw:
        forms = [re.escape(ch)]
        if not (ch.isascii() and ch.isalnum()) and ch not in "-._~":
            # %2f and %2F alike, without making the whole secret case-insensitive
            forms.append("".join("%" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d
                                               for d in f"{b:02x}") for b in ch.encode("utf-8")))
        if ch == " ":
            forms.append(r"\+")
        parts.append(forms[0] if len(forms) == 1 else "(?:" + "|".join(forms) + ")")
    return "".join(parts)


#: process-wide redactor: every secret of the run is added here before the first request
REDACTOR = Redactor()


def redact(obj: Any) -> Any:
    """Shorthand for :data:`REDACTOR`.redact."""
    return REDACTOR.redact(obj)


class RedactingFilter(logging.Filter):
    """A logging filter that masks known secrets in every record (install it on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = shown(msg, multiline=True)  # secrets masked, device text neutralised
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Every log handler (and logging's last resort) gets the redacting filter."""
    root = logging.getLogger()
    for handler in [*root.handlers, logging.lastResort]:
        if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# --- printable text -------------------------------------------------------------------------------

# C0 controls, DEL, C1 controls, and the bidi embeddings/overrides/isolates that reorder a line
_UNSAFE = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
# the same without tab and newline, for blocks meant to span lines
_UNSAFE_BLOCK_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character and bidi override shown as a visible escape.

    ``multiline=True`` keeps newlines and tabs (a block of text meant to span lines); CR is always
    escaped, since it rewrites the line the reader already saw.
    """
    return (_UNSAFE_BLOCK_RE if multiline else _UNSAFE_RE).sub(_escape_char, text)


def shown(value: Any, *, multiline: bool = False) -> str:
    """The one way to turn a value from a device or an error into text for a person:
    secrets masked, controls neutralised."""
    return printable(REDACTOR.text(value if isinstance(value, str) else str(value)), multiline=multiline)
