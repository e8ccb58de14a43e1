"""Worker identities end to end: register → one-time view → a token that speaks the worker
protocol as that worker only; revocation; risk tiers held for a human."""

from __future__ import annotations

import pytest

from core.errors import Forbidden
from core.principal import Principal
from tests.fleet.conftest import Fleet, error_of
from tests.fleet.protocol import ProtocolWorker


async def test_registering_answers_a_one_time_link_never_the_token(fleet: Fleet) -> None:
    registration = await fleet.register("w1", [{"name": "code", "riskTier": "audit"}],
                                        tags="Code")
    assert set(registration) == {"worker", "token", "viewUrl"}
    assert registration["worker"]["capabilities"] == [
        {"name": "code", "riskTier": "audit", "requiresSecrets": []}]
    assert registration["token"]["kind"] == "worker"
    assert registration["token"]["workerId"] == registration["worker"]["id"]
    assert "mr_" not in registration["viewUrl"]
    viewed = await fleet.take_view(registration["viewUrl"])
    assert viewed.status_code == 200
    assert viewed.json()["kind"] == "worker"
    token = viewed.json()["token"]
    assert token.startswith(registration["token"]["prefix"])
    error_of(await fleet.take_view(registration["viewUrl"]), 410, "GONE")
    worker = ProtocolWorker(fleet.url, "w1", token)
    try:
        beat = await worker.heartbeat()
        assert beat.status_code == 200
        assert beat.json()["worker_id"] == registration["worker"]["id"]
    finally:
        await worker.aclose()


async def test_a_name_is_registered_once(fleet: Fleet) -> None:
    await fleet.register("w1")
    async with fleet.client() as admin:
        again = await admin.post("/api/v1/workers/register", json={"name": "w1"})
    error_of(again, 409, "CONFLICT")


async def test_a_worker_token_is_good_for_the_protocol_only(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    error_of(await worker.http.get("/api/jobs"), 403, "FORBIDDEN")
    error_of(await worker.http.post("/api/jobs", json={"prompt": "x"}), 403, "FORBIDDEN")


async def test_revoking_a_worker_stops_its_token_at_once(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    job = await fleet.submit()
    assert (await worker.claim(job["id"])).status_code == 200
    async with fleet.client() as admin:
        revoked = await admin.post("/api/workers/w1/revoke")
        assert revoked.json()["status"] == "revoked"
        requeued = (await admin.get(f"/api/jobs/{job['id']}")).json()
        error_of(await admin.post("/api/workers/w1/revoke"), 409, "CONFLICT")
        kept = (await admin.get("/api/workers", params={"includeRevoked": "true"})).json()
    assert requeued["status"] == "pending"
    assert requeued["history"][-1]["outcome"] == "lost"
    assert [w["status"] for w in kept["workers"]] == ["revoked"]
    error_of(await worker.heartbeat(), 401, "UNAUTHORIZED")
    error_of(await worker.close(job["id"], "late"), 401, "UNAUTHORIZED")


async def test_an_approve_tier_job_waits_for_a_human_then_runs(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", [{"name": "deploy", "riskTier": "approve"}])
    job = await fleet.submit(capability="deploy", prompt="ship it")
    assert (job["status"], job["riskTier"]) == ("awaiting_approval", "approve")
    assert await worker.jobs() == []
    path = f"/api/jobs/{job['id']}/approve"
    error_of(await worker.http.post(path), 403, "FORBIDDEN")
    async with fleet.client("user") as user:
        error_of(await user.post(path), 403, "FORBIDDEN")
    async with fleet.client("approver") as approver:
        approved = await approver.post(path)
        assert approved.status_code == 200, approved.text
        assert approved.json()["approvedBy"] == "approver"
        error_of(await approver.post(path), 409, "CONFLICT")
    done = await worker.serve_once()
    assert (done["id"], done["status"], done["result"]) == (job["id"], "done", "SHIP IT")


async def test_a_held_job_can_be_rejected(fleet: Fleet) -> None:
    await fleet.enroll("w1", [{"name": "deploy", "riskTier": "approve"}])
    job = await fleet.submit(capability="deploy")
    async with fleet.client("approver") as approver:
        rejected = await approver.post(f"/api/jobs/{job['id']}/reject",
                                       json={"reason": "not today"})
    assert rejected.json()["status"] == "cancelled"
    assert "not today" in rejected.json()["error"]


async def test_a_worker_identity_never_approves_whatever_its_scopes(fleet: Fleet) -> None:
    await fleet.enroll("w1", [{"name": "deploy", "riskTier": "approve"}])
    job = await fleet.submit(capability="deploy")
    sneaky = Principal(name="w1", kind="worker", scopes=frozenset({"admin"}))
    with pytest.raises(Forbidden, match="workers cannot approve"):
        await fleet.engine.queue.jobs.approve(job["id"], actor=sneaky)
