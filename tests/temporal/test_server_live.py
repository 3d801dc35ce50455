"""``avctl serve --engine temporal`` (on SQLite and on PostgreSQL): a job started through the API
runs on the site workers and the server shows it live (its event stream and job status as each
site's batch is recorded), then finished, with one audit row per device naming its user."""

from __future__ import annotations

from pathlib import Path

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from tests.server.harness import ServerProcess, add_admin, sse_events, wait_for
from tests.temporal.conftest import PASSWORD, Sites, requests_to

VOLUME = "/rest/audio/volume"


def test_the_server_runs_a_job_on_temporal_and_shows_it_live(sites: Sites, emulators: EmulatorThread,
                                                           tmp_path: Path, any_db_url: str) -> None:
    berlin_devs = [emulators.add(EmulatedVideoOS(f"cx-berlin-{n}", password=PASSWORD)) for n in range(2)]
    tokyo_devs = [emulators.add(EmulatedVideoOS(f"cx-tokyo-{n}", password=PASSWORD)) for n in range(2)]
    berlin, tokyo = sites.add("berlin", berlin_devs), sites.add("tokyo", tokyo_devs)
    inventory = sites.write_inventory()
    held = tokyo_devs[0]
    held.faults.paused = True  # tokyo's batch cannot end until the test lets it
    home, db = tmp_path / "server-home", any_db_url  # the control plane on SQLite and on PostgreSQL
    token = add_admin(home, db)
    server = ServerProcess(home, ["-i", str(inventory), "--db", db, "--interval", "1h", "--engine", "temporal",
                                  "--temporal", sites.server.address])
    try:
        server.start().use_token(token)
        sites.start_workers(berlin, tokyo)
        started = server.post("/api/v1/jobs", {"action": "audio_volume_set", "params": {"volume": 33},
                                               "select": "family=videoos"})
        job = started["job"]
        seen: list[str] = []
        with server.session.get(server.base + started["events"], stream=True, timeout=120) as stream:
            events = sse_events(stream)
            for event, data in events:
                if event == "outcome":
                    seen.append(data["outcome"]["device"])
                if sorted(seen) == sorted(d.name for d in berlin_devs):
                    break
            # berlin's batch is recorded and shown while tokyo's is still running
            status = server.get(f"/api/v1/jobs/{job}")
            assert status["state"] == "running", status
            assert status["counts"]["ok"] == 2 and len(status["outcomes"]) == 2  # of 4 devices
            wait_for(lambda: requests_to(held, "POST", VOLUME) == 1, within=60, what="tokyo's held request")
            held.faults.paused = False
            rest = list(events)
        seen += [d["outcome"]["device"] for e, d in rest if e == "outcome"]
        assert rest[-1][0] == "done" and rest[-1][1]["state"] == "finished", rest
        assert sorted(seen) == sorted(d.name for d in [*berlin_devs, *tokyo_devs])
        final = server.get(f"/api/v1/jobs/{job}")
        assert final["state"] == "finished"
        every = [*berlin_devs, *tokyo_devs]
        assert {o["device"]: o["status"] for o in final["outcomes"]} == {d.name: "ok" for d in every}
        for dev in every:
            assert requests_to(dev, "POST", VOLUME) == 1, dev.name
        rows = server.get("/api/v1/audit", job=job)["items"]
        assert sorted(r["device"] for r in rows) == sorted(d.name for d in [*berlin_devs, *tokyo_devs])
        assert {r["user"] for r in rows} == {"token:admin"} and {r["action"] for r in rows} == {"audio_volume_set"}
        assert f"job {job}: workflow avctl.control." in server.log_text()
    finally:
        server.stop()
