"""The configuration snapshot store on real databases (a SQLite file, and PostgreSQL): deduplication,
history and references, secrets never stored, the CLI's database adopted, failures as StoreErrors,
and concurrent saves of one configuration leaving one row."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text

from avctl.config.model import SECRET_MARKER
from avctl.config.store import SqlSnapshotStore, digest, open_snapshot_store
from avctl.db import open_database
from avctl.db.engine import database_url
from avctl.errors import UsageError
from avctl.fleet.audit import AuditLog
from avctl.fleet.paths import avctl_home
from avctl.fleet.store import Outcome, SqliteJobStore, StoreError
from avctl.redact import REDACTOR

from ..pg import free_port
from ..test_store_failures import Home, small_disk

CLEAR = "clear-Secret-8841"  # a secret's value as a device would report it


@pytest.fixture
def store(any_db_url: str) -> Iterator[SqlSnapshotStore]:
    with open_snapshot_store(any_db_url) as opened:
        yield opened


def rows(url: str) -> list[tuple[object, ...]]:
    """Every snapshot row, read as another program would (id order)."""
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT * FROM config_snapshots ORDER BY id"))]
    finally:
        engine.dispose()


def test_same_configuration_confirms_the_newest_snapshot(store: SqlSnapshotStore, any_db_url: str) -> None:
    first, created = store.save("room-1", "videoos", {"a": "1", "b": "on"}, job_id=7, now=100.0)
    assert created and (first.taken_at, first.confirmed_at, first.job_id, first.reason) == (100.0, 100.0, 7, "backup")
    # the same content in another order, by another job, for another reason: only confirmed_at moves
    again, created = store.save("room-1", "videoos", {"b": "on", "a": "1"}, reason="drift", job_id=9, now=200.0)
    assert not created
    assert (again.id, again.taken_at, again.confirmed_at, again.job_id, again.reason) == (first.id, 100.0, 200.0, 7,
                                                                                          "backup")
    assert store.save("room-1", "videoos", {"a": "1", "b": "on"}, now=150.0)[0].confirmed_at == 200.0  # never back
    changed, created = store.save("room-1", "videoos", {"a": "2", "b": "on"}, now=300.0)
    assert created and changed.id > first.id and changed.digest != first.digest
    # dedup is against the newest only: going back to the first content is a new snapshot
    back, created = store.save("room-1", "videoos", {"a": "1", "b": "on"}, now=400.0)
    assert created and back.digest == first.digest and back.id > changed.id
    # another device with the same content has its own snapshot
    other, created = store.save("room-2", "videoos", {"a": "1", "b": "on"}, now=400.0)
    assert created and other.device == "room-2"
    assert len(rows(any_db_url)) == 4


def test_digest_is_sha256_of_the_canonical_json_of_values_and_secrets(store: SqlSnapshotStore) -> None:
    import hashlib

    snap, _ = store.save("pod", "solstice", {"x": {"n": 1, "l": [True, None]}, "pw": "p4ss"}, secrets=["pw"])
    canonical = json.dumps({"secrets": ["pw"], "values": {"x": {"n": 1, "l": [True, None]}, "pw": SECRET_MARKER}},
                           sort_keys=True, separators=(",", ":"))
    assert snap.digest == hashlib.sha256(canonical.encode()).hexdigest() == digest(snap.values, snap.secrets)
    # the same values with one key more listed as secret are another configuration
    assert store.save("pod", "solstice", {"x": {"n": 1, "l": [True, None]}, "pw": "p4ss"},
                      secrets=["pw", "x"])[1]


def test_history_latest_and_devices(store: SqlSnapshotStore) -> None:
    assert store.history("room-1") == [] and store.latest("room-1") is None and store.devices() == []
    ids = [store.save("room-1", "polyuc", {"k": str(i)}, now=float(i))[0].id for i in range(5)]
    store.save("lobby", "solstice", {"k": 1})
    assert [s.id for s in store.history("room-1")] == ids[::-1]
    assert [s.values["k"] for s in store.history("room-1", limit=2)] == ["4", "3"]
    latest = store.latest("room-1")
    assert latest is not None and latest.id == ids[-1] and latest.family == "polyuc"
    assert store.devices() == ["lobby", "room-1"]


def test_get_by_id_latest_and_latest_n(store: SqlSnapshotStore) -> None:
    ids = [store.save("room-1", "videoos", {"k": str(i)})[0].id for i in range(3)]
    foreign = store.save("room-9", "videoos", {"k": "x"})[0].id
    assert store.get("room-1", ids[0]).values == {"k": "0"}
    assert store.get("room-1", str(ids[1])).values == {"k": "1"}
    assert store.get("room-1", "latest").id == ids[2]
    assert store.get("room-1", "latest~0").id == ids[2]
    assert store.get("room-1", "latest~2").id == ids[0]
    for ref in ("latest~3", foreign, str(foreign), 10_000, "bogus", "latest~", "latest~-1", "-1"):
        with pytest.raises(UsageError) as err:
            store.get("room-1", ref)
        assert err.value.hint == "see 'avctl config history room-1'", ref
    with pytest.raises(UsageError, match="no snapshot latest of nowhere"):
        store.get("nowhere", "latest")


def test_secrets_never_reach_the_database(any_db_url: str, tmp_path: Path) -> None:
    REDACTOR.add(CLEAR)
    with open_snapshot_store(any_db_url) as store:
        values = {"admin.password": CLEAR, "sip.user": "alice", "wifi.psk": CLEAR + "-2"}
        snap, _ = store.save("room-1", "videoos", values, secrets=["wifi.psk", "admin.password"],
                             notes=[f"the device echoed {CLEAR} in an error"])
        assert snap.values == {"admin.password": SECRET_MARKER, "sip.user": "alice", "wifi.psk": SECRET_MARKER}
        assert snap.secrets == ("admin.password", "wifi.psk") and CLEAR not in snap.notes[0]
        assert store.get("room-1", snap.id) == snap
        # another secret value is the same stored configuration: nothing of it can be told apart
        assert not store.save("room-1", "videoos", {**values, "admin.password": "other-Secret-5519"},
                              secrets=["admin.password", "wifi.psk"])[1]
    stored = repr(rows(any_db_url)).encode()
    if any_db_url.startswith("sqlite"):  # the file itself, its WAL and shared memory
        path = Path(any_db_url.removeprefix("sqlite:///"))
        stored += b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
    assert b"alice" in stored and SECRET_MARKER.encode() in stored  # the check can see what is there
    assert CLEAR.encode() not in stored and b"other-Secret-5519" not in stored


def test_a_database_first_created_by_the_cli_job_store_is_adopted() -> None:
    """`avctl fleet run` (the embedded raw-sqlite store) creates $AVCTL_HOME/avctl.db before any
    snapshot is taken: opening the snapshot store there migrates it and keeps the jobs usable."""
    with SqliteJobStore(None) as jobs, AuditLog(None) as audit:
        job = jobs.create_job(action="reboot", selection="all", params={}, devices=["a", "b"], user="u")
        jobs.record_outcome(job.id, Outcome("a", "ok", requests=2))
        audit.record(device="a", action="reboot", job_id=job.id)
    with open_snapshot_store(None) as store:
        assert store.db.url == f"sqlite:///{avctl_home() / 'avctl.db'}"
        snap, created = store.save("a", "videoos", {"k": "v"}, job_id=job.id)
        assert created and store.latest("a") == snap
    db = open_database(str(avctl_home() / "avctl.db"), migrate=False)
    assert "config_snapshots" in inspect(db.engine).get_table_names()
    db.close()
    with SqliteJobStore(None) as jobs, AuditLog(None) as audit:  # the CLI goes on as before
        assert [(o.device, o.requests) for o in jobs.outcomes(job.id)] == [("a", 2)]
        assert jobs.pending_devices(job.id) == ["b"]
        jobs.record_outcome(job.id, Outcome("b", "ok"))
        assert [e.device for e in audit.query()] == ["a"]
    with open_snapshot_store(None) as store:
        assert store.history("a") == [snap]


def test_a_read_only_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        path = disk.path / "avctl.db"
        with open_snapshot_store(str(path)) as store:
            store.save("room-1", "videoos", {"k": "1"})
        disk.read_only()
        with pytest.raises(StoreError) as err, open_snapshot_store(str(path)) as store:
            store.save("room-1", "videoos", {"k": "2"})
    assert str(path) in str(err.value) and "read-only" in str(err.value)


def test_a_disk_that_fills_up_while_the_store_is_open(tmp_path: Path) -> None:
    """The save that does not fit is a StoreError and leaves nothing; once there is room it is taken."""
    big = {"k": "x" * 200_000}  # more than the WAL holds already: it must grow
    with small_disk(tmp_path / "disk") as disk, open_snapshot_store(str(disk.path / "avctl.db")) as store:
        first, _ = store.save("room-1", "videoos", {"k": "1"})
        with no_room_left(disk), pytest.raises(StoreError) as err:
            store.save("room-1", "videoos", big)
        assert str(err.value).startswith(f"cannot write {disk.path / 'avctl.db'}: ")
        assert "disk is full" in str(err.value) or not disk.mounted  # RLIMIT_FSIZE leaves the disk free
        assert store.history("room-1") == [first]
        assert store.save("room-1", "videoos", big)[1]


@contextlib.contextmanager
def no_room_left(disk: Home) -> Iterator[None]:
    """The disk full for this process (a full tmpfs; without one, this process's files may not grow)."""
    if disk.mounted:
        disk.fill()
        try:
            yield
        finally:
            (disk.path / "filler").unlink()
        return
    wal = (disk.path / "avctl.db-wal").stat().st_size
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)
        signal.signal(signal.SIGXFSZ, previous)


def test_a_read_only_postgresql_database_is_a_store_error(pg_url: str) -> None:
    with open_snapshot_store(pg_url) as store:
        store.save("room-1", "videoos", {"k": "1"})
        with psycopg.connect(pg_url) as conn:
            conn.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
        store.close()  # new connections get the setting
        with pytest.raises(StoreError, match="read-only"):
            store.save("room-1", "videoos", {"k": "2"})
        with pytest.raises(StoreError, match="read-only"):
            store.prune(keep=1)
        assert [s.values for s in store.history("room-1")] == [{"k": "1"}]  # reading still works


def test_a_database_server_that_is_down_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as err:
        open_snapshot_store(f"postgresql://avctl:hunter2-secret@127.0.0.1:{free_port()}/avctl")
    assert "127.0.0.1" in str(err.value) and "hunter2-secret" not in str(err.value)
    assert "database server runs" in str(err.value.hint)


def test_the_server_passes_its_own_database_and_keeps_it_open(any_db_url: str) -> None:
    db = open_database(any_db_url)
    try:
        with SqlSnapshotStore(db) as store:
            store.save("room-1", "videoos", {"k": "1"})
        with db.engine.connect() as conn:  # not closed by the store it does not own
            assert conn.execute(text("SELECT count(*) FROM config_snapshots")).scalar_one() == 1
    finally:
        db.close()


def test_prune_keeps_the_newest_per_device(store: SqlSnapshotStore) -> None:
    for i in range(5):
        store.save("room-1", "videoos", {"k": str(i)})
    for i in range(3):
        store.save("room-2", "videoos", {"k": str(i)})
    assert store.prune("room-1", keep=2) == 3
    assert [s.values["k"] for s in store.history("room-1")] == ["4", "3"]
    assert len(store.history("room-2")) == 3
    assert store.prune(keep=1) == 3
    assert [(d, [s.values["k"] for s in store.history(d)]) for d in store.devices()] == [("room-1", ["4"]),
                                                                                         ("room-2", ["2"])]
    assert store.prune(keep=1) == 0
    with pytest.raises(UsageError):
        store.prune(keep=0)


def test_threads_saving_one_configuration_at_once_leave_one_row(store: SqlSnapshotStore, any_db_url: str) -> None:
    """Each thread has its own connection (as another process would): the look-up of the newest
    snapshot and the insert are one locked transaction, so exactly one save of each content creates."""
    threads, rounds = 4, 15
    start = threading.Barrier(threads)
    created: list[list[bool]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def saver(n: int) -> None:
        try:
            for r in range(rounds):
                start.wait(timeout=60)
                created[n].append(store.save("room-1", "videoos", {"round": str(r)}, now=float(r))[1])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            start.abort()

    workers = [threading.Thread(target=saver, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not failures, failures
    assert [sum(c[r] for c in created) for r in range(rounds)] == [1] * rounds
    assert len(rows(any_db_url)) == rounds
    assert [s.values["round"] for s in store.history("room-1", limit=3)] == ["14", "13", "12"]
