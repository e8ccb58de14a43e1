"""A job's life: submit, route, claim, close — and every refusal along the way."""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from core.clock import FakeClock
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.queue import JobPatch, JobSpec, QueueService
from core.store import SqliteStore
from tests.queue.conftest import ADMIN, RecordingAudit, online


async def test_submit_assign_inbox_claim_close(queue: QueueService, audit: RecordingAudit,
                                               clock: FakeClock) -> None:
    await online(queue, "w1", tags="code")
    job = await queue.jobs.submit(
        JobSpec(prompt="fix it", input={"repo": "x"}, tags="code"), actor=ADMIN)
    assert (job.status, job.assigned_to, job.created_by) == ("pending", "w1", "alice")
    assert [j.id for j in await queue.jobs.inbox("w1")] == [job.id]

    claimed = await queue.jobs.claim(job.id, "w1")
    assert (claimed.status, claimed.attempts) == ("running", 1)
    assert claimed.lease_expires_at == clock.now() + timedelta(
        seconds=600)
    assert await queue.jobs.inbox("w1") == []
    assert [j.id for j in await queue.jobs.inbox("w1", "running")] == [job.id]

    done = await queue.jobs.close(job.id, "w1", "fixed", "done")
    assert (done.status, done.result, done.lease_expires_at) == ("done", "fixed", None)
    assert [(a.attempt, a.worker, a.outcome) for a in done.history] == [(1, "w1", "done")]
    record = (await queue.workers.get("w1")).record
    assert (record.done_30d, record.failed_30d, record.success_rate) == (1, 0, 1.0)
    target = f"job:{job.id}"
    assert [e[1] for e in audit.entries if e[2] == target] == [
        "job.submit", "job.assign", "job.claim", "job.close"]
    assert audit.find("job.claim", target)[0][0] == "worker:w1"


async def test_jobs_wait_pending_until_a_capable_worker_appears(queue: QueueService) -> None:
    job = await queue.jobs.submit(JobSpec(prompt="x", capability="deploy"), actor=ADMIN)
    assert (job.status, job.assigned_to) == ("pending", None)
    await online(queue, "coder", capabilities=["code"])
    assert (await queue.jobs.get(job.id)).assigned_to is None
    await online(queue, "deployer", capabilities=["deploy"])
    assert (await queue.jobs.get(job.id)).assigned_to == "deployer"


async def test_a_job_for_a_provider_goes_to_a_worker_that_speaks_it(queue: QueueService
                                                                    ) -> None:
    await online(queue, "claude-box", provider="claude")
    await online(queue, "ollama-box", provider="ollama")
    job = await queue.jobs.submit(JobSpec(prompt="x", provider="ollama"), actor=ADMIN)
    assert job.assigned_to == "ollama-box"


async def test_tags_steer_a_job_to_the_best_matching_worker(queue: QueueService) -> None:
    await online(queue, "reviewer", tags="review")
    await online(queue, "coder", tags="code,py")
    job = await queue.jobs.submit(JobSpec(prompt="x", tags="py,code"), actor=ADMIN)
    assert job.assigned_to == "coder"


async def test_capacity_is_respected(queue: QueueService) -> None:
    await online(queue, "w1", capacity=2)
    jobs = [await queue.jobs.submit(JobSpec(prompt=f"j{i}"), actor=ADMIN) for i in range(3)]
    assert [j.assigned_to for j in jobs] == ["w1", "w1", None]
    await queue.jobs.claim(jobs[0].id, "w1")
    assert (await queue.jobs.get(jobs[2].id)).assigned_to is None
    await queue.jobs.close(jobs[0].id, "w1", "ok")
    assert (await queue.jobs.get(jobs[2].id)).assigned_to == "w1"


async def test_urgent_jobs_are_routed_before_older_ones(queue: QueueService) -> None:
    normal = await queue.jobs.submit(JobSpec(prompt="n"), actor=ADMIN)
    urgent = await queue.jobs.submit(JobSpec(prompt="u", urgency="high"), actor=ADMIN)
    await online(queue, "w1")
    assert (await queue.jobs.get(urgent.id)).assigned_to == "w1"
    assert (await queue.jobs.get(normal.id)).assigned_to is None


async def test_closing_twice_with_the_same_outcome_is_idempotent(queue: QueueService) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    first = await queue.jobs.close(job.id, "w1", "result one", "done")
    again = await queue.jobs.close(job.id, "w1", "result two", "done")
    assert again == first
    assert again.result == "result one"


async def test_closing_again_with_another_outcome_is_a_conflict(queue: QueueService) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    await queue.jobs.close(job.id, "w1", "boom", "failed")
    with pytest.raises(Conflict):
        await queue.jobs.close(job.id, "w1", "fine", "done")
    failed = await queue.jobs.get(job.id)
    assert (failed.status, failed.result, failed.error) == ("failed", "boom", "boom")


async def test_a_worker_cannot_claim_or_close_another_workers_job(queue: QueueService) -> None:
    """Claiming someone else's job is CONFLICT (the protocol's "skip it"); closing a job
    the worker never held is FORBIDDEN."""
    await online(queue, "w1")
    await online(queue, "w2")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    owner, other = job.assigned_to, ({"w1", "w2"} - {job.assigned_to}).pop()
    assert owner is not None
    with pytest.raises(Conflict):
        await queue.jobs.claim(job.id, other)
    with pytest.raises(Conflict):
        await queue.jobs.close(job.id, owner, "too early")
    await queue.jobs.claim(job.id, owner)
    with pytest.raises(Conflict):
        await queue.jobs.claim(job.id, owner)
    with pytest.raises(Forbidden):
        await queue.jobs.close(job.id, other, "not mine")
    assert (await queue.jobs.get(job.id)).status == "running"


@pytest.mark.parametrize("call", ["claim", "close", "get"])
async def test_unknown_jobs_are_not_found(queue: QueueService, call: str) -> None:
    await online(queue, "w1")
    with pytest.raises(NotFound):
        if call == "claim":
            await queue.jobs.claim(999, "w1")
        elif call == "close":
            await queue.jobs.close(999, "w1", "x")
        else:
            await queue.jobs.get(999)


async def test_close_rejects_an_unknown_outcome(queue: QueueService) -> None:
    with pytest.raises(ValidationFailed):
        await queue.jobs.close(1, "w1", "x", "finished")


async def test_an_expired_lease_requeues_and_the_next_worker_finishes_once(
    queue: QueueService, clock: FakeClock,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x", timeout_s=60), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    clock.advance(61)
    await online(queue, "w2")
    assert await queue.expire_leases() == 1
    moved = await queue.jobs.get(job.id)
    assert (moved.status, moved.assigned_to, moved.attempts) == ("pending", "w2", 1)
    assert [(a.worker, a.outcome) for a in moved.history] == [("w1", "lost")]

    await queue.jobs.claim(job.id, "w2")
    done = await queue.jobs.close(job.id, "w2", "from w2")
    with pytest.raises(Conflict):
        await queue.jobs.close(job.id, "w1", "late from w1")
    final = await queue.jobs.get(job.id)
    assert final == done
    assert (final.result, final.attempts) == ("from w2", 2)
    assert (await queue.workers.get("w1")).record.failed_30d == 1


async def test_a_late_close_while_the_job_runs_elsewhere_is_a_conflict(
    queue: QueueService, clock: FakeClock,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x", timeout_s=60), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    clock.advance(61)
    await online(queue, "w2")
    await queue.expire_leases()
    await queue.jobs.claim(job.id, "w2")
    with pytest.raises(Conflict):
        await queue.jobs.close(job.id, "w1", "late")
    assert (await queue.jobs.get(job.id)).status == "running"


async def test_heartbeats_renew_leases(queue: QueueService, clock: FakeClock) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x", timeout_s=60), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    for _ in range(5):
        clock.advance(50)
        reply = await queue.workers.heartbeat("w1", "busy")
        assert reply["renewed"] == 1
    assert await queue.expire_leases() == 0
    assert (await queue.jobs.get(job.id)).lease_expires_at == clock.now() + (
        timedelta(seconds=60))


async def test_a_job_fails_for_good_when_its_attempts_are_used_up(
    queue: QueueService, clock: FakeClock,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x", timeout_s=60, max_attempts=2),
                                  actor=ADMIN)
    for _ in range(2):
        await queue.workers.heartbeat("w1")
        await queue.jobs.claim(job.id, "w1")
        clock.advance(61)
        await queue.expire_leases()
    failed = await queue.jobs.get(job.id)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert [a.outcome for a in failed.history] == ["lost", "lost"]
    assert failed.error == "lease expired; gave up after 2 of 2 attempts"


async def test_maintenance_takes_unclaimed_jobs_back_from_silent_workers(
    queue: QueueService, clock: FakeClock,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    assert job.assigned_to == "w1"
    clock.advance(31)
    await online(queue, "w2")
    report = await queue.maintain()
    assert (report.released, report.assigned) == (1, 1)
    assert (await queue.jobs.get(job.id)).assigned_to == "w2"


async def test_release_hands_back_unclaimed_jobs_when_a_worker_signs_off(
    queue: QueueService,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await online(queue, "w2")
    assert await queue.jobs.release("w1") == [job.id]
    assert (await queue.jobs.get(job.id)).assigned_to == "w2"
    assert (await queue.workers.get("w1")).status == "offline"


async def test_update_only_until_claimed(queue: QueueService) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    patched = await queue.jobs.update(
        job.id, JobPatch(tags=["B", "a"], urgency="high"), actor=ADMIN)
    assert (patched.tags, patched.urgency, patched.effort) == (["b", "a"], "high", "standard")
    await queue.jobs.claim(job.id, "w1")
    with pytest.raises(Conflict):
        await queue.jobs.update(job.id, JobPatch(effort="deep"), actor=ADMIN)


async def test_cancel_stops_a_running_job_and_refuses_finished_ones(queue: QueueService
                                                                    ) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    cancelled = await queue.jobs.cancel(job.id, actor=ADMIN, reason="not needed")
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by alice: not needed")
    assert cancelled.history[-1].outcome == "cancelled"
    with pytest.raises(Conflict):
        await queue.jobs.close(job.id, "w1", "done anyway")
    with pytest.raises(Conflict):
        await queue.jobs.cancel(job.id, actor=ADMIN)


async def test_retry_sends_a_failed_job_round_again_keeping_its_history(
    queue: QueueService,
) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    await queue.jobs.close(job.id, "w1", "broke", "failed")
    retried = await queue.jobs.retry(job.id, actor=ADMIN)
    assert (retried.status, retried.attempts, retried.result, retried.error) == (
        "pending", 0, None, None)
    assert retried.assigned_to == "w1"
    await queue.jobs.claim(job.id, "w1")
    done = await queue.jobs.close(job.id, "w1", "fixed")
    assert [(a.attempt, a.outcome) for a in done.history] == [(1, "failed"), (2, "done")]
    with pytest.raises(Conflict):
        await queue.jobs.retry(job.id, actor=ADMIN)


async def test_list_filters_and_pages_newest_first(queue: QueueService) -> None:
    await online(queue, "w1", capacity=5)
    a = await queue.jobs.submit(JobSpec(prompt="a", tags="x,y"), actor=ADMIN)
    b = await queue.jobs.submit(JobSpec(prompt="b", tags="y"), actor=ADMIN)
    c = await queue.jobs.submit(JobSpec(prompt="c", capability="nobody-has-it"), actor=ADMIN)
    await queue.jobs.claim(a.id, "w1")
    assert [j.id for j in (await queue.jobs.list()).items] == [c.id, b.id, a.id]
    assert [j.id for j in (await queue.jobs.list(tags="y")).items] == [b.id, a.id]
    assert [j.id for j in (await queue.jobs.list(tags=["x", "y"])).items] == [a.id]
    assert [j.id for j in (await queue.jobs.list(status="running")).items] == [a.id]
    assert [j.id for j in (await queue.jobs.list(assigned_to="w1")).items] == [b.id, a.id]
    page = await queue.jobs.list(limit=1, offset=1)
    assert ([j.id for j in page.items], page.total) == ([b.id], 3)
    with pytest.raises(ValidationFailed):
        await queue.jobs.list(limit=0)


async def test_a_backlog_nobody_can_serve_does_not_block_the_jobs_behind_it(
    queue: QueueService,
) -> None:
    stuck = [await queue.jobs.submit(JobSpec(prompt="gpu", capability="gpu"), actor=ADMIN)
             for _ in range(205)]
    plain = await queue.jobs.submit(JobSpec(prompt="anyone"), actor=ADMIN)
    await online(queue, "w1")
    assert (await queue.jobs.get(plain.id)).assigned_to == "w1"
    assert (await queue.jobs.get(stuck[0].id)).assigned_to is None


async def test_input_and_results_must_be_json(queue: QueueService) -> None:
    await online(queue, "w1")
    with pytest.raises(ValidationFailed):
        await queue.jobs.submit(JobSpec(prompt="x", input={1, 2}), actor=ADMIN)
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    with pytest.raises(ValidationFailed):
        await queue.jobs.close(job.id, "w1", object())
    assert (await queue.jobs.get(job.id)).status == "running"


async def test_passes_run_side_by_side_never_race_each_other_for_a_job(
    queue: QueueService, store: SqliteStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers draining a backlog together, writes sharing commits: each close runs a
    routing pass, and no pass tries to assign a job another one just took."""
    for i in range(24):
        await queue.jobs.submit(JobSpec(prompt=f"p{i}"), actor=ADMIN)
    outcomes: list[bool] = []
    assign = store.jobs.assign

    async def counted(job_id: int, worker: str, risk_tier: str, now: datetime) -> bool:
        outcomes.append(await assign(job_id, worker, risk_tier, now))
        return outcomes[-1]

    monkeypatch.setattr(store.jobs, "assign", counted)
    done: list[int] = []

    async def drain(name: str) -> None:
        await online(queue, name, capacity=2)
        while len(done) < 24:
            jobs = await queue.jobs.inbox(name)
            if not jobs:
                await anyio.lowlevel.checkpoint()
            for job in jobs:
                await queue.jobs.claim(job.id, name)
                await queue.jobs.close(job.id, name, "ok")
                done.append(job.id)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(store.background)
            async with anyio.create_task_group() as workers:
                for i in range(4):
                    workers.start_soon(drain, f"w{i}")
            tg.cancel_scope.cancel()
    assert len(set(done)) == 24
    assert outcomes == [True] * 24  # one assignment per job: not one lost race
