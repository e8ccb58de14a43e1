"""The scheduler on a fake clock: nothing here waits on real time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.engine import Engine
from core.errors import ProviderError
from core.principal import Principal
from core.store import open_sqlite
from core.store.lease import SqliteLeases
from core.store.schedule import Fire
from core.store.tasks import DUE, NEXT_DUE
from core.tasks.models import Run, Task, TaskPatch
from core.tasks.scheduler import LEASE_NAME, Scheduler
from core.tasks.service import TaskService
from tests.support.scripted import ScriptedProvider, Step
from tests.tasks.builders import START, OpenEngine, spec, task_settings
from tests.tasks.fakes import ParkedSleeper

LONG_LEASE = 3600
"""So that lease renewals (every 1200 s) do not cut the sleeps these tests look at."""


def at(hour: int, minute: int = 0, second: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def scheduler(engine: Engine, holder: str) -> Scheduler:
    return Scheduler(engine.tasks, engine.store, engine.clock, engine.settings.tasks,
                     holder=holder)


async def runs_of(service: TaskService, task: Task) -> list[Run]:
    return list(reversed((await service.results(task.id, limit=100)).items))


async def test_sleeps_until_the_earliest_task_and_fires_it_once_on_time(
    open_engine: OpenEngine, tmp_path: Path, clock: FakeClock
) -> None:
    async with open_engine(task_settings(tmp_path, leaseS=LONG_LEASE)) as engine:
        later = await engine.tasks.create(spec("later", schedule="0 12 * * *"))
        task = await engine.tasks.create(spec(schedule="*/5 * * * *"))
        sleeper = ParkedSleeper(clock)
        engine.start_scheduler(sleep=sleeper)
        assert await sleeper.parked() == 300.0
        assert await runs_of(engine.tasks, task) == []
        sleeper.release()
        assert await sleeper.parked() == 300.0
        [run] = await runs_of(engine.tasks, task)
        assert (run.trigger, run.started_at) == ("schedule", at(8, 5))
        assert (await engine.tasks.wait_run(run.run_id, 5)).status == "success"
        assert (await engine.tasks.get(task.id)).next_run_at == at(8, 10)
        sleeper.release()
        await sleeper.parked()
        assert [r.started_at for r in await runs_of(engine.tasks, task)] == [at(8, 5), at(8, 10)]
        assert await runs_of(engine.tasks, later) == []


async def test_without_due_tasks_it_wakes_only_to_renew_its_lease(
    engine: Engine, clock: FakeClock
) -> None:
    sleeper = ParkedSleeper(clock)
    engine.start_scheduler(sleep=sleeper)
    assert await sleeper.parked() == 5.0  # a third of the default 15 s lease
    sleeper.release()
    assert await sleeper.parked() == 5.0
    assert engine.start_scheduler() is engine.scheduler


async def test_wakes_early_when_a_task_is_created(
    open_engine: OpenEngine, tmp_path: Path, clock: FakeClock
) -> None:
    async with open_engine(task_settings(tmp_path, leaseS=LONG_LEASE)) as engine:
        sleeper = ParkedSleeper(clock)
        engine.start_scheduler(sleep=sleeper)
        assert await sleeper.parked() == 1200.0
        await engine.tasks.create(spec(schedule="* * * * *"))
        assert await sleeper.parked() == 60.0
        assert sleeper.woken_early == 1


async def test_a_disabled_or_rescheduled_task_does_not_fire_at_its_old_time(
    open_engine: OpenEngine, tmp_path: Path, clock: FakeClock
) -> None:
    async with open_engine(task_settings(tmp_path, leaseS=LONG_LEASE)) as engine:
        task = await engine.tasks.create(spec(schedule="*/5 * * * *"))
        sleeper = ParkedSleeper(clock)
        engine.start_scheduler(sleep=sleeper)
        assert await sleeper.parked() == 300.0
        await engine.tasks.update(task.id, TaskPatch(schedule="10 8 * * *"))
        assert await sleeper.parked() == 600.0
        await engine.tasks.set_enabled(task.id, False)
        assert await sleeper.parked() == 1200.0
        sleeper.release(7200)
        await sleeper.parked()
        assert await runs_of(engine.tasks, task) == []


async def test_two_engines_sharing_one_file_fire_a_due_run_exactly_once(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    async with open_engine() as one, open_engine() as two:
        task = await one.tasks.create(spec(schedule="* * * * *"))
        sleepers = [ParkedSleeper(clock), ParkedSleeper(clock)]
        one.start_scheduler(sleep=sleepers[0])
        two.start_scheduler(sleep=sleepers[1])
        for sleeper in sleepers:
            await sleeper.parked()
        assert [one.scheduler.is_leader, two.scheduler.is_leader].count(True) == 1  # type: ignore[union-attr]
        for minute in range(1, 11):
            clock.set(at(8, minute))
            for sleeper in sleepers:
                sleeper.release(0)
            for sleeper in sleepers:
                await sleeper.parked()
        runs = await runs_of(one.tasks, task)
        assert [r.started_at for r in runs] == [at(8, m) for m in range(1, 11)]
        assert {r.trigger for r in runs} == {"schedule"}


async def test_a_claimed_fire_cannot_be_fired_again_even_by_a_second_leader(
    engine: Engine, clock: FakeClock
) -> None:
    task = await engine.tasks.create(spec(schedule="* * * * *"))
    clock.set(at(8, 1))
    [due] = await engine.store.tasks.due(clock.now(), 10)
    # Both processes read the due row, then both try to fire it.
    for holder in ("a", "b"):
        await scheduler(engine, holder)._fire_batch([due])
    assert len(await runs_of(engine.tasks, task)) == 1
    assert await engine.store.tasks.claim([Fire(task.id, due.next_run_at, at(8, 2))]) == []


async def test_a_follower_takes_over_when_the_leaders_lease_expires(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    async with open_engine() as one, open_engine() as two:
        task = await one.tasks.create(spec(schedule="* * * * *"))
        leader, follower = scheduler(one, "leader"), scheduler(two, "follower")
        assert await leader.step() == 5.0
        # The follower comes back when the lease it saw would run out.
        assert await follower.step() == 15.0
        assert not follower.is_leader
        # The leader dies here: it never steps again, so its lease is not renewed.
        clock.advance(15.0)
        await follower.step()
        assert follower.is_leader
        clock.set(at(8, 1))
        await follower.step()
        assert await leader.step() > 0
        assert not leader.is_leader
        [run] = await runs_of(two.tasks, task)
        assert run.started_at == at(8, 1)


async def test_a_leader_renews_its_lease_and_keeps_it(engine: Engine, clock: FakeClock) -> None:
    leader, follower = scheduler(engine, "leader"), scheduler(engine, "follower")
    for _ in range(10):
        await leader.step()
        assert await follower.step() > 0
        assert not follower.is_leader
        clock.advance(5.0)
    assert leader.is_leader


async def test_a_stopped_leader_hands_over_at_once(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    async with open_engine() as two:
        async with open_engine() as one:
            sleeper = ParkedSleeper(clock)
            one.start_scheduler(sleep=sleeper)
            await sleeper.parked()
            assert one.scheduler is not None and one.scheduler.is_leader
        follower = scheduler(two, "follower")
        await follower.step()
        assert follower.is_leader


async def test_lease_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path / "lease.db")
    leases = SqliteLeases(store.db)
    expiry = START + timedelta(seconds=15)
    first = await leases.acquire(LEASE_NAME, "a", now=START, expires_at=expiry)
    second = await leases.acquire(LEASE_NAME, "b", now=START, expires_at=expiry)
    assert first == second
    assert second.holder == "a"
    await leases.release(LEASE_NAME, "b")  # not b's to give up
    just_before = expiry - timedelta(milliseconds=1)
    assert (await leases.acquire(LEASE_NAME, "b", now=just_before, expires_at=expiry)).holder == "a"
    later = expiry + timedelta(seconds=15)
    assert (await leases.acquire(LEASE_NAME, "b", now=expiry, expires_at=later)).holder == "b"
    await leases.release(LEASE_NAME, "b")
    assert (await leases.acquire(LEASE_NAME, "c", now=START, expires_at=later)).holder == "c"
    await store.close()


async def test_after_downtime_one_catchup_run_within_grace_and_none_beyond(
    engine: Engine, clock: FakeClock
) -> None:
    hourly = await engine.tasks.create(spec("hourly", schedule="0 * * * *"))
    daily = await engine.tasks.create(spec("daily", schedule="0 9 * * *"))
    clock.set(at(11, 30))  # down since 08:00: hourly missed 09, 10, 11; daily missed 09
    await scheduler(engine, "s").step()
    [run] = await runs_of(engine.tasks, hourly)
    assert (run.trigger, run.started_at) == ("catchup", at(11, 30))
    assert await runs_of(engine.tasks, daily) == []  # 09:00 is 2.5 h ago; grace is 1 h
    assert (await engine.tasks.get(hourly.id)).next_run_at == at(12)
    assert (await engine.tasks.get(daily.id)).next_run_at == at(9, day=3)


async def test_catchup_grace_comes_from_the_config(
    open_engine: OpenEngine, tmp_path: Path, clock: FakeClock
) -> None:
    async with open_engine(task_settings(tmp_path, catchupGraceS=0)) as engine:
        task = await engine.tasks.create(spec(schedule="0 * * * *"))
        clock.set(at(9, 5))
        await scheduler(engine, "s").step()
        assert await runs_of(engine.tasks, task) == []
        assert (await engine.tasks.get(task.id)).next_run_at == at(10)


@pytest.mark.parametrize(("now", "trigger"), [
    (at(9, 0, 30), "schedule"),  # merely late
    (at(9, 30), "catchup"),      # missed, within the grace
])
async def test_a_late_fire_is_scheduled_then_a_catchup(
    engine: Engine, clock: FakeClock, now: datetime, trigger: str
) -> None:
    task = await engine.tasks.create(spec(schedule="0 9 * * *"))
    clock.set(now)
    await scheduler(engine, "s").step()
    [run] = await runs_of(engine.tasks, task)
    assert (run.trigger, run.started_at) == (trigger, now)
    assert (await engine.tasks.get(task.id)).next_run_at == at(9, day=3)


async def test_scheduled_runs_keep_the_creators_provider_restriction(
    engine: Engine, clock: FakeClock, providers: dict[str, ScriptedProvider]
) -> None:
    bot = Principal(name="bot", kind="user", providers=frozenset({"other"}))
    task = await engine.tasks.create(spec(provider="other", schedule="* * * * *"),
                                     principal=bot)
    providers["other"].steps = [Step(error=ProviderError("HTTP 503"))]
    clock.set(at(8, 1))
    await scheduler(engine, "s").step()
    [run] = await runs_of(engine.tasks, task)
    finished = await engine.tasks.wait_run(run.run_id, 5)
    # Under no restriction it would have fallen back to `backup`; the creator may not.
    assert (finished.status, finished.provider) == ("error", "other")
    assert providers["backup"].calls == []


async def test_on_fire_hears_of_each_fired_run(engine: Engine, clock: FakeClock) -> None:
    heard: list[tuple[str, str]] = []

    async def on_fire(task: Task, run: Run) -> None:
        heard.append((task.name, run.trigger))

    task = await engine.tasks.create(spec(schedule="* * * * *"))
    fired = Scheduler(engine.tasks, engine.store, clock, engine.settings.tasks, on_fire=on_fire)
    clock.set(at(8, 1))
    await fired.step()
    assert heard == [(task.name, "schedule")]


@pytest.mark.parametrize("query", [NEXT_DUE, DUE])
def test_due_queries_seek_the_index(tmp_path: Path, query: str) -> None:
    db = open_sqlite(tmp_path / "plan.db").db
    args = () if query == NEXT_DUE else ("2026-01-01T00:00:00.000Z", 10)
    plan = " ".join(row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {query}", args))
    assert "USING INDEX tasks_due" in plan or "USING COVERING INDEX tasks_due" in plan
    assert "SCAN tasks" not in plan.replace("USING", "")
    db.close()
