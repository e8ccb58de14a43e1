"""Risk tiers: approve holds every job, session holds the first per worker session, audit
records full input and output."""

from __future__ import annotations

import pytest

from core.clock import FakeClock
from core.errors import Conflict, Forbidden
from core.queue import JobSpec, QueueService
from tests.queue.conftest import ADMIN, READER, WORKER_TOKEN, RecordingAudit, online


async def test_an_approve_tier_job_is_held_until_a_human_approves(
    queue: QueueService, audit: RecordingAudit,
) -> None:
    await online(queue, "ops", capabilities=[{"name": "deploy", "risk_tier": "approve"}])
    job = await queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"), actor=ADMIN)
    assert (job.status, job.risk_tier, job.assigned_to) == ("awaiting_approval", "approve", None)
    assert await queue.jobs.inbox("ops") == []

    approved = await queue.jobs.approve(job.id, actor=ADMIN)
    assert (approved.status, approved.assigned_to, approved.approved_by) == (
        "pending", "ops", "alice")
    assert audit.find("job.approve", f"job:{job.id}")[0][0] == "alice"
    with pytest.raises(Conflict):
        await queue.jobs.approve(job.id, actor=ADMIN)


@pytest.mark.parametrize("actor", [WORKER_TOKEN, READER])
async def test_only_a_human_with_the_approve_scope_may_approve(queue: QueueService,
                                                               actor: object) -> None:
    await online(queue, "ops", capabilities=[{"name": "deploy", "risk_tier": "approve"}])
    job = await queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"), actor=ADMIN)
    with pytest.raises(Forbidden):
        await queue.jobs.approve(job.id, actor=actor)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await queue.jobs.reject(job.id, actor=actor)  # type: ignore[arg-type]
    assert (await queue.jobs.get(job.id)).status == "awaiting_approval"


async def test_a_rejected_job_ends_cancelled(queue: QueueService) -> None:
    await online(queue, "ops", capabilities=[{"name": "deploy", "risk_tier": "approve"}])
    job = await queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"), actor=ADMIN)
    rejected = await queue.jobs.reject(job.id, actor=ADMIN, reason="not today")
    assert (rejected.status, rejected.error) == ("cancelled", "rejected by alice: not today")


async def test_the_strictest_tier_any_worker_declares_applies(queue: QueueService) -> None:
    await online(queue, "sandbox", capabilities=["deploy"])
    await online(queue, "prod", capabilities=[{"name": "deploy", "risk_tier": "approve"}])
    job = await queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"), actor=ADMIN)
    assert job.status == "awaiting_approval"


async def test_a_tier_declared_after_submission_still_holds_the_job(queue: QueueService
                                                                    ) -> None:
    job = await queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"), actor=ADMIN)
    assert (job.status, job.risk_tier) == ("pending", "auto")
    await online(queue, "ops", capabilities=[{"name": "deploy", "risk_tier": "approve"}])
    held = await queue.jobs.get(job.id)
    assert (held.status, held.risk_tier, held.assigned_to) == (
        "awaiting_approval", "approve", None)


SESSION = [{"name": "shell", "risk_tier": "session"}]


async def test_session_tier_needs_one_approval_per_worker_session(
    queue: QueueService, clock: FakeClock,
) -> None:
    await online(queue, "w1", capabilities=SESSION, capacity=5)
    first = await queue.jobs.submit(JobSpec(prompt="1", capability="shell"), actor=ADMIN)
    assert (first.status, first.assigned_to) == ("awaiting_approval", "w1")
    assert await queue.jobs.inbox("w1") == []

    approved = await queue.jobs.approve(first.id, actor=ADMIN)
    assert (approved.status, approved.assigned_to) == ("pending", "w1")
    second = await queue.jobs.submit(JobSpec(prompt="2", capability="shell"), actor=ADMIN)
    assert (second.status, second.assigned_to) == ("pending", "w1")

    clock.advance(31)
    await queue.workers.heartbeat("w1")
    third = await queue.jobs.submit(JobSpec(prompt="3", capability="shell"), actor=ADMIN)
    assert (third.status, third.assigned_to) == ("awaiting_approval", "w1")


async def test_a_clean_sign_off_ends_the_session(queue: QueueService) -> None:
    await online(queue, "w1", capabilities=SESSION)
    first = await queue.jobs.submit(JobSpec(prompt="1", capability="shell"), actor=ADMIN)
    await queue.jobs.approve(first.id, actor=ADMIN)
    await queue.jobs.claim(first.id, "w1")
    await queue.jobs.close(first.id, "w1", "ok")
    await queue.jobs.release("w1")
    await queue.workers.heartbeat("w1")
    second = await queue.jobs.submit(JobSpec(prompt="2", capability="shell"), actor=ADMIN)
    assert second.status == "awaiting_approval"


async def test_session_jobs_prefer_a_worker_already_approved(queue: QueueService) -> None:
    await online(queue, "w1", capabilities=SESSION)
    first = await queue.jobs.submit(JobSpec(prompt="1", capability="shell"), actor=ADMIN)
    await queue.jobs.approve(first.id, actor=ADMIN)
    await queue.jobs.claim(first.id, "w1")
    await queue.jobs.close(first.id, "w1", "ok")
    await online(queue, "w2", capabilities=SESSION, tags="shell")
    second = await queue.jobs.submit(JobSpec(prompt="2", capability="shell", tags="shell"),
                                     actor=ADMIN)
    assert (second.status, second.assigned_to) == ("pending", "w1")


async def test_audit_tier_records_full_input_and_output(queue: QueueService,
                                                        audit: RecordingAudit) -> None:
    await online(queue, "w1", capabilities=[{"name": "pay", "risk_tier": "audit"}])
    job = await queue.jobs.submit(
        JobSpec(prompt="refund", input={"order": 42}, capability="pay"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    await queue.jobs.close(job.id, "w1", {"refunded": True})
    target = f"job:{job.id}"
    submitted = audit.find("job.submit", target)[0][3]
    closed = audit.find("job.close", target)[0][3]
    assert submitted is not None and closed is not None
    assert (submitted["prompt"], submitted["input"]) == ("refund", {"order": 42})
    assert (closed["input"], closed["result"]) == ({"order": 42}, {"refunded": True})


async def test_auto_tier_keeps_input_and_output_out_of_the_audit_log(
    queue: QueueService, audit: RecordingAudit,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="p", input={"secret": 1}), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    await queue.jobs.close(job.id, "w1", "out")
    for _, _, target, details in audit.entries:
        if target == f"job:{job.id}" and details:
            assert not {"input", "result", "prompt"} & details.keys()
