"""The queue across connections and restarts of a file-backed SQLite store."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import anyio

from core.clock import FakeClock
from core.errors import Conflict
from core.queue import Job, JobSpec, QueueService
from core.store import open_sqlite
from core.store.migrations import MIGRATIONS
from core.store.sqlite import _statements
from tests.queue.conftest import ADMIN, CONFIG, START, online


def test_a_claim_race_across_connections_has_exactly_one_winner(tmp_path: Path) -> None:
    """Six contenders on six connections (as if six processes), released together: the
    assigned worker's first claim wins, every other claim — its own duplicates and the
    other worker's — is a CONFLICT."""
    path, clock = tmp_path / "q.db", FakeClock(START)

    async def setup() -> int:
        store = open_sqlite(path)
        try:
            queue = QueueService(store, clock, CONFIG)
            await online(queue, "a")
            job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
            await online(queue, "b")
            assert job.assigned_to == "a"
            return job.id
        finally:
            await store.close()

    job_id = anyio.run(setup)
    contenders = ["a", "b", "a", "b", "a", "b"]
    stores = [open_sqlite(path) for _ in contenders]
    barrier = threading.Barrier(len(contenders))
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def contend(index: int) -> None:
        queue = QueueService(stores[index], clock, CONFIG)
        barrier.wait()
        try:
            anyio.run(queue.jobs.claim, job_id, contenders[index])
            outcome = "won"
        except Conflict:
            outcome = "conflict"
        with lock:
            outcomes.append((contenders[index], outcome))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(contenders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        anyio.run(s.close)
    assert sorted(o for o in outcomes if o[1] == "won") == [("a", "won")]
    assert len(outcomes) == len(contenders)


async def _every_state(queue: QueueService) -> dict[str, int]:
    """Jobs held, waiting, assigned, running, done, failed, escalated and cancelled, all of
    worker ``w1`` (online with room for all): their ids by those names, in that order."""
    await online(queue, "w1", capacity=10,
                 capabilities=["code", {"name": "deploy", "risk_tier": "approve"}])

    async def submit(**spec: object) -> int:
        job = await queue.jobs.submit(JobSpec.model_validate({"prompt": "p", **spec}),
                                      actor=ADMIN)
        return job.id

    held = await submit(capability="deploy")
    waiting = await submit(capability="nobody-has-it")
    assigned = await submit(tags="code")
    running, done, failed, escalated, cancelled = [await submit() for _ in range(5)]
    for job_id in (running, done, failed, escalated):
        await queue.jobs.claim(job_id, "w1")
    await queue.jobs.close(done, "w1", {"answer": 42})
    await queue.jobs.close(failed, "w1", "broke", "failed")
    await queue.jobs.close(escalated, "w1", "ask a human", "escalated")
    await queue.jobs.cancel(cancelled, actor=ADMIN)
    return {"held": held, "waiting": waiting, "assigned": assigned, "running": running,
            "done": done, "failed": failed, "escalated": escalated, "cancelled": cancelled}


async def test_jobs_in_every_state_survive_a_restart(tmp_path: Path) -> None:
    path, clock = tmp_path / "q.db", FakeClock(START)
    store = open_sqlite(path)
    queue = QueueService(store, clock, CONFIG)
    job = await _every_state(queue)
    ids = list(job.values())
    before: list[Job] = [await queue.jobs.get(i) for i in ids]
    worker_before = await queue.workers.get("w1")
    await store.close()

    reopened = open_sqlite(path)
    try:
        again = QueueService(reopened, clock, CONFIG)
        after = [await again.jobs.get(i) for i in ids]
        assert after == before
        assert [j.status for j in after] == [
            "awaiting_approval", "pending", "pending", "running", "done", "failed",
            "escalated", "cancelled"]
        assert await again.workers.get("w1") == worker_before
        assert [j.id for j in await again.jobs.inbox("w1")] == [job["assigned"]]
        finished = await again.jobs.close(job["running"], "w1", "after restart")
        assert finished.status == "done"
    finally:
        await reopened.close()


def _schema_5() -> list[str]:
    """Statements that take a migrated database back to the queue schema migration 5 left:
    migration 4's own statements for what migration 6 replaced."""
    four = _statements(next(sql for version, _, sql in MIGRATIONS if version == 4))

    def original(prefix: str) -> str:
        return next(statement for statement in four if statement.startswith(prefix))

    return [
        "DELETE FROM schema_version WHERE version = 6",
        "DROP INDEX jobs_in_hand", "DROP INDEX jobs_worker", "DROP INDEX jobs_queued",
        original("CREATE INDEX jobs_inbox"), original("CREATE INDEX jobs_in_hand"),
        "DROP INDEX job_attempts_failures",
        "ALTER TABLE job_attempts RENAME TO attempts_6",
        original("CREATE TABLE job_attempts"),
        "INSERT INTO job_attempts SELECT * FROM attempts_6",
        "DROP TABLE attempts_6",
        original("CREATE INDEX job_attempts_failures"),
    ]


async def test_a_schema_5_database_upgrades_keeping_every_job_and_attempt(
    tmp_path: Path,
) -> None:
    """Migration 6 (new queue indexes; attempts rebuilt WITHOUT ROWID) on a database with
    jobs in every state, one of them on its second attempt: nothing is lost, and the
    queue runs on the new indexes."""
    path, clock = tmp_path / "q.db", FakeClock(START)
    store = open_sqlite(path)
    queue = QueueService(store, clock, CONFIG)
    job = await _every_state(queue)
    ids = list(job.values())
    await queue.jobs.retry(job["failed"], actor=ADMIN)
    await queue.jobs.claim(job["failed"], "w1")  # its second attempt, running
    before: list[Job] = [await queue.jobs.get(i) for i in ids]
    assert [len(j.history) for j in before] == [0, 0, 0, 1, 1, 2, 1, 0]
    await store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        for statement in _schema_5():
            conn.execute(statement)
        conn.execute("COMMIT")
        assert "WITHOUT ROWID" not in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'job_attempts'").fetchone()[0]

    upgraded = open_sqlite(path)
    try:
        conn = upgraded.jobs.db.conn
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 6
        ddl = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'job_attempts'").fetchone()[0]
        assert "WITHOUT ROWID" in ddl
        again = QueueService(upgraded, clock, CONFIG)
        assert [await again.jobs.get(i) for i in ids] == before
        assert [j.id for j in await again.jobs.inbox("w1")] == [job["assigned"]]
        running = {j.id for j in await again.jobs.inbox("w1", "running")}
        assert running == {job["running"], job["failed"]}
        closed = await again.jobs.close(job["failed"], "w1", "second time lucky")
        assert [a.outcome for a in closed.history] == ["failed", "done"]
        # The job no worker could take is routed as soon as one can.
        await online(again, "w2", capabilities=["nobody-has-it"])
        assert (await again.jobs.get(job["waiting"])).assigned_to == "w2"
    finally:
        await upgraded.close()


async def test_room_freed_in_one_process_serves_a_job_queued_by_another(
    tmp_path: Path,
) -> None:
    """A job another process queued (no room then) goes to the worker whose close, here,
    frees its slot — with both stores committing in groups, as the engine runs them."""
    clock = FakeClock(START)
    here, there = (open_sqlite(tmp_path / "q.db") for _ in range(2))
    try:
        async with anyio.create_task_group() as background:
            for store in (here, there):
                await background.start(store.background)
            mine, theirs = QueueService(here, clock, CONFIG), QueueService(there, clock, CONFIG)
            await online(mine, "w1")
            first = await mine.jobs.submit(JobSpec(prompt="first"), actor=ADMIN)
            await mine.jobs.claim(first.id, "w1")
            waiting = await theirs.jobs.submit(JobSpec(prompt="waiting"), actor=ADMIN)
            assert (waiting.status, waiting.assigned_to) == ("pending", None)
            await mine.jobs.close(first.id, "w1", "done")
            assert (await mine.jobs.get(waiting.id)).assigned_to == "w1"
            background.cancel_scope.cancel()
    finally:
        for store in (here, there):
            await store.close()
