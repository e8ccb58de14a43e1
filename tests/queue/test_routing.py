"""Explain and assignment are one computation; waiting for inbox work and results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from core.clock import FakeClock
from core.config import QueueConfig
from core.errors import NotFound
from core.ids import new_id
from core.queue import Job, JobSpec, QueueService
from core.queue.allocate import explanation_model
from core.queue.notify import Changes, inbox_key
from core.store import SqliteStore, open_sqlite
from tests.queue.conftest import ADMIN, online


async def _heartbeat_from_another_process(store: SqliteStore, clock: FakeClock, name: str,
                                          **details: object) -> None:
    """Presence recorded by another server process: this one routes on its next pass."""
    now = clock.now()
    await store.workers.heartbeat(
        name, presence="active", details=dict(details) or None, tags=None, provider=None,
        capacity=None, now=now, window_start=now, session_id=new_id("ses"))


async def test_assignment_uses_exactly_the_explanation_explain_shows(
    queue: QueueService, store: SqliteStore, clock: FakeClock,
) -> None:
    await online(queue, "alpha", tags="code")
    await online(queue, "beta", tags="code,review", capacity=2)
    await online(queue, "gamma", tags="review")
    warmup = await queue.jobs.submit(JobSpec(prompt="w", tags="review"), actor=ADMIN)
    assert warmup.assigned_to is not None
    await queue.jobs.claim(warmup.id, warmup.assigned_to)
    await queue.jobs.close(warmup.id, warmup.assigned_to, "ok")
    clock.advance(31)
    job = await queue.jobs.submit(JobSpec(prompt="x", tags="code,review"), actor=ADMIN)
    assert job.assigned_to is None

    await _heartbeat_from_another_process(store, clock, "alpha")
    await _heartbeat_from_another_process(store, clock, "beta")
    await _heartbeat_from_another_process(store, clock, "gamma", rate_limited=True)
    shown = await queue.explain_job(job.id)
    adhoc = await queue.explain(job_tags=" Review,code", urgency="normal")
    [assignment] = await queue.assign_pending()

    assert explanation_model(assignment.explanation) == shown
    assert adhoc.model_copy(update={"job_tags": shown.job_tags}) == shown
    assert assignment.worker == shown.chosen == (await queue.jobs.get(job.id)).assigned_to
    totals = [c.score.total for c in shown.candidates if c.eligible]
    assert len(set(totals)) == len(totals) == 3
    assert shown.candidates[-1].score.penalties["rate_limited"] == 0.25


async def test_explain_lists_ineligible_workers_with_their_reasons(queue: QueueService) -> None:
    await online(queue, "coder", capabilities=["code"])
    await online(queue, "deployer", capabilities=["deploy"])
    await queue.workers.register("sleeper", capabilities=["deploy"], actor=ADMIN)
    exp = await queue.explain(capability="deploy")
    assert exp.chosen == "deployer"
    assert {c.worker: c.reasons for c in exp.candidates} == {
        "deployer": [], "coder": ["lacks capability deploy"], "sleeper": ["offline"]}


async def test_wait_for_returns_as_soon_as_the_job_closes(queue: QueueService) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    seen: list[Job] = []

    async def wait() -> None:
        seen.append(await queue.jobs.wait_for(job.id, timeout_s=30, recheck_s=30))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert not seen
            await queue.jobs.close(job.id, "w1", "the answer")
    assert [(j.status, j.result) for j in seen] == [("done", "the answer")]


async def test_wait_for_gives_back_the_unfinished_job_when_time_runs_out(
    queue: QueueService,
) -> None:
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    with anyio.fail_after(5):
        waited = await queue.jobs.wait_for(job.id, timeout_s=0.01)
    assert waited.status == "pending"


@asynccontextmanager
async def _two_processes(tmp_path: Path, clock: FakeClock
                         ) -> AsyncIterator[tuple[QueueService, QueueService]]:
    """Two queues on one SQLite file, as two processes sharing a home have."""
    path = tmp_path / "q.db"
    config = QueueConfig(presence_window_s=30)
    here, there = open_sqlite(path), open_sqlite(path)
    try:
        yield QueueService(here, clock, config), QueueService(there, clock, config)
    finally:
        await here.close()
        await there.close()


async def test_wait_for_sees_a_close_made_by_another_process(
    tmp_path: Path, clock: FakeClock,
) -> None:
    async with _two_processes(tmp_path, clock) as (waiting, closing):
        await online(closing, "w1")
        job = await closing.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
        await closing.jobs.claim(job.id, "w1")
        seen: list[Job] = []

        async def wait() -> None:
            seen.append(await waiting.jobs.wait_for(job.id, timeout_s=30, recheck_s=0.02))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                await closing.jobs.close(job.id, "w1", "done elsewhere")
        assert seen[0].result == "done elsewhere"


async def _long_poll_then(queue: QueueService, worker: str, recheck_s: float,
                          act: Callable[[], Awaitable[Job]]) -> tuple[list[int], Job]:
    """Start ``worker``'s long-poll, ``act`` once it is waiting: the ids the poll returned,
    and what ``act`` made."""
    seen: list[list[Job]] = []

    async def poll() -> None:
        seen.append(await queue.wait_inbox(worker, timeout_s=30, recheck_s=recheck_s))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await anyio.wait_all_tasks_blocked()
            assert not seen
            made = await act()
    [jobs] = seen
    return [j.id for j in jobs], made


async def test_wait_inbox_wakes_when_work_is_assigned(queue: QueueService) -> None:
    await online(queue, "w1")
    got, job = await _long_poll_then(
        queue, "w1", 30, lambda: queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN))
    assert got == [job.id]


async def test_wait_inbox_returns_at_once_when_work_is_waiting(queue: QueueService) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    with anyio.fail_after(5):
        assert [j.id for j in await queue.wait_inbox("w1", timeout_s=30)] == [job.id]
        assert await queue.wait_inbox("w1", timeout_s=0) != []


async def test_an_idle_workers_inbox_is_answered_without_reading_jobs(
    queue: QueueService, store: SqliteStore,
) -> None:
    """Every long-poll starts with an inbox read, and a worker back for more usually holds
    nothing: what it holds is known from memory (core.store.fleet_cache), exactly."""
    await online(queue, "w1")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        assert await queue.jobs.inbox("w1") == []  # may load what workers hold, once
        statements.clear()
        assert await queue.jobs.inbox("w1") == []
        assert not [s for s in statements if "FROM jobs" in s]
        job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
        assert [j.id for j in await queue.jobs.inbox("w1")] == [job.id]
        await queue.jobs.claim(job.id, "w1")
        statements.clear()
        assert await queue.jobs.inbox("w1") == []
        assert not [s for s in statements if "FROM jobs" in s]
    finally:
        store.db.conn.set_trace_callback(None)
    with pytest.raises(NotFound):
        await queue.jobs.inbox("nobody")


async def test_an_inbox_shows_a_job_another_process_assigned(
    tmp_path: Path, clock: FakeClock,
) -> None:
    async with _two_processes(tmp_path, clock) as (polling, submitting):
        await online(submitting, "w1", capacity=2)
        assert await polling.jobs.inbox("w1") == []  # nothing held, as of now
        job = await submitting.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
        assert [j.id for j in await polling.jobs.inbox("w1")] == [job.id]
        await submitting.jobs.claim(job.id, "w1")
        assert await polling.jobs.inbox("w1") == []
        # A long-poll in progress notices it within its recheck interval.
        got, again = await _long_poll_then(
            polling, "w1", 0.02,
            lambda: submitting.jobs.submit(JobSpec(prompt="y"), actor=ADMIN))
        assert got == [again.id]


async def test_wait_inbox_gives_up_empty_when_time_runs_out(queue: QueueService) -> None:
    await online(queue, "w1")
    with anyio.fail_after(5):
        assert await queue.wait_inbox("w1", timeout_s=0.02, recheck_s=0.01) == []
    assert queue.changes.watching(inbox_key("w1")) == 0


async def test_a_cancelled_wait_leaves_nothing_behind(queue: QueueService) -> None:
    """Waits time out on the loop's own timers, not anyio cancel scopes: an enclosing
    scope still ends them, and a later notification finds no one left to wake."""
    await online(queue, "w1")
    with anyio.move_on_after(0.02) as scope:
        await queue.wait_inbox("w1", timeout_s=30, recheck_s=30)
    assert scope.cancelled_caught
    assert queue.changes.watching(inbox_key("w1")) == 0
    changes = Changes()
    with changes.watch("k") as watch:
        with anyio.move_on_after(0.01):
            await watch.wait()
        assert not watch._waiters
        changes.notify("k", "item")
        assert watch.fired
        assert await watch.wait(0) is True  # fired already: at once


async def test_changes_wait_tells_a_notification_from_a_timeout() -> None:
    changes = Changes()
    with anyio.fail_after(5):
        assert await changes.wait("k", 0.01) is False
        async with anyio.create_task_group() as tg:
            results: list[bool] = []

            async def wait() -> None:
                results.append(await changes.wait("k", 30))

            tg.start_soon(wait)
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            changes.notify("k")
        assert results == [True, True]
