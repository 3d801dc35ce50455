"""Metrics: the exposition parses, odd label values cannot break it, scope applies, the Grafana
dashboard refers only to metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from avctl.db.models import Alert
from avctl.server import service
from avctl.server.metrics import ServerMetrics
from avctl.server.model import DeviceView, Principal

from .conftest import ApiServer, as_
from .test_api import set_state

ROOT = Path(__file__).resolve().parents[2]
EVERYONE = Principal(user_id=1, user="prom", role="viewer", via="token")


def view(name: str, *, site: str | None = "hq", family: str = "videoos", room: str | None = "board",
         state: str = "online", readings: dict[str, Any] | None = None) -> DeviceView:
    return DeviceView(name=name, family=family, site=site, room=room, tags=frozenset(), address="127.0.0.1:1",
                      state=state, since=1.0, readings=readings or {})  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from a text exposition (fails if it does not parse)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_odd_label_values_are_escaped_not_injected() -> None:
    m = ServerMetrics()
    evil = 'room"} 1\navctl_device_up{device="forged"} 1\n<script>alert(1)</script>\\'
    m.observe(view(evil, site='si"te\n', room="<b>r\\oom</b>", readings={'vol"ume\n': 7}), 0.2)
    text = m.exposition(EVERYONE, alerts_open={}, jobs_running=0).decode()
    got = samples(text)
    labels = (("device", evil), ("family", "videoos"), ("room", "<b>r\\oom</b>"), ("site", 'si"te\n'))
    assert got[("avctl_device_up", labels)] == 1.0
    assert got[("avctl_reading", tuple(sorted((*labels, ("reading", 'vol"ume\n')))))] == 7.0
    # the forged line is inside an escaped label value, never a sample of its own
    assert not any(dict(lbl).get("device") == "forged" for _name, lbl in got)
    assert sum(1 for line in text.splitlines() if line.startswith("avctl_device_up{")) == 1


def test_observe_counts_polls_and_durations_and_exports_numeric_readings() -> None:
    m = ServerMetrics()
    m.seed([view("a", state="offline"), view("gone")])
    m.seed([view("a", state="offline")])  # seeding replaces: a device no longer listed is dropped
    m.observe(view("a", readings={"volume": 40, "muted": True, "firmware": "4.6.2", "temp": float("nan")}), 0.3)
    m.observe(view("b", family="polyuc", state="offline"), 2.0)
    m.observe(view("c", state="disabled"), None)
    m.observe_lag("videoos", 0.2)
    m.observe_lag("videoos", 3.0)
    m.observe_lag("videoos", float("nan"))  # never a sample
    got = samples(m.exposition(EVERYONE, alerts_open={"critical": 2}, jobs_running=3).decode())
    a = (("device", "a"), ("family", "videoos"), ("room", "board"), ("site", "hq"))
    b = (("device", "b"), ("family", "polyuc"), ("room", "board"), ("site", "hq"))
    assert got[("avctl_device_up", a)] == 1.0 and got[("avctl_device_up", b)] == 0.0
    assert not any(n == "avctl_device_up" and dict(lbl)["device"] in ("c", "gone") for n, lbl in got)
    readings = {dict(lbl)["reading"]: v for (n, lbl), v in got.items() if n == "avctl_reading"}
    assert readings == {"volume": 40.0, "muted": 1.0}  # text and NaN are not gauges
    assert got[("avctl_polls_total", (("family", "videoos"), ("result", "online")))] == 1.0
    assert got[("avctl_polls_total", (("family", "polyuc"), ("result", "offline")))] == 1.0
    assert got[("avctl_poll_duration_seconds_count", (("family", "polyuc"),))] == 1.0
    assert got[("avctl_poll_duration_seconds_bucket", (("family", "videoos"), ("le", "0.5")))] == 1.0
    assert got[("avctl_poll_lag_seconds_count", (("family", "videoos"),))] == 2.0
    assert got[("avctl_poll_lag_seconds_bucket", (("family", "videoos"), ("le", "0.25")))] == 1.0
    assert got[("avctl_poll_lag_seconds_sum", (("family", "videoos"),))] == 3.2
    assert got[("avctl_alerts_open", (("severity", "critical"),))] == 2.0
    assert got[("avctl_alerts_open", (("severity", "info"),))] == 0.0
    assert got[("avctl_jobs_running", ())] == 3.0


def test_metrics_over_http_need_a_user_and_respect_scope(api_server: ApiServer) -> None:
    api = api_server
    set_state(api, "hq-codec-1", "online", readings={"volume": 30})
    set_state(api, "br-codec-1", "offline")
    with api.db.session() as s:
        s.add(Alert(rule="offline", device="br-codec-1", site="branch", severity="critical", state="open",
                    opened=1.0, message="offline"))
    api.ctx.metrics.seed(service.fleet_views(api.ctx))  # what the server does at start-up
    assert api.get("/metrics").status_code == 401
    r = api.get("/metrics", as_("viewer", via="token"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    got = samples(r.text)
    up = {dict(lbl)["device"]: v for (n, lbl), v in got.items() if n == "avctl_device_up"}
    assert up == {"hq-codec-1": 1.0, "br-codec-1": 0.0, "hq-codec-2": 0.0, "hq-phone-1": 0.0, "br-codec-2": 0.0}
    assert got[("avctl_alerts_open", (("severity", "critical"),))] == 1.0
    hq = samples(api.get("/metrics", as_("viewer", "hq")).text)
    assert {dict(lbl)["device"] for (n, lbl) in hq if n == "avctl_device_up"} == {
        "hq-codec-1", "hq-codec-2", "hq-phone-1"}
    assert hq[("avctl_alerts_open", (("severity", "critical"),))] == 0.0


def test_grafana_dashboard_uses_only_exported_metrics() -> None:
    doc = json.loads((ROOT / "docs/grafana/avctl.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in doc["templating"]["list"]]
    used = {n for e in exprs for n in re.findall(r"\bavctl_[a-z_]+", e)}
    m = ServerMetrics()
    m.observe(view("a", readings={"volume": 1}), 0.1)
    exported = {s[0] for s in samples(m.exposition(EVERYONE, alerts_open={}, jobs_running=0).decode())}
    assert used and used <= exported, used - exported
    assert {"avctl_device_up", "avctl_poll_duration_seconds_bucket", "avctl_alerts_open"} <= used
    titles = {p["title"] for p in doc["panels"]}
    assert {"Fleet up", "Devices down", "Poll duration p50 / p99", "Open alerts"} <= titles


def _client_written(m: ServerMetrics, views: list[DeviceView]) -> str:
    """The per-device families as prometheus-client itself writes them (`GaugeMetricFamily` and
    `generate_latest`): what the server wrote before it wrote them line by line."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    from avctl.server.metrics import numeric

    class Devices:
        def collect(self) -> Any:
            up = GaugeMetricFamily("avctl_device_up", "1 if the device answered its last poll, else 0",
                                   labels=("device", "site", "family", "room"))
            reading = GaugeMetricFamily("avctl_reading", "Numeric readings of devices (booleans as 1/0)",
                                        labels=("device", "site", "family", "room", "reading"))
            for v in sorted(views, key=lambda v: v.name):
                if v.state == "disabled":
                    continue
                labels = [v.name, v.site or "", v.family, v.room or ""]
                up.add_metric(labels, 1.0 if v.state == "online" else 0.0)
                for key, value in sorted(v.readings.items()):
                    if (sample := numeric(value)) is not None:
                        reading.add_metric([*labels, str(key)], sample)
            yield up
            yield reading

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Devices())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_the_device_families_are_byte_for_byte_what_the_client_writes() -> None:
    """The server writes the per-device families itself (the client's sample objects cost 0.78 s
    and 41 MB per scrape at 10,000 devices); the text is exactly the client's, hostile label values,
    odd numbers and 1,203 devices (more than two streamed pieces) included."""
    from avctl.server.metrics import CHUNK_DEVICES

    evil = 'room"} 1\navctl_device_up{device="forged"} 1\n\\\u00e9\u4e2d'
    views = [view(evil, site='si"te\n', room=None, readings={'vol"ume\n': 7, "big": 1e21, "small": 1.5e-7,
                                                            "neg": -0.0, "int": 12345678901234567890})]
    views += [view(f"room-{i:04d}", site=None if i % 7 == 0 else f"s{i % 3}", family=("videoos", "polyuc")[i % 2],
                   state=("online", "offline", "disabled", "unknown")[i % 4],
                   readings={"volume": i % 101, "muted": i % 2 == 0, "uptime": i * 1.25, "firmware": "8.1",
                             "cert_days_left": float("inf") if i == 5 else 30.5})
              for i in range(2 * CHUNK_DEVICES + 202)]
    m = ServerMetrics()
    m.seed(views)
    chunks = list(m.exposition_chunks(EVERYONE, alerts_open={"critical": 1}, jobs_running=2))
    assert len(chunks) >= 4
    text = b"".join(chunks).decode()
    devices = text[text.index("# HELP avctl_device_up"):]
    assert devices == _client_written(m, views)
    assert samples(text)[("avctl_alerts_open", (("severity", "critical"),))] == 1.0
