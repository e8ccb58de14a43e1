"""Scheduler at scale: 10,000 enabled tasks on one engine (SQLite file, echo provider).

Measures, in this order:
  1. idle CPU (process CPU time / wall time) over ``--seconds`` while nothing is due — the
     scheduler sleeps until the earliest due time and wakes only to renew its lease;
  2. resident memory with every task loaded;
  3. lateness (fire time − due time) of ``--due`` tasks all due at the same minute
     boundary (``* * * * *``), over ``--minutes`` boundaries: p50 / p99 / max of the run's
     recorded start, plus when the last of them finished.

Targets: idle CPU < 1 % of a core; p99 lateness < 1 s.

    python bench/scheduler_scale.py                 # 10,000 tasks, 60 s idle window
    python bench/scheduler_scale.py --seconds 10    # a quicker look
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from core.clock import from_iso
from core.config import parse_settings
from core.engine import Engine
from core.store import open_sqlite
from core.tasks.cron import next_fire
from core.tasks.models import TaskSpec
from core.tasks.scheduler import Sleeper, sleep_or_wake

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
MARGIN = timedelta(seconds=180)


def varied_schedule(rng: random.Random) -> str:
    minute, hour = rng.randrange(60), rng.randrange(24)
    return rng.choice([
        f"{minute} {hour} * * *",
        f"{minute} {hour} * * 1-5",
        f"{minute} */{rng.choice([2, 3, 4, 6, 12])} * * *",
        f"{minute} {hour} {rng.randrange(1, 29)} * *",
        f"{minute} {hour} * * {rng.choice(['MON', 'SUN', 'SAT'])}",
        f"{minute} {hour},{(hour + 12) % 24} * * *",
        "@weekly",
        "@monthly",
    ])


def quiet_schedule(rng: random.Random, now: datetime, quiet_until: datetime) -> tuple[str, str]:
    """A schedule (and zone) that does not fire before ``quiet_until``."""
    while True:
        schedule, zone = varied_schedule(rng), rng.choice(ZONES)
        if next_fire(now, schedule, zone) > quiet_until:
            return schedule, zone


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class CountingSleep:
    def __init__(self, inner: Sleeper) -> None:
        self.inner = inner
        self.calls = 0

    async def __call__(self, seconds: float, wake: anyio.Event) -> None:
        self.calls += 1
        await self.inner(seconds, wake)


async def create_tasks(engine: Engine, total: int, due: int, window_s: float) -> list[str]:
    rng = random.Random(42)
    now = datetime.now(UTC)
    quiet_until = now + timedelta(seconds=window_s) + MARGIN
    due_ids = []
    started = time.perf_counter()
    for i in range(total):
        if i < due:
            spec = TaskSpec(name=f"due-{i:05d}", schedule="* * * * *", prompt=f"ping {i}",
                            enabled=False)
        else:
            schedule, zone = quiet_schedule(rng, now, quiet_until)
            spec = TaskSpec(name=f"task-{i:05d}", schedule=schedule, timezone=zone,
                            prompt=f"report {i}")
        task = await engine.tasks.create(spec)
        if i < due:
            due_ids.append(task.id)
    print(f"created {total} tasks in {time.perf_counter() - started:.1f} s "
          f"({total - due} enabled, varied schedules; {due} '* * * * *' held disabled)")
    return due_ids


async def measure_idle(seconds: float, sleeps: CountingSleep) -> None:
    wakes0 = sleeps.calls
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await anyio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"idle: {cpu * 1000:.1f} ms CPU over {wall:.1f} s = {100 * cpu / wall:.3f} % of a "
          f"core; scheduler woke {sleeps.calls - wakes0} times")


async def until_boundary_after(moment: datetime) -> datetime:
    """Wait (really) until ``moment``'s next minute boundary has passed; that boundary."""
    boundary = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    await anyio.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()))
    return boundary


async def measure_lateness(engine: Engine, due_ids: list[str], minutes: int) -> None:
    if datetime.now(UTC).second >= 50:  # leave time to enable them before the boundary
        await until_boundary_after(datetime.now(UTC))
    enable_started = time.perf_counter()
    for task_id in due_ids:
        await engine.tasks.set_enabled(task_id, True)
    print(f"enabled {len(due_ids)} '* * * * *' tasks in "
          f"{time.perf_counter() - enable_started:.2f} s")
    boundary = datetime.now(UTC)
    for _ in range(minutes):
        boundary = await until_boundary_after(boundary)
    await anyio.sleep(5)  # let the last boundary's runs finish
    rows = engine.store.runs.db.conn.execute(  # type: ignore[attr-defined]
        "SELECT started_at, finished_at, status FROM runs").fetchall()
    late, done_late, per_boundary = [], [], {}
    for started_at, finished_at, status in rows:
        start = from_iso(started_at)
        due = start.replace(second=0, microsecond=0)
        late.append((start - due).total_seconds())
        if finished_at:
            done_late.append((from_iso(finished_at) - due).total_seconds())
        per_boundary[due] = per_boundary.get(due, 0) + (status == "success")
    counts = sorted(per_boundary.values())
    print(f"fired {len(rows)} runs over {len(per_boundary)} boundaries "
          f"(successes per boundary: {counts})")
    print(f"lateness (start − due): p50 {pct(late, 50) * 1000:.0f} ms  "
          f"p99 {pct(late, 99) * 1000:.0f} ms  max {max(late) * 1000:.0f} ms")
    print(f"finished − due:         p50 {pct(done_late, 50) * 1000:.0f} ms  "
          f"p99 {pct(done_late, 99) * 1000:.0f} ms  max {max(done_late) * 1000:.0f} ms")


async def main(args: argparse.Namespace) -> None:
    settings = parse_settings({"providers": {"echo": {"type": "echo", "default": True}}},
                              env={})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = open_sqlite(home / "bench.db")
        async with Engine.open(home, settings=settings, store=store) as engine:
            due_ids = await create_tasks(engine, args.tasks, args.due, args.seconds)
            sleeps = CountingSleep(sleep_or_wake)
            engine.start_scheduler(sleep=sleeps)
            await anyio.sleep(1)
            await measure_idle(args.seconds, sleeps)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"memory: {rss_mb():.1f} MB resident now, {peak_mb:.1f} MB peak "
                  f"(Python {sys.version.split()[0]})")
            await measure_lateness(engine, due_ids, args.minutes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=1_000,
                        help="how many of them become due at each minute boundary")
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    parser.add_argument("--minutes", type=int, default=2, help="boundaries to measure")
    anyio.run(main, parser.parse_args())
