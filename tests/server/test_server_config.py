"""The server's config file: every key read, paths relative to the file, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from avctl.errors import UsageError
from avctl.server.config import ServerConfig, load_config, parse_duration


def test_every_key_is_read_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "server.yaml"
    cfg.parent.mkdir()
    cfg.write_text("inventory: fleet.yaml\ndb: state.db\nlisten: 0.0.0.0:9443\n"
                   "tls: {cert: c.pem, key: k.pem}\ninsecure_http: false\nrules: rules.yaml\n"
                   "public_url: https://av.example.net/\n"
                   "poll: {interval: 2m, concurrency: 50, per_site: 5, timeout: 8s, backoff: 5m}\n"
                   "retention: {raw: 3d, events: 30d}\n"
                   "engine: temporal\ntemporal: {address: 'temporal.example.net:7233', namespace: avctl}\n")
    c = load_config(cfg)
    assert (c.engine, c.temporal_address, c.temporal_namespace) == ("temporal", "temporal.example.net:7233", "avctl")
    assert c.inventory == str(cfg.parent / "fleet.yaml") and c.db == str(cfg.parent / "state.db")
    assert (c.host, c.port) == ("0.0.0.0", 9443)
    assert c.tls_cert == str(cfg.parent / "c.pem") and c.rules == str(cfg.parent / "rules.yaml")
    assert c.public_url == "https://av.example.net"
    poll = c.poll
    assert (poll.interval, poll.concurrency, poll.per_site, poll.timeout, poll.backoff) == (120, 50, 5, 8, 300)
    assert (c.retention.raw, c.retention.events) == (3 * 86400, 30 * 86400)
    # the command line wins over the file
    merged = c.merged({"listen": "127.0.0.1:8000", "interval": 30.0, "db": None, "backoff": 2.0})
    assert merged.listen == "127.0.0.1:8000" and merged.poll.interval == 30 and merged.db == c.db
    assert merged.poll.backoff == 2.0


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("inventory: a.yaml\npolling: {}\n", 2, "unknown key 'polling'"),
    ("poll:\n  interval: soon\n", 2, "poll.interval: 'soon' is not a duration"),
    ("poll:\n  concurrency: 0\n", 2, "at least 1"),
    ("listen: 8443\n", 1, "listen"),
    ("tls: {cert: a.pem}\n", 1, "both cert and key"),
    ("insecure_http: yes please\n", 1, "true or false"),
    ("public_url: https://av.example.net/dashboard\n", 1, "not an origin"),
    ("listen: 127.0.0.1:8443\nengine: celery\n", 2, "engine 'celery' is not one of local, temporal"),
    ("temporal: {host: x}\n", 1, "unknown key 'host' in temporal"),
])
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as info:
        load_config(cfg)
    assert f"server.yaml:{line}:" in info.value.message and needle in info.value.message


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text("")
    assert load_config(cfg) == ServerConfig()


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("4h", 14400),
                                               ("7d", 604800), (2.5, 2.5)])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5m", "5 minutes", "", "nan"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_public_url_trusts_the_proxy_origin_and_marks_cookies_secure(tmp_path: Path) -> None:
    from avctl.server.runtime import ServerRuntime

    inv = tmp_path / "fleet.yaml"
    inv.write_text("devices: {}\n")
    behind = ServerRuntime(ServerConfig(inventory=str(inv), db=str(tmp_path / "a.db"),
                                        public_url="https://av.example.net"))
    direct = ServerRuntime(ServerConfig(inventory=str(inv), db=str(tmp_path / "b.db")))
    try:
        settings = behind.access_settings()
        assert settings.trusted_origins == {"https://av.example.net"} and settings.secure_cookies is True
        assert direct.access_settings().trusted_origins == frozenset()
        assert direct.access_settings().secure_cookies is None  # Secure when the request came over HTTPS
    finally:
        behind.db.close()
        direct.db.close()
