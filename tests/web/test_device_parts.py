"""The device page's parts without a browser: the request preview (built by the real request code,
secrets masked), the charts' geometry, which downloaded files may be served, the pinned endpoints."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from avctl.db.retention import Point
from avctl.errors import ValidationError
from avctl.fleet.inventory import DeviceEntry
from avctl.redact import MASK
from avctl.server.model import Principal
from avctl.server.service.downloads import download_path, downloads
from avctl.server.service.errors import NotFound
from avctl.server.service.pins import https_endpoints
from avctl.server.service.preview import preview_action
from avctl.server.web.charts import chart, number, unit_of
from avctl.transport.address import parse_address

ADMIN = Principal(1, "admin", "admin")
HQ_ONLY = Principal(2, "hd", "helpdesk", sites=frozenset({"hq"}))


def entry(name: str, family: str, address: str, site: str = "hq", **kw: Any) -> DeviceEntry:
    return DeviceEntry(name=name, family=family, address=parse_address(address), site=site, **kw)


def context(tmp_path: Path, *entries: DeviceEntry) -> Any:
    """What these service functions read of the server's context: the inventory, spec overrides,
    the downloads folder."""
    return SimpleNamespace(inventory=lambda: list(entries), spec_overrides={}, downloads=tmp_path / "downloads")


def test_preview_is_the_real_request_with_secrets_masked_even_short_ones(tmp_path: Path) -> None:
    ctx = context(tmp_path, entry("codec", "videoos", "127.0.0.1:8443"))
    # a two-character PIN is below what the log redactor masks: the preview never builds with it
    shown = preview_action(ctx, ADMIN, "codec", "collaboration_content_start", {"pin": "q7"})
    assert shown.method == "POST"
    assert shown.query == (("pin", MASK),)
    assert "q7" not in shown.url and shown.url.startswith("https://127.0.0.1:8443/rest/collaboration/content?pin=")
    assert shown.masked == ("pin",)
    assert shown.auth == "videoos_session"
    body = preview_action(ctx, ADMIN, "codec", "conferences_dial", {"address": "sip:a@b", "password": "pw-xyz-1"})
    assert '"password": "********"' in body.body and "pw-xyz-1" not in body.body
    assert ("Content-Type", "application/json") in body.headers


def test_preview_uses_the_inventory_port_maps_and_validates(tmp_path: Path) -> None:
    pod = entry("pod", "solstice", "127.0.0.1:5443", ports={"https": 34041, "http": 8080})
    ctx = context(tmp_path, pod)
    shown = preview_action(ctx, ADMIN, "pod", "v1_config_get", {})
    assert shown.url == "https://127.0.0.1:34041/api/config"
    codec_ctx = context(tmp_path, entry("codec", "videoos", "127.0.0.1:8443"))
    with pytest.raises(ValidationError, match="volume"):
        preview_action(codec_ctx, ADMIN, "codec", "audio_volume_set", {"volume": 500})


def test_preview_of_a_device_out_of_scope_is_not_found(tmp_path: Path) -> None:
    ctx = context(tmp_path, entry("br-codec", "videoos", "127.0.0.1:8443", site="branch"))
    with pytest.raises(NotFound):
        preview_action(ctx, HQ_ONLY, "br-codec", "audio_volume_set", {"volume": 5})


def test_pinned_endpoints_are_the_https_ones() -> None:
    ctx = context(Path("."))
    pod = entry("pod", "solstice", "127.0.0.1:5443", ports={"https": 34041, "http": 8080})
    assert https_endpoints(ctx, pod) == [("127.0.0.1", 5443), ("127.0.0.1", 34041)]
    plain = entry("pod2", "solstice", "127.0.0.1:5443", schemes={"https": "http"}, ports={"http": 8080})
    assert https_endpoints(ctx, plain) == []


def test_only_regular_files_in_the_device_folder_are_served(tmp_path: Path) -> None:
    codec = entry("codec", "videoos", "127.0.0.1:8443")
    other = entry("other", "videoos", "127.0.0.1:8444")
    ctx = context(tmp_path, codec, other, entry("fresh", "polyuc", "127.0.0.1:8445"))
    folder = tmp_path / "downloads" / "codec"
    folder.mkdir(parents=True)
    (folder / "logs.tar").write_bytes(b"x" * 10)
    (folder / ".avctl-1.part").write_bytes(b"half")
    (folder / "sub").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path / "secret.txt", folder / "link.txt")
    (tmp_path / "downloads" / "other").mkdir()
    (tmp_path / "downloads" / "other" / "theirs.tar").write_text("theirs")
    assert [(f.name, f.size) for f in downloads(ctx, ADMIN, "codec")] == [("logs.tar", 10)]
    assert download_path(ctx, ADMIN, "codec", "logs.tar") == folder / "logs.tar"
    for bad in (".avctl-1.part", "sub", "link.txt", "../secret.txt", "../other/theirs.tar", "..", ""):
        with pytest.raises(NotFound):
            download_path(ctx, ADMIN, "codec", bad)
    # each device its own folder; a device without one yet has no files; an unknown device is not found
    assert [f.name for f in downloads(ctx, ADMIN, "other")] == ["theirs.tar"]
    assert downloads(ctx, ADMIN, "fresh") == []
    with pytest.raises(NotFound):
        downloads(ctx, ADMIN, "nobody")


def test_chart_geometry_axes_and_units() -> None:
    raw = [Point(1000.0 + i * 60, float(v), float(v), float(v), 1) for i, v in enumerate((10, 30, 20))]
    c = chart("volume", 0, raw, 1000.0, 1000.0 + 3600)
    assert c.unit == "%" and c.points == 3 and c.band == "" and c.last == 20.0
    xs = [float(p.split(",")[0]) for p in c.line.split()]
    ys = [float(p.split(",")[1]) for p in c.line.split()]
    assert xs == sorted(xs) and c.left <= xs[0] < xs[-1] <= c.right
    assert ys[1] < ys[2] < ys[0]  # higher values are drawn higher up
    labels = [float(t.label) for t in c.y_ticks]
    assert labels == sorted(labels) and labels[0] <= 10 and labels[-1] >= 30
    assert len(c.x_ticks) == 5 and c.x_ticks[0].at == c.left and c.x_ticks[-1].at == c.right
    buckets = [Point(0.0, 5.0, 1.0, 9.0, 4), Point(300.0, 6.0, 2.0, 8.0, 4)]
    assert chart("uptime", 300, buckets, 0.0, 600.0).band.count(",") == 4
    flat = chart("peripherals", 0, [Point(0.0, 3.0, 3.0, 3.0, 1)], 0.0, 60.0)
    assert float(flat.y_ticks[0].label) < 3 < float(flat.y_ticks[-1].label)
    assert chart("cert_days_left", 0, [], 0.0, 60.0).points == 0
    assert (unit_of("poll_seconds"), unit_of("firmware")) == ("s", "")
    assert (number(15000), number(2_500_000), number(0.25)) == ("15k", "2.5M", "0.25")
