"""Credential references, the encrypted secrets file, the Secret type and redaction."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from avctl.errors import UsageError
from avctl.fleet import credentials as cr
from avctl.fleet.credentials import (
    MASK,
    CredentialRef,
    CredentialResolver,
    RedactingFilter,
    Redactor,
    Secret,
    SecretsStore,
    generate_key,
)


class MemoryKeyring(KeyringBackend):
    """A real keyring backend (the keyring API end to end), kept in memory for the test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Any:
    old = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(old)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # start every test from a machine without a usable keyring (as on a headless server)
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("AVCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AVCTL_SECRETS_KEY", raising=False)
    yield tmp_path / "home"
    keyring.set_keyring(old)


def test_secret_never_shows_itself() -> None:
    s = Secret("s3cr3t-value")
    for shown in (str(s), repr(s), f"{s}", f"{s!r}", f"{s:>20}", str([s]), str({"p": s})):
        assert "s3cr3t-value" not in shown
    assert s.reveal() == "s3cr3t-value"
    assert s == Secret("s3cr3t-value") and s != Secret("other")
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(s)


@pytest.mark.parametrize(("text", "scheme", "value"), [
    ("env:HQ_PASS", "env", "HQ_PASS"), ("file:/etc/pw", "file", "/etc/pw"),
    ("keyring:avctl/room1", "keyring", "avctl/room1"), ("secret:hq/admin", "secret", "hq/admin"),
    ("plain:abc", "plain", "abc"), ("789", "plain", "789"), ("Pa55:word", "plain", "Pa55:word"),
])
def test_reference_parsing(text: str, scheme: str, value: str) -> None:
    ref = CredentialRef.parse(text)
    assert (ref.scheme, ref.value) == (scheme, value)
    assert ref.describe() == (f"plain:{MASK}" if scheme == "plain" else text)


@pytest.mark.parametrize(("text", "fragment"), [
    ("secert:x", "unknown credential scheme"), ("env:", "nothing after the colon"),
    ("keyring:nouser", "keyring:SERVICE/USER"), ("secret:bad name", "invalid secret name"),
])
def test_reference_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        CredentialRef.parse(text)


def test_resolve_env_file_keyring_plain(tmp_path: Path, memory_keyring: MemoryKeyring,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOM_PASS", "from-env-1")
    (tmp_path / "pw.txt").write_text("from-file-2\nsecond line ignored\n")
    memory_keyring.set_password("avctl", "room-3", "from-keyring-3")
    warnings: list[str] = []
    r = CredentialResolver(base_dir=tmp_path, on_plaintext=warnings.append)
    assert r.resolve("env:ROOM_PASS").reveal() == "from-env-1"
    assert r.resolve("file:pw.txt").reveal() == "from-file-2"          # relative to base_dir
    assert r.resolve("keyring:avctl/room-3").reveal() == "from-keyring-3"
    assert r.resolve("literal-pw").reveal() == "literal-pw"
    assert len(warnings) == 1 and "plaintext" in warnings[0]
    r.resolve("literal-pw")
    assert len(warnings) == 1  # cached: one warning per reference
    with pytest.raises(UsageError, match="NOPE_VAR"):
        r.resolve("env:NOPE_VAR")
    with pytest.raises(UsageError, match="cannot read credential file"):
        r.resolve("file:missing.txt")
    with pytest.raises(UsageError, match="no password in the OS keyring"):
        r.resolve("keyring:avctl/nobody")


def test_secrets_store_roundtrip_encrypted_at_rest(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVCTL_SECRETS_KEY", generate_key())
    store = SecretsStore()
    store.set("hq/admin", "correct horse battery")
    store.set_many({"b": "bee-value", "a": "ay-value"})
    path = home / "secrets.json"
    raw = path.read_text()
    assert "correct horse battery" not in raw and "bee-value" not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [n["name"] for n in store.names()] == ["a", "b", "hq/admin"]
    assert SecretsStore().get("hq/admin").reveal() == "correct horse battery"
    assert CredentialResolver(store=SecretsStore()).resolve("secret:b").reveal() == "bee-value"
    assert store.remove("a") and not store.remove("a")
    with pytest.raises(UsageError, match="no secret named 'a'"):
        store.get("a")
    # names list without any key at all
    monkeypatch.delenv("AVCTL_SECRETS_KEY")
    assert [n["name"] for n in SecretsStore().names()] == ["b", "hq/admin"]


def test_secrets_wrong_key_and_bad_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SecretsStore(key=generate_key()).set("x", "value-x")
    with pytest.raises(UsageError, match="cannot be decrypted with this key"):
        SecretsStore(key=generate_key()).get("x")
    monkeypatch.setenv("AVCTL_SECRETS_KEY", "not-a-key")
    with pytest.raises(UsageError, match="not a valid key"):
        SecretsStore().get("x")


def test_secrets_without_any_key_fails_with_hint(home: Path) -> None:
    # the default keyring here is the 'fail' backend: no key can be stored, so set must refuse
    with pytest.raises(UsageError) as ei:
        SecretsStore().set("x", "value")
    assert "AVCTL_SECRETS_KEY" in str(ei.value)
    assert not (home / "secrets.json").exists()


def test_secrets_key_created_in_keyring(home: Path, memory_keyring: MemoryKeyring) -> None:
    SecretsStore().set("x", "value-in-keyring-store")
    key = memory_keyring.get_password("avctl", "secrets-key")
    assert key
    assert SecretsStore().get("x").reveal() == "value-in-keyring-store"
    assert SecretsStore(key=key).get("x").reveal() == "value-in-keyring-store"


def test_damaged_secrets_file(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "secrets.json").write_text("{not json")
    with pytest.raises(UsageError, match="damaged"):
        SecretsStore().names()


def test_redactor_keys_values_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    r.add(Secret("topsecret-1"))
    r.add("ab")  # too short to mask safely
    data = {"password": "whatever", "Token": "t", "user": "admin", "nested": [{"note": "pw is topsecret-1!"}],
            "empty_password": "", "n": 5}
    assert r.redact(data) == {"password": MASK, "Token": MASK, "user": "admin",
                              "nested": [{"note": f"pw is {MASK}!"}], "empty_password": "", "n": 5}
    # the process-wide redactor + logging filter
    cr.REDACTOR.add("log-leak-secret-9")
    logger = logging.getLogger("avctl.test.redact")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="avctl.test.redact"):
            logger.info("sending %s to device", "log-leak-secret-9")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "log-leak-secret-9" not in caplog.text and MASK in caplog.text
    assert json.dumps(cr.redact({"x": "log-leak-secret-9"})) == json.dumps({"x": MASK})
