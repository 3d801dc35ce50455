"""Replacing the rules file with new text: checked by the rules loader first, then written whole.

A text with a mistake writes nothing (the error names its line). A good one goes to a temporary
file in the same folder, flushed to disk, then renamed over the old file: the server (and a SIGHUP
at any moment) reads the old file or the new one, never half of one. The digest of the file the
editor started from must still be the file's: two editors never overwrite each other unseen.

The editor never sees a secret written in the file (`avctl.server.alerts.hidden`): it gets the text
with each one as a placeholder, and a save puts the file's secret back where its placeholder was
left. The digest binds the two: the secrets put back are those of the file the editor was shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from avctl.errors import UsageError
from avctl.server.alerts.hidden import Hidden, mask, unmask
from avctl.server.alerts.rules import MAX_RULES_FILE_BYTES, RulesError, RuleSet, parse_rules

#: one replacement at a time in this process (check-digest-then-rename is one step)
_LOCK = threading.Lock()


class RulesChanged(UsageError):
    """The file changed since the editor read it."""

    kind = "conflict"


@dataclass(frozen=True)
class Replaced:
    old_digest: str
    new_digest: str
    rules: RuleSet


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_rules_text(path: Path) -> tuple[str, str]:
    """The file's text (undecodable bytes shown as U+FFFD) and the digest of its bytes."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RULES_FILE_BYTES + 1)
    except OSError as e:
        raise RulesError(f"cannot read the rules file: {e.strerror}", file=str(path)) from None
    return raw.decode("utf-8", errors="replace"), digest(raw)


@dataclass(frozen=True)
class EditorText:
    """What the editor shows: the text with its secrets hidden, or why it cannot be shown."""

    digest: str
    text: str | None = None
    hidden: tuple[Hidden, ...] = ()
    #: the file is not YAML: its secrets cannot be told apart, so it is not shown
    problem: RulesError | None = None


def read_for_editor(path: Path) -> EditorText:
    """The rules file as the editor shows it: never a secret."""
    text, sha = read_rules_text(path)
    try:
        masked = mask(text, path.name)
    except RulesError as e:
        return EditorText(sha, problem=e)
    return EditorText(sha, masked.text, masked.hidden)


def check_rules_text(path: Path, text: str) -> RuleSet:
    """`text` as the rules loader reads the file at `path` (relative paths from its folder); RulesError
    with ``NAME:LINE:`` otherwise."""
    if len(text.encode()) > MAX_RULES_FILE_BYTES:
        raise RulesError(f"the rules are larger than {MAX_RULES_FILE_BYTES // 1024} KiB", file=path.name)
    return parse_rules(text, file=path.name, path=path)


def _checked(path: Path, text: str, kept: tuple[Hidden, ...]) -> RuleSet:
    """`check_rules_text`; a mistake on the line of a kept secret is told without the loader's words
    (they may quote the value)."""
    try:
        return check_rules_text(path, text)
    except RulesError as e:
        secret = next((h for h in kept if h.line == e.line), None)
        if secret is None:
            raise
        raise RulesError(f"the hidden secret #{secret.number} at {secret.key} is not valid there", file=path.name,
                         line=e.line, hint="type it again or, better, write a reference (secret:NAME, env:VAR)"
                         ) from None


def replace_rules_file(path: Path, text: str, expected_digest: str) -> Replaced:
    """Check `text` (with the file's hidden secrets put back), then write it over `path` atomically,
    if `path` still has `expected_digest`."""
    text = text.replace("\r\n", "\n")  # a browser's textarea sends CRLF
    with _LOCK:
        current, old = read_rules_text(path)
        if old != expected_digest:
            raise RulesChanged("the rules file changed since this page was loaded: nothing was written",
                               hint="load the page again and repeat your change")
        text, kept = unmask(current, text, path.name)
        rules = _checked(path, text, kept)
        data = text.encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(OSError):  # keep who may read it (the file may name secrets' places)
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise RulesError(f"cannot write the rules file: {e.strerror}; it is unchanged",
                             file=path.name) from None
    return Replaced(old, digest(data), rules)
