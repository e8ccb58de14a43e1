"""Queue throughput benchmark.

Part (a): in-process submit → claim → close of ``--jobs`` jobs (default 20,000) with
``--workers`` concurrent in-process workers (default 8) on a file-backed SQLite store in a
temporary directory (WAL). A producer submits while the workers long-poll their inboxes
(``QueueService.wait_inbox``), claim and close. Prints jobs/s for the whole run, from the
first submit to the last close.

    python bench/queue_throughput.py [--jobs 20000] [--workers 8] [--capacity 4] [--dir D]
                                     [--backlog]

``--backlog`` submits every job before the workers come online (draining a backlog).
``--dir`` puts the temporary directory elsewhere (e.g. ``/dev/shm`` to take disk writes
out of the picture); the default is the system temp dir.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import anyio.lowlevel

from core.clock import SystemClock
from core.config import QueueConfig
from core.principal import LOCAL
from core.queue import JobSpec, QueueService
from core.store import open_sqlite

TAGS = ("code", "review", "docs", "ops")


async def part_a(jobs: int, workers: int, capacity: int, where: str | None = None,
                 backlog: bool = False) -> tuple[float, float, int]:
    """Elapsed wall seconds, CPU seconds of this process, and the jobs that ended done.
    With ``backlog`` every job is submitted before the workers come online."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        store = open_sqlite(Path(tmp) / "bench.db")
        queue = QueueService(store, SystemClock(), QueueConfig(presence_window_s=600))
        names = [f"worker-{i}" for i in range(workers)]
        for name in names:
            await queue.workers.register(name, capabilities=["code"], actor=LOCAL)

        async def come_online() -> None:
            for i, name in enumerate(names):
                await queue.workers.heartbeat(name, "active", tags=TAGS[i % len(TAGS)],
                                              capacity=capacity)

        if not backlog:
            await come_online()
        closed = 0
        finished = anyio.Event()

        async def work(name: str) -> None:
            nonlocal closed
            while True:
                for job in await queue.wait_inbox(name, timeout_s=5):
                    await queue.jobs.claim(job.id, name)
                    await queue.jobs.close(job.id, name, job.prompt.upper())
                    closed += 1
                    if closed == jobs:
                        finished.set()

        async def produce() -> None:
            for i in range(jobs):
                spec = JobSpec(prompt=f"job {i}", tags=[TAGS[i % len(TAGS)]])
                await queue.jobs.submit(spec, actor=LOCAL)
                await anyio.lowlevel.checkpoint()

        started, cpu_started = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            if backlog:
                await produce()
                await come_online()
            else:
                tg.start_soon(produce)
            for name in names:
                tg.start_soon(work, name)
            await finished.wait()
            tg.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        done = (await queue.jobs.list(status="done", limit=1)).total
        await store.close()
        return elapsed, cpu, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=4, help="jobs in hand per worker")
    parser.add_argument("--dir", default=None, help="where the temporary directory goes")
    parser.add_argument("--backlog", action="store_true",
                        help="submit every job before the workers come online")
    args = parser.parse_args()
    elapsed, cpu, done = anyio.run(part_a, args.jobs, args.workers, args.capacity, args.dir,
                                   args.backlog)
    # On a shared machine the wall clock includes time other processes held the CPU;
    # the CPU-time rate is what this process alone sustains.
    where = args.dir or tempfile.gettempdir()
    mode = "backlog first" if args.backlog else "submitted while workers run"
    print(f"(a) in-process, SQLite WAL file in {where}, {mode}: {args.jobs} jobs, "
          f"{args.workers} workers (capacity {args.capacity}): "
          f"{elapsed:.2f} s wall = {args.jobs / elapsed:,.0f} jobs/s; "
          f"{cpu:.2f} s CPU = {args.jobs / cpu:,.0f} jobs/s per CPU-second [{done} done]")


if __name__ == "__main__":
    main()
