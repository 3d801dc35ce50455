"""Credentials are *referenced*, never pasted: resolution, the encrypted secrets file, redaction.

A password field in the inventory holds a reference:

=====================  =====================================================================
``env:VAR``            the environment variable VAR
``file:PATH``          the first line of a file (relative paths: relative to the inventory)
``keyring:SERVICE/USER``  the OS keyring (python ``keyring``)
``secret:NAME``        the encrypted secrets file managed by ``avctl secrets set/list/rm``
``plain:TEXT``         a literal password (works, but warns: it sits in the file in clear)
=====================  =====================================================================

A bare string with no scheme is also a literal password and warns the same way. A string that
*looks* like a reference with an unknown scheme (``secert:x``) is an error rather than a
password, so a typo never becomes a failed login (devices lock accounts out).

The secrets file (``$AVCTL_HOME/secrets.json``) keeps names in clear (so ``secrets list`` works
without the key) and each value as a Fernet token (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package). The key comes from ``AVCTL_SECRETS_KEY`` or the OS keyring
(service ``avctl``, user ``secrets-key``); ``avctl secrets keygen`` prints a fresh one.

Every resolved value is a :class:`Secret`, whose ``str``/``repr``/``format`` never show it, and is
registered with the process-wide :data:`REDACTOR` (both live in :mod:`avctl.redact`), which the
journal, the audit log, the output writers and the log filter use to scrub anything that would
otherwise leak.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avctl.errors import UsageError
from avctl.fleet.paths import avctl_home
from avctl.paths import ensure_private_dir

# the redaction core lives in avctl.redact (avctl call needs it too); these names stay importable
# from here for the fleet modules and for users of the old path
from avctl.redact import (
    MASK,
    REDACTOR,
    SENSITIVE_KEY_RE,
    RedactingFilter,
    Redactor,
    Secret,
    redact,
)

__all__ = [
    "KEY_ENV",
    "MASK",
    "REDACTOR",
    "SENSITIVE_KEY_RE",
    "CredentialProblems",
    "CredentialRef",
    "CredentialResolver",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "SecretsStore",
    "generate_key",
    "load_key",
    "redact",
]

log = logging.getLogger(__name__)

KEY_ENV = "AVCTL_SECRETS_KEY"
KEYRING_SERVICE = "avctl"
KEYRING_KEY_USER = "secrets-key"
SCHEMES = ("env", "file", "keyring", "secret", "plain")
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9_-]{1,15}):(.*)$", re.DOTALL)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/+-]{0,127}$")


# --- references ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialRef:
    """A parsed password reference. ``value`` is the scheme's argument (for plain: the password)."""

    scheme: str
    value: str

    @property
    def is_plaintext(self) -> bool:
        return self.scheme == "plain"

    def describe(self) -> str:
        """Printable form: the reference itself, or a mask for a literal password."""
        return f"plain:{MASK}" if self.is_plaintext else f"{self.scheme}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> CredentialRef:
        m = _SCHEME_RE.match(text)
        if not m:
            return cls("plain", text)
        scheme, rest = m.group(1), m.group(2)
        if scheme not in SCHEMES:
            raise UsageError(
                f"unknown credential scheme {scheme!r}",
                hint="use env:VAR, file:PATH, keyring:SERVICE/USER, secret:NAME, or plain:TEXT for a literal")
        if scheme != "plain" and not rest:
            raise UsageError(f"credential reference '{scheme}:' has nothing after the colon")
        if scheme == "keyring" and "/" not in rest:
            raise UsageError(f"keyring reference must be keyring:SERVICE/USER, got 'keyring:{rest}'")
        if scheme == "secret" and not _NAME_RE.match(rest):
            raise UsageError(f"invalid secret name {rest!r}")
        return cls(scheme, rest)


#: a password file is one short line; reading more than this is a mistake (a wrong path)
SECRET_FILE_MAX = 64 * 1024


def read_secret_file(path: str | os.PathLike[str], what: str = "password file") -> str:
    """The first line of a file holding a secret (a UTF-8 BOM is dropped).

    A binary file (NUL bytes, not UTF-8) or a huge one is refused with a clear message rather than
    sent as a garbled password: a wrong login costs a lockout attempt on most devices. The message
    never shows the file's content.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(SECRET_FILE_MAX + 1)
    except OSError as e:
        raise UsageError(f"cannot read {what} {p}: {e.strerror}") from None
    hint = "the file must hold the secret as one line of UTF-8 text"
    if len(raw) > SECRET_FILE_MAX:
        raise UsageError(f"{what} {p} is larger than {SECRET_FILE_MAX // 1024} KiB: not a password file",
                         hint=hint)
    nul = raw.find(b"\0")
    if nul >= 0:
        raise UsageError(f"{what} {p} is binary (NUL byte at offset {nul})", hint=hint)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {p} is not UTF-8 text (bad byte at offset {e.start})", hint=hint) from None
    lines = text.splitlines()
    return lines[0] if lines else ""


# --- the encrypted secrets file -------------------------------------------------------------------


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _keyring_get(service: str, user: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            value: str | None = keyring.get_password(service, user)
            return value
        except KeyringError:  # includes NoKeyringError on headless machines
            return None
    except ImportError:  # pragma: no cover - keyring is a hard dependency
        return None


def load_key() -> str | None:
    """The secrets key from AVCTL_SECRETS_KEY, else the OS keyring, else None."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.strip()
    return _keyring_get(KEYRING_SERVICE, KEYRING_KEY_USER)


class SecretsStore:
    """The encrypted secrets file. Names are clear text; values are Fernet tokens."""

    def __init__(self, path: Path | None = None, key: str | None = None) -> None:
        self.path = path if path is not None else avctl_home() / "secrets.json"
        self._key = key

    # key handling: looked up lazily so list/rm work without it
    def _fernet(self, *, create: bool = False) -> Any:
        from cryptography.fernet import Fernet

        key = self._key or load_key()
        if not key and create:
            key = self._create_key()
        if not key:
            raise UsageError(
                "no key for the secrets file",
                hint=f"set {KEY_ENV} (generate one with 'avctl secrets keygen') or store it in the OS "
                     f"keyring (service '{KEYRING_SERVICE}', user '{KEYRING_KEY_USER}')")
        try:
            f = Fernet(key.encode())
        except (ValueError, TypeError):
            raise UsageError(f"{KEY_ENV} is not a valid key (32 url-safe base64 bytes)",
                             hint="generate one with 'avctl secrets keygen'") from None
        self._key = key
        return f

    def _create_key(self) -> str | None:
        """First `secrets set` without a key: make one and keep it in the OS keyring if there is one."""
        key = generate_key()
        try:
            import keyring
            from keyring.errors import KeyringError

            try:
                keyring.set_password(KEYRING_SERVICE, KEYRING_KEY_USER, key)
            except KeyringError:
                return None
        except ImportError:  # pragma: no cover
            return None
        log.warning("created a new secrets key and stored it in the OS keyring")
        return key

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "secrets": {}}
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("secrets"), dict):
                raise ValueError("no 'secrets' object")
        except ValueError as e:
            raise UsageError(f"{self.path}: secrets file is damaged: {e}") from None
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        self._write_bytes(json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))

    @contextlib.contextmanager
    def rollback_on_error(self) -> Iterator[None]:
        """Put the file back byte for byte if the block fails (a multi-file write that must be
        all or nothing, such as an import)."""
        try:
            before: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            before = None
        try:
            yield
        except BaseException:
            if before is None:
                self.path.unlink(missing_ok=True)
            else:
                self._write_bytes(before)
            raise

    def _write_bytes(self, data: bytes) -> None:
        ensure_private_dir(self.path.parent)
        # temp file + rename: a crash never leaves a half-written secrets file
        fd, tmp = tempfile.mkstemp(prefix=".secrets.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def names(self) -> list[dict[str, str]]:
        """Name and last update of every secret (no key needed, nothing decrypted)."""
        doc = self._read()
        return [{"name": n, "updated": str(e.get("updated", ""))} for n, e in sorted(doc["secrets"].items())]

    def set(self, name: str, value: str | Secret) -> None:
        self.set_many({name: value})

    def set_many(self, items: Mapping[str, str | Secret]) -> None:
        """Store several secrets with one write (imports of hundreds of devices)."""
        for name in items:
            if not _NAME_RE.match(name):
                raise UsageError(f"invalid secret name {name!r}",
                                 hint="letters, digits and . _ @ / + - ; at most 128 characters")
        f = self._fernet(create=True)
        doc = self._read()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for name, value in items.items():
            raw = value.reveal() if isinstance(value, Secret) else value
            REDACTOR.add(raw)
            doc["secrets"][name] = {"token": f.encrypt(raw.encode()).decode(), "updated": now}
        self._write(doc)

    def get(self, name: str) -> Secret:
        from cryptography.fernet import InvalidToken

        doc = self._read()
        entry = doc["secrets"].get(name)
        if entry is None:
            raise UsageError(f"no secret named {name!r} in {self.path}",
                             hint="add it with 'avctl secrets set'")
        f = self._fernet()
        try:
            value = f.decrypt(str(entry["token"]).encode()).decode()
        except (InvalidToken, KeyError):
            raise UsageError(f"secret {name!r} cannot be decrypted with this key",
                             hint=f"check {KEY_ENV} or the key in the OS keyring") from None
        REDACTOR.add(value)
        return Secret(value)

    def remove(self, name: str) -> bool:
        doc = self._read()
        if name not in doc["secrets"]:
            return False
        del doc["secrets"][name]
        self._write(doc)
        return True


# --- resolution ---------------------------------------------------------------------------------


class CredentialResolver:
    """Turns references into :class:`Secret` values, once per reference (fleets share credentials)."""

    def __init__(self, *, base_dir: Path | None = None, store: SecretsStore | None = None,
                 environ: Mapping[str, str] | None = None,
                 on_plaintext: Callable[[str], None] | None = None) -> None:
        self.base_dir = base_dir or Path.cwd()
        self._store = store
        self._environ = environ
        self._cache: dict[CredentialRef, Secret] = {}
        self._lock = threading.Lock()
        self._on_plaintext = on_plaintext

    @property
    def store(self) -> SecretsStore:
        if self._store is None:
            self._store = SecretsStore()
        return self._store

    def resolve(self, ref: str | CredentialRef) -> Secret:
        cref = ref if isinstance(ref, CredentialRef) else CredentialRef.parse(ref)
        with self._lock:
            hit = self._cache.get(cref)
        if hit is not None:
            return hit
        secret = self._resolve(cref)
        REDACTOR.add(secret)
        with self._lock:
            self._cache[cref] = secret
        return secret

    def clear(self) -> None:
        """Forget what was resolved: the next `resolve` reads each source again (a server's
        inventory reload must see a password the user fixed behind an unchanged reference)."""
        with self._lock:
            self._cache.clear()

    def _resolve(self, ref: CredentialRef) -> Secret:
        if ref.scheme == "plain":
            if self._on_plaintext:
                self._on_plaintext("a plaintext password is in use; store it with 'avctl secrets set'")
            return Secret(ref.value)
        if ref.scheme == "env":
            env = self._environ if self._environ is not None else os.environ
            value = env.get(ref.value)
            if value is None:
                raise UsageError(f"environment variable {ref.value} (from env:{ref.value}) is not set")
            return Secret(value)
        if ref.scheme == "file":
            path = Path(ref.value).expanduser()
            if not path.is_absolute():
                path = self.base_dir / path
            return Secret(read_secret_file(path, "credential file"))
        if ref.scheme == "keyring":
            service, _, user = ref.value.rpartition("/")
            value = _keyring_get(service, user)
            if value is None:
                raise UsageError(f"no password in the OS keyring for service {service!r}, user {user!r}")
            return Secret(value)
        if ref.scheme == "secret":
            return self.store.get(ref.value)
        raise UsageError(f"unknown credential scheme {ref.scheme!r}")  # pragma: no cover - parse() guards



class CredentialProblems(UsageError):
    """Password references that cannot be resolved, all of them, found before a job starts: one
    problem per reference, naming the devices that use it."""

    def __init__(self, problems: list[UsageError], devices: int) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in problems),
                         hint=f"{devices} device(s) have no usable password; nothing was sent to any device")


#: devices named per reference in a problem before "and N more"
_NAMED = 5


def _named(devices: Sequence[str]) -> str:
    more = len(devices) - _NAMED
    return ", ".join(devices[:_NAMED]) + (f" and {more} more" if more > 0 else "")


def check_references(resolver: CredentialResolver, uses: Iterable[tuple[str, str]], *,
                     unset: Sequence[str] = ()) -> None:
    """Resolve every reference of ``uses`` ((device name, reference) pairs) now, each once, and
    raise one `CredentialProblems` listing every reference that fails with its devices, and the
    devices of ``unset`` (no password at all) as one more problem."""
    by_ref: dict[str, list[str]] = {}
    for device, ref in uses:
        by_ref.setdefault(ref, []).append(device)
    problems: list[UsageError] = []
    failed = 0
    if unset:
        problems.append(UsageError(
            f"no password for {_named(unset)}",
            hint="give --password-env VAR or --password-file FILE, or a password: reference in the inventory "
                 "(under defaults:, a site or the device; docs/fleet.md)"))
        failed += len(unset)
    for ref, devices in by_ref.items():
        try:
            resolver.resolve(ref)
        except UsageError as exc:
            try:
                shown_ref = CredentialRef.parse(ref).describe()
            except UsageError:  # pragma: no cover - the inventory parsed it already
                shown_ref = MASK
            problems.append(UsageError(f"password {shown_ref} of {_named(devices)}: {exc.message}", hint=exc.hint))
            failed += len(devices)
    if problems:
        raise CredentialProblems(problems, failed)
