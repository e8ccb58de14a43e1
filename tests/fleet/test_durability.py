"""Restart durability over HTTP: a server on a file-backed home, jobs in every state, a new
server on the same home — everything is still there, and the workers' tokens still work."""

from __future__ import annotations

from pathlib import Path

from core.clock import FakeClock
from tests.fleet.conftest import open_fleet_engine, running_fleet
from tests.fleet.protocol import ProtocolWorker


async def test_jobs_in_every_state_survive_a_restart(tmp_path: Path, clock: FakeClock
                                                     ) -> None:
    async with open_fleet_engine(tmp_path, clock, on_disk=True) as engine, \
            running_fleet(engine, clock) as fleet:
        w1 = await fleet.enroll("w1", tags="code", capacity=3)
        await fleet.enroll("w2", [{"name": "deploy", "riskTier": "approve"}])
        for prompt, outcome in (("done", "done"), ("failed", "failed"),
                                ("escalated", "escalated")):
            job = await fleet.submit(prompt=prompt, capability="code")
            assert (await w1.claim(job["id"])).status_code == 200
            assert (await w1.close(job["id"], f"{prompt}!", status=outcome)).status_code == 200
        running = await fleet.submit(prompt="running", capability="code")
        assert (await w1.claim(running["id"])).status_code == 200
        await fleet.submit(prompt="pending", capability="code")
        await fleet.submit(prompt="awaiting_approval", capability="deploy")
        cancelled = await fleet.submit(prompt="cancelled", capability="deploy")
        async with fleet.client() as admin:
            await admin.post(f"/api/jobs/{cancelled['id']}/cancel")
            before = (await admin.get("/api/jobs", params={"limit": 50})).json()
        token = w1.http.headers["Authorization"].removeprefix("Bearer ")

    assert sorted(j["status"] for j in before["items"]) == sorted(
        j["prompt"] for j in before["items"])

    async with open_fleet_engine(tmp_path, clock, on_disk=True) as engine, \
            running_fleet(engine, clock) as fleet:
        async with fleet.client() as admin:
            after = (await admin.get("/api/jobs", params={"limit": 50})).json()
        worker = ProtocolWorker(fleet.url, "w1", token)
        try:
            assert (await worker.heartbeat()).json()["renewed"] == 1
            (pending,) = await worker.jobs()
            closed = await worker.close(running["id"], "after the restart")
        finally:
            await worker.aclose()

    assert after["items"] == before["items"]
    assert pending["prompt"] == "pending"
    assert closed.status_code == 200
    assert closed.json()["result"] == "after the restart"
