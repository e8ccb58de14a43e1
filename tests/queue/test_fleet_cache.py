"""The fleet routing reads from memory is always what the database holds.

Two stores on one file stand for two server processes. Random sequences of queue
operations run through either — and plain SQL writes, as a process running older code
would make them; after each, what each store serves from its cache (live workers, jobs in
hand, session grants) must equal a fresh read of the file.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import anyio
import pytest

from core.clock import FakeClock
from core.errors import ModelReinsError
from core.queue import JobSpec, QueueService
from core.queue.workers import CapabilityInput
from core.store import SqliteStore, open_sqlite
from core.store.codec import opt_instant
from core.store.queue import InHand
from core.store.workers import SELECT_ALL_LIVE
from tests.queue.conftest import ADMIN, CONFIG, START

NAMES = ("w1", "w2", "w3")
CAPABILITIES: list[CapabilityInput] = ["code", {"name": "ops", "risk_tier": "session"},
                {"name": "deploy", "risk_tier": "approve"}]


def _fresh_in_hand(store: SqliteStore) -> dict[str, InHand]:
    return {
        name: InHand(running=running, assigned=assigned, lease_until=opt_instant(lease))
        for name, running, assigned, lease in store.db.conn.execute(
            "SELECT assigned_to, SUM(status = 'running'), SUM(status = 'pending'), "
            "MAX(CASE WHEN status = 'running' THEN lease_expires_at END) FROM jobs "
            "WHERE status IN ('pending', 'running') AND assigned_to IS NOT NULL "
            "GROUP BY assigned_to")
    }


def _older_process_writes(rng: random.Random, store: SqliteStore) -> None:
    """Changes made with plain SQL, knowing nothing of the cache."""
    conn = store.db.conn
    if rng.random() < 0.5:
        conn.execute("UPDATE workers SET capacity = ?, last_seen = NULL WHERE name = ?",
                     (rng.randint(0, 3), rng.choice(NAMES)))
    else:
        conn.execute("UPDATE jobs SET assigned_to = NULL WHERE id = (SELECT MAX(id) FROM jobs "
                     "WHERE status = 'pending' AND assigned_to IS NOT NULL)")


async def _check(store: SqliteStore) -> None:
    cached_workers = await store.workers.all(include_revoked=False)
    cached_hands = await store.jobs.in_hand()
    cached_grants = await store.jobs.session_grants()
    assert cached_workers == store.workers._read(SELECT_ALL_LIVE)
    assert cached_hands == _fresh_in_hand(store)
    assert await store.workers.fleet_now() == (cached_workers, cached_hands)
    live = {w.name: w for w in cached_workers}
    for name in NAMES:  # what an inbox read asks (core.queue.jobs.JobService.inbox)
        assert await store.workers.holding(name) == (live.get(name),
                                                     cached_hands.get(name, InHand()))
    store.jobs.fleet.grants = None
    assert cached_grants == await store.jobs.session_grants()


async def _step(rng: random.Random, queue: QueueService, store: SqliteStore,
                clock: FakeClock) -> None:
    name = rng.choice(NAMES)
    jobs = queue.jobs
    op = rng.choices(range(12), weights=[1, 3, 4, 4, 3, 1, 1, 1, 1, 1, 1, 1])[0]
    if op == 0:
        await queue.workers.register(name, capabilities=CAPABILITIES, actor=ADMIN)
    elif op == 1:
        await queue.workers.heartbeat(name, "active", tags=rng.choice(["code", "", "ops"]),
                                      capacity=rng.randint(0, 3))
    elif op == 2:
        capability = rng.choice([None, None, "code", "ops", "deploy"])
        await jobs.submit(JobSpec(prompt="p", capability=capability), actor=ADMIN)
    elif op == 3:
        for job in await jobs.inbox(name):
            await jobs.claim(job.id, name)
    elif op == 4:
        for job in await jobs.inbox(name, "running"):
            await jobs.close(job.id, name, "r", rng.choice(["done", "failed"]))
    elif op == 5:
        await rng.choice([queue.workers.pause, queue.workers.resume,
                          queue.workers.revoke])(name, actor=ADMIN)
    elif op == 6:
        await jobs.release(name)
    elif op == 7:
        clock.advance(rng.choice([5, 40, 700]))
        await queue.maintain()
    elif op == 8:
        page = await jobs.list(status="awaiting_approval", limit=5)
        for job in page.items:
            await jobs.approve(job.id, actor=ADMIN)
    elif op == 9:
        page = await jobs.list(limit=3)
        for job in page.items:
            await rng.choice([jobs.cancel, jobs.retry])(job.id, actor=ADMIN)
    elif op == 10:
        await queue.workers.list()
    else:
        _older_process_writes(rng, store)


@pytest.mark.parametrize("seed", range(10))
async def test_what_routing_reads_from_memory_matches_the_file(tmp_path: Path,
                                                                seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock(START)
    stores = [open_sqlite(tmp_path / "q.db") for _ in range(2)]
    queues = [QueueService(s, clock, CONFIG) for s in stores]
    try:
        for _ in range(100):
            # A refusal (unknown worker, wrong state…) must leave the cache right too.
            which = rng.randrange(2)
            with contextlib.suppress(ModelReinsError):
                await _step(rng, queues[which], stores[which], clock)
            for store in stores:
                await _check(store)
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize("seed", range(5))
async def test_the_cache_stays_exact_when_concurrent_writes_share_commits(
    tmp_path: Path, seed: int,
) -> None:
    """The same, with both stores' background running: operations started together
    commit together (core.store.group_commit), and the cache counts them as one."""
    rng = random.Random(seed)
    clock = FakeClock(START)
    stores = [open_sqlite(tmp_path / "q.db") for _ in range(2)]
    queues = [QueueService(s, clock, CONFIG) for s in stores]

    async def step(which: int) -> None:
        with contextlib.suppress(ModelReinsError):
            await _step(rng, queues[which], stores[which], clock)

    try:
        async with anyio.create_task_group() as background:
            for store in stores:
                await background.start(store.background)
            for _ in range(40):
                async with anyio.create_task_group() as tg:
                    for _ in range(4):
                        tg.start_soon(step, rng.randrange(2))
                for store in stores:
                    await _check(store)
            assert sum(s.db.group.commits for s in stores) > 0
            background.cancel_scope.cancel()
    finally:
        for store in stores:
            await store.close()
