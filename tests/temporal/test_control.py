"""The control plane's recording activities, called as Temporal calls them, on every kind of store
(the CLI's SQLite file, SQLite and PostgreSQL through SQLAlchemy): a batch delivered twice, or once
more after dying half-way, leaves exactly one outcome and one audit row per call, in call order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from avctl.fleet.results import Outcome
from avctl.temporal.control import ControlActivities
from avctl.temporal.journal import SiteJournal, outcome_dict
from avctl.temporal.model import AuditData, BatchResult, DeviceResult, JobRef, RecordInput
from tests.conftest import Journal


def _batch() -> BatchResult:
    calls = [AuditData("audio_volume_set", {"volume": 30}, "ok", address="127.0.0.1:1", family="videoos", ts=1.0),
             AuditData("audio_muted_set", {"muted": True}, "failed", error_kind="device", message="refused",
                       address="127.0.0.1:1", family="videoos", ts=2.0)]
    return BatchResult("berlin", [
        DeviceResult(outcome_dict(Outcome("cx-1", "ok", family="videoos", requests=3)), calls),
        DeviceResult(outcome_dict(Outcome("cx-2", "failed", family="videoos", reason="auth", message="refused")), []),
    ])


def test_a_batch_recorded_twice_is_recorded_once(journal: Journal, tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    with journal.store(db) as store, journal.audit(db) as audit:
        job = store.create_job(action="volume", selection="all", params={"volume": "30"}, devices=["cx-1", "cx-2"],
                               user="tester")
        ref = JobRef(job.id, "avctl.control.test", "web:alice", time.time())
        control = ControlActivities(store, audit)
        seen: list[str] = []
        control.on_outcome = lambda _job, o: seen.append(o.device)
        assert asyncio.run(control.record_batch(RecordInput(ref, _batch()))) == 2
        assert asyncio.run(control.record_batch(RecordInput(ref, _batch()))) == 0  # Temporal ran it again
        assert sorted(o.device for o in store.outcomes(job.id)) == ["cx-1", "cx-2"] and sorted(seen) == ["cx-1", "cx-2"]
        rows = audit.query(job_id=job.id, limit=None)
        assert sorted((r.device, r.action, r.outcome, r.error_kind, r.user) for r in rows) == [
            ("cx-1", "audio_muted_set", "failed", "device", "web:alice"),
            ("cx-1", "audio_volume_set", "ok", None, "web:alice")]
        assert asyncio.run(control.finish_job(ref)) == "finished"
        assert store.get_job(job.id).state == "finished"


def test_a_batch_cut_off_after_some_audit_rows_is_completed_without_duplicates(journal: Journal,
                                                                                 tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    with journal.store(db) as store, journal.audit(db) as audit:
        job = store.create_job(action="volume", selection="all", params={}, devices=["cx-1", "cx-2"], user="t")
        ref = JobRef(job.id, "avctl.control.test", "web:alice", time.time())
        first = _batch().results[0].audit[0]  # the worker died after writing the first call's row
        audit.record(device="cx-1", action=first.action, params=first.params, outcome=first.outcome,
                     job_id=job.id, user="web:alice", ts=first.ts)
        assert asyncio.run(ControlActivities(store, audit).record_batch(RecordInput(ref, _batch()))) == 2
        rows = audit.query(device="cx-1", job_id=job.id, limit=None)
        assert sorted(r.action for r in rows) == ["audio_muted_set", "audio_volume_set"]
        assert asyncio.run(ControlActivities(store, audit).finish_job(ref)) == "finished"


def test_a_job_with_devices_left_ends_interrupted(journal: Journal, tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    with journal.store(db) as store, journal.audit(db) as audit:
        job = store.create_job(action="status", selection="all", params={}, devices=["cx-1", "cx-2", "cx-3"],
                               user="t")
        ref = JobRef(job.id, "q", "t", time.time())
        asyncio.run(ControlActivities(store, audit).record_batch(RecordInput(ref, _batch())))
        assert asyncio.run(ControlActivities(store, audit).finish_job(ref)) == "interrupted"
        assert store.pending_devices(job.id) == ["cx-3"]


def test_the_site_journal_keeps_sent_marks_outcomes_and_calls_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "worker.db"
    journal = SiteJournal(path)
    journal.mark_sent("run-1", "cx-1")
    journal.mark_sent("run-1", "cx-2")
    journal.add_call("run-1", "cx-1", AuditData("audio_volume_set", {"volume": 30}, "ok"))
    journal.finish("run-1", Outcome("cx-1", "ok", family="videoos"))
    journal.close()
    again = SiteJournal(path)  # a worker started again reads what the one that died wrote
    assert again.in_doubt("run-1") == ["cx-2"]
    done = again.results("run-1", ["cx-1", "cx-2"])
    assert list(done) == ["cx-1"] and [c.action for c in done["cx-1"].audit] == ["audio_volume_set"]
    assert again.in_doubt("run-2") == [] and again.results("run-2", ["cx-1"]) == {}
    again.prune(time.time() - 3600)  # finished a moment ago: kept
    assert list(again.results("run-1", ["cx-1"])) == ["cx-1"]

    async def one_pass() -> None:  # what a worker does at start (then daily): finished before "now + 1 s" go
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(again.keep_pruned(keep=-1.0), 0.5)

    asyncio.run(one_pass())
    assert again.results("run-1", ["cx-1"]) == {} and again.in_doubt("run-1") == []


def test_large_payloads_are_compressed_and_a_bomb_is_refused() -> None:
    import zlib

    import pytest
    from temporalio.api.common.v1 import Payload
    from temporalio.converter import DataConverter

    from avctl.temporal.codec import ENCODING, MAX_INFLATED, ZlibCodec, data_converter
    from avctl.temporal.model import DeviceData

    devices = [DeviceData(f"room-{n:05d}-codec", "videoos", "127.0.0.1", 40000 + n, site=f"site-{n % 10}",
                          room=f"room-{n:05d}", password="secret:room-codecs") for n in range(10000)]
    (plain,) = DataConverter.default.payload_converter.to_payloads([devices])
    codec = ZlibCodec()
    (packed,) = asyncio.run(codec.encode([plain]))
    assert packed.metadata["encoding"] == ENCODING
    # over Temporal's 2 MB limit as JSON, tenfold less compressed
    assert len(plain.SerializeToString()) > 2 * 1024 * 1024 > 10 * len(packed.data)
    (back,) = asyncio.run(codec.decode([packed]))
    assert back == plain
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    assert asyncio.run(codec.encode([small])) == [small]
    bomb = Payload(metadata={"encoding": ENCODING}, data=zlib.compress(b"\0" * (MAX_INFLATED + 1)))
    with pytest.raises(ValueError, match="inflates past"):
        asyncio.run(codec.decode([bomb]))
    assert data_converter().payload_codec is not None



def test_a_due_time_the_site_ran_itself_is_reported_not_run_again(tmp_path: Path) -> None:
    from avctl.temporal.model import DeviceData, ScheduleRef, TaskData

    journal = SiteJournal(tmp_path / "worker.db")
    ref = ScheduleRef("nightly", "UTC", "0 3 * * *", 1000.0, site_critical=True)
    devices = [DeviceData("cx-1", "videoos", "127.0.0.1", 1), DeviceData("cx-2", "videoos", "127.0.0.1", 2)]
    journal.save_plan(ref, "avctl.control.x", TaskData("volume", "verb", {"volume": "20"}), {}, devices[:1])
    journal.save_plan(ref, "avctl.control.x", TaskData("volume", "verb", {"volume": "20"}), {}, devices[1:])
    (plan,) = journal.plans()
    assert [d.name for d in plan.devices] == ["cx-1", "cx-2"] and plan.last_due == 1000.0  # merged by name
    run = journal.start_fallback(plan, 4600.0)
    assert run is not None and journal.start_fallback(plan, 4600.0) is None  # once per due time
    assert journal.plans()[0].last_due == 4600.0
    journal.add_call(run, "cx-1", AuditData("audio_volume_set", {"volume": 20}, "ok"))
    journal.finish(run, Outcome("cx-1", "ok", family="videoos"))
    # the control plane's own batch for that due time, after the outage: cx-1 is known, cx-2 still to run
    assert journal.fallback_run("nightly", "UTC", 4600.0) == run
    journal.adopt(run, "job-7.site.remote", ["cx-1", "cx-2"])
    adopted = journal.results("job-7.site.remote", ["cx-1", "cx-2"])
    assert list(adopted) == ["cx-1"] and [c.action for c in adopted["cx-1"].audit] == ["audio_volume_set"]
    (pending,) = journal.unreported()
    journal.mark_reported(pending)
    assert journal.unreported() == []


def test_temporal_beyond_loopback_needs_tls_or_plain_grpc_asked_for_by_name(tmp_path: Path) -> None:
    import pytest
    from temporalio.service import TLSConfig

    from avctl.errors import UsageError
    from avctl.temporal.engine import tls_config

    assert tls_config("127.0.0.1:7233", {}) is False and tls_config("localhost:7233", {}) is False
    assert tls_config("[::1]:7233", {}) is False
    with pytest.raises(UsageError, match="plain gRPC"):
        tls_config("temporal.example.net:7233", {})
    assert tls_config("temporal.example.net:7233", {"AVCTL_TEMPORAL_PLAINTEXT": "1"}) is False
    assert tls_config("temporal.example.net:7233", {"AVCTL_TEMPORAL_TLS": "1"}) == TLSConfig()
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    for f in (ca, cert, key):
        f.write_bytes(f"-----BEGIN {f.stem}-----\n".encode())
    mtls = tls_config("temporal.example.net:7233", {"AVCTL_TEMPORAL_CA": str(ca), "AVCTL_TEMPORAL_CERT": str(cert),
                                                    "AVCTL_TEMPORAL_KEY": str(key)})
    assert isinstance(mtls, TLSConfig) and mtls.server_root_ca_cert == ca.read_bytes()
    assert mtls.client_cert == cert.read_bytes() and mtls.client_private_key == key.read_bytes()
    with pytest.raises(UsageError, match="go together"):
        tls_config("temporal.example.net:7233", {"AVCTL_TEMPORAL_CERT": str(cert)})
    with pytest.raises(UsageError, match="cannot read"):
        tls_config("temporal.example.net:7233", {"AVCTL_TEMPORAL_CA": str(tmp_path / "missing.pem")})


def test_a_worker_refuses_plain_grpc_beyond_loopback_before_connecting(avctl_home: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AVCTL_TEMPORAL")}
    done = subprocess.run([sys.executable, "-m", "avctl.cli.main", "worker", "--site", "berlin", "--temporal",
                           "temporal.example.net:7233"], env={**env, "AVCTL_HOME": str(avctl_home)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "plain gRPC" in done.stderr and "AVCTL_TEMPORAL_CA" in done.stderr
    assert "Traceback" not in done.stderr
