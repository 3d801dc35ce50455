"""The server's HTTPS: self-signed on first start, reused and renewed; a user's pair checked; HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest

from avctl.errors import UsageError
from avctl.server.tls import check_plain_http, is_loopback, self_signed_tls, user_tls


def test_self_signed_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = self_signed_tls("127.0.0.1", tmp_path)
    assert first.self_signed and first.fingerprint.startswith("SHA256:")
    assert stat.S_IMODE(first.keyfile.stat().st_mode) == 0o600
    again = self_signed_tls("127.0.0.1", tmp_path)
    assert again.fingerprint == first.fingerprint  # clients that pinned it keep working
    # and it is a pair a TLS server can use
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(first.certfile, first.keyfile)


def test_a_new_name_or_a_near_expiry_makes_a_new_certificate(tmp_path: Path) -> None:
    first = self_signed_tls("127.0.0.1", tmp_path)
    other_name = self_signed_tls("av.example.org", tmp_path)
    assert other_name.fingerprint != first.fingerprint
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=820)
    renewed = self_signed_tls("av.example.org", tmp_path, now=later)
    assert renewed.fingerprint != other_name.fingerprint


def test_user_pair_is_checked_at_start(tmp_path: Path) -> None:
    good = self_signed_tls("127.0.0.1", tmp_path / "a")
    assert user_tls(str(good.certfile), str(good.keyfile)).fingerprint == good.fingerprint
    other = self_signed_tls("127.0.0.1", tmp_path / "b")
    with pytest.raises(UsageError, match="key must belong to the certificate"):
        user_tls(str(good.certfile), str(other.keyfile))
    with pytest.raises(UsageError, match="not found"):
        user_tls(str(tmp_path / "missing.pem"), str(good.keyfile))


@pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("10.1.2.3", False),
                                            ("av.example.org", False)])
def test_plain_http_only_on_loopback_unless_asked_by_name(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
    if loop:
        check_plain_http(host, False)
    else:
        with pytest.raises(UsageError, match="--insecure-http"):
            check_plain_http(host, False)
    check_plain_http(host, True)
