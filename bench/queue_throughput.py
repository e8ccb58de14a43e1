"""Queue throughput benchmark.

Part (a): in-process submit → claim → close of ``--jobs`` jobs (default 20,000) with
``--workers`` concurrent in-process workers (default 8) on a file-backed SQLite store in a
temporary directory (WAL), its background work running as the engine runs it (history and
audit rows and WAL checkpoints off the event loop). ``--producers`` callers (default one)
submit back to back while the workers long-poll their inboxes (``QueueService.wait_inbox``),
claim and close. Prints jobs/s for the whole run, from the first submit to the last close.
``--audit`` records the queue's audit trail as the engine does (four entries per job);
without it nothing is audited.

One producer is the hardest case for the group commit: each submission returns only once
committed, so one caller's jobs can never share a commit, and every job pays for at least
one. Concurrent callers (HTTP handlers, MCP sessions, scheduled tasks — how a server's
jobs arrive) share commits, and the queue's own costs show.

Part (b): the same over HTTP against ``modelreins serve`` in its own process (a fresh home,
token auth, SQLite WAL). ``--http-workers`` workers are registered over REST and take their
tokens from the one-time views; each then speaks the worker protocol (DESIGN §7) with its
own HTTP client: heartbeat, long-poll ``GET /my-jobs?wait=…``, claim, close. The clients
are :mod:`bench.fast_client` ones unless ``--client httpx``: an httpx2 client spends more
CPU per request than the server does, and the two share this machine's CPUs.
``--http-jobs`` jobs are submitted with ``POST /api/jobs`` on a fixed schedule of
``--rate`` jobs/s (open loop, as independent callers would: a server that cannot keep up
builds a backlog and its pickup latency shows it), or with ``--rate 0`` by ``--submitters``
callers back to back. Prints jobs/s (first submit to last close) and the submit-to-claim
latency (from just before the ``POST /api/jobs`` to the claim's answer) p50/p99.

    python bench/queue_throughput.py [--part a|b|both] [--jobs 20000] [--workers 8]
                                     [--capacity 4] [--dir D] [--backlog] [--audit]
                                     [--producers 1]
                                     [--http-jobs 3000] [--http-workers 8]
                                     [--rate 300] [--submitters 8]
                                     [--client fast|httpx]

Part (a) also measures a yardstick in the same run, because these machines' speed drifts
from day to day: bare SQLite with the store's journal settings, inserting, starting and
finishing each job in one transaction of its own, with no queue around it. The queue's rate
as a fraction of the yardstick's carries over from one machine to another where a bare jobs/s
figure does not; the gap is what routing, leases, attempt history, stats and the Python
around them cost per job.

``--backlog`` (part a) submits every job before the workers come online (draining a
backlog). ``--dir`` puts part (a)'s temporary directory elsewhere (e.g. ``/dev/shm`` to take
disk writes out of the picture); the default is the system temp dir.
Targets: (a) ≥ 2,000 jobs/s; (b) ≥ 300 jobs/s with p50 pickup ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import anyio.lowlevel
import httpx2
from anyio.abc import TaskGroup

from bench.common import pct
from bench.fast_client import FastClient
from bench.mcp_roundtrip import modelreins_http
from core.audit import AuditLog
from core.clock import SystemClock
from core.config import QueueConfig
from core.engine import NODELAY
from core.principal import LOCAL
from core.queue import JobSpec, QueueService
from core.store import SqliteStore, open_sqlite

TAGS = ("code", "review", "docs", "ops")


YARDSTICK_SCHEMA = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY, prompt TEXT NOT NULL, status TEXT NOT NULL,
                   worker TEXT, result TEXT);
CREATE INDEX jobs_by_worker ON jobs (worker, status);
"""


def yardstick(jobs: int, where: str | None = None) -> float:
    """Seconds bare SQLite takes (WAL, ``synchronous=NORMAL``, as the store runs it) to
    insert, start and finish ``jobs`` jobs, one transaction per job."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        conn = sqlite3.connect(Path(tmp) / "yardstick.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(YARDSTICK_SCHEMA)
            started = time.perf_counter()
            for i in range(jobs):
                conn.execute("BEGIN IMMEDIATE")
                job = conn.execute("INSERT INTO jobs (prompt, status, worker) "
                                   "VALUES (?, 'pending', ?)",
                                   (f"job {i}", f"worker-{i % 8}")).lastrowid
                conn.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (job,))
                conn.execute("UPDATE jobs SET status = 'done', result = ? WHERE id = ?",
                             (f"JOB {i}", job))
                conn.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            conn.close()


async def part_a(jobs: int, workers: int, capacity: int, where: str | None = None,
                 backlog: bool = False, audit: bool = False, producers: int = 1,
                 ) -> tuple[float, float, int]:
    """Elapsed wall seconds, CPU seconds of this process, and the jobs that ended done.
    With ``backlog`` every job is submitted before the workers come online; else by
    ``producers`` callers at once, each submitting back to back."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        store = open_sqlite(Path(tmp) / "bench.db")
        async with anyio.create_task_group() as background:
            await background.start(store.background)
            result = await _run_a(store, jobs, workers, capacity, backlog, audit, producers)
            background.cancel_scope.cancel()
        await store.close()
        return result


async def _run_a(store: SqliteStore, jobs: int, workers: int, capacity: int, backlog: bool,
                 audit: bool, producers: int) -> tuple[float, float, int]:
    clock = SystemClock()
    queue = QueueService(store, clock, QueueConfig(presence_window_s=600),
                         audit=AuditLog(store.audit, clock) if audit else None)
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

    numbers = iter(range(jobs))

    async def produce() -> None:
        for i in numbers:
            spec = JobSpec(prompt=f"job {i}", tags=[TAGS[i % len(TAGS)]])
            await queue.jobs.submit(spec, actor=LOCAL)
            await anyio.lowlevel.checkpoint()

    started, cpu_started = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        if backlog:
            await produce()
            await come_online()
        else:
            for _ in range(producers):
                tg.start_soon(produce)
        for name in names:
            tg.start_soon(work, name)
        await finished.wait()
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    done = (await queue.jobs.list(status="done", limit=1)).total
    return elapsed, cpu, done


HTTP_CONFIG = """\
server: {host: 127.0.0.1, port: 8484, auth: token}
providers:
  echo: {type: echo, default: true}
queue: {presenceWindowS: 600}
"""
HEARTBEAT_S = 10.0
LONG_POLL_S = 5.0


def _client(url: str, token: str) -> httpx2.AsyncClient:
    transport = httpx2.AsyncHTTPTransport(socket_options=NODELAY)
    return httpx2.AsyncClient(base_url=url, transport=transport, trust_env=False, timeout=60,
                              headers={"Authorization": f"Bearer {token}"})


async def _enroll(admin: httpx2.AsyncClient, name: str) -> str:
    """Register a worker over REST; its token, from the one-time view."""
    made = await admin.post("/api/v1/workers/register", json={
        "name": name, "capabilities": [{"name": "code"}], "tags": "code"})
    made.raise_for_status()
    view = await admin.get(made.json()["viewUrl"], headers={"Accept": "application/json"})
    view.raise_for_status()
    token: str = view.json()["token"]
    return token


class Caller(Protocol):
    """One worker's or caller's HTTP client: a JSON request, the status and decoded body."""

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]: ...

    async def aclose(self) -> None: ...


class HttpxCaller:
    def __init__(self, url: str, token: str) -> None:
        self.client = _client(url, token)

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=payload)
        return response.status_code, response.json() if response.content else None

    async def aclose(self) -> None:
        await self.client.aclose()


class FastCaller:
    """:class:`bench.fast_client.FastClient`: an httpx2 client costs more CPU per request
    than the server does, and on a small machine the two share the CPU."""

    def __init__(self, url: str, token: str) -> None:
        self.client = FastClient(url)
        self.headers = {"authorization": f"Bearer {token}"}
        self.json_headers = {**self.headers, "content-type": "application/json"}

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        if payload is None:
            request = self.client.encode(method, path, b"", self.headers)
        else:
            request = self.client.encode(method, path, json.dumps(payload).encode(),
                                         self.json_headers)
        status, body = await self.client.send(request)
        return status, json.loads(body) if body else None

    async def aclose(self) -> None:
        await self.client.aclose()


CALLERS: dict[str, Callable[[str, str], Caller]] = {"fast": FastCaller, "httpx": HttpxCaller}


def _ok(status: int, what: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: HTTP {status}")


async def _http_run(url: str, admin_token: str, jobs: int, workers: int, capacity: int,
                    submitters: int, rate: float = 0, client: str = "fast",
                    ) -> tuple[float, list[float], int]:
    """Elapsed seconds, submit-to-claim latencies, jobs closed. With ``rate`` (jobs/s) the
    jobs are submitted on that schedule; else by ``submitters`` callers back to back."""
    submitted: dict[int, float] = {}
    claimed: dict[int, float] = {}
    closed = 0
    finished = anyio.Event()
    async with _client(url, admin_token) as enroller:
        names = [f"worker-{i}" for i in range(workers)]
        tokens = [await _enroll(enroller, name) for name in names]
    admin = CALLERS[client](url, admin_token)
    clients = [CALLERS[client](url, t) for t in tokens]
    try:
        for i, (name, caller) in enumerate(zip(names, clients, strict=True)):
            status, _ = await caller.call("PUT", "/presence", {
                "instance": name, "status": "active", "tags": TAGS[i % len(TAGS)],
                "worker_type": "silicon", "capacity": capacity})
            _ok(status, "heartbeat")

        async def heartbeat(name: str, caller: Caller) -> None:
            while True:
                await anyio.sleep(HEARTBEAT_S)
                await caller.call("PUT", "/presence", {"instance": name, "status": "active",
                                                       "tags": None, "worker_type": "silicon"})

        async def work(name: str, caller: Caller) -> None:
            nonlocal closed
            inbox_path = "/my-jobs?" + urlencode({"worker": name, "status": "pending",
                                                  "wait": LONG_POLL_S})
            while True:
                _, inbox = await caller.call("GET", inbox_path)
                for job in inbox["jobs"]:
                    status, _ = await caller.call("POST", f"/jobs/{job['id']}/claim",
                                                  {"worker": name})
                    if status != 200:
                        continue
                    claimed[job["id"]] = time.perf_counter()
                    status, _ = await caller.call("POST", f"/jobs/{job['id']}/close", {
                        "result": job["prompt"].upper(), "status": "done"})
                    _ok(status, "close")
                    closed += 1
                    if closed == jobs:
                        finished.set()

        async def submit_one(i: int) -> None:
            t0 = time.perf_counter()
            status, job = await admin.call("POST", "/api/jobs", {
                "prompt": f"job {i}", "tags": [TAGS[i % len(TAGS)]]})
            _ok(status, "submit")
            submitted[job["id"]] = t0

        counter = iter(range(jobs))

        async def submit() -> None:
            for i in counter:
                await submit_one(i)

        async def paced(tg: TaskGroup) -> None:
            # Open loop: job i is submitted at start + i/rate whatever the server's pace,
            # as independent callers would; a server that cannot keep up builds a backlog.
            start = time.perf_counter()
            for i in range(jobs):
                await anyio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                tg.start_soon(submit_one, i)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for name, caller in zip(names, clients, strict=True):
                tg.start_soon(heartbeat, name, caller)
                tg.start_soon(work, name, caller)
            if rate:
                tg.start_soon(paced, tg)
            else:
                for _ in range(submitters):
                    tg.start_soon(submit)
            await finished.wait()
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
    finally:
        for caller in (admin, *clients):
            await caller.aclose()
    pickups = [claimed[i] - submitted[i] for i in claimed if i in submitted]
    return elapsed, pickups, closed


def part_b(jobs: int, workers: int, capacity: int, submitters: int, rate: float,
           client: str = "fast") -> tuple[float, list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        (home / "config.yaml").write_text(HTTP_CONFIG, encoding="utf-8")
        with modelreins_http(home) as (url, headers):
            token = headers["Authorization"].removeprefix("Bearer ")
            return anyio.run(_http_run, url, token, jobs, workers, capacity, submitters, rate,
                             client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=4, help="jobs in hand per worker")
    parser.add_argument("--dir", default=None, help="where the temporary directory goes")
    parser.add_argument("--backlog", action="store_true",
                        help="submit every job before the workers come online")
    parser.add_argument("--audit", action="store_true",
                        help="part a: record the queue's audit trail, as the engine does")
    parser.add_argument("--producers", type=int, default=1,
                        help="part a: concurrent in-process submitters, each submitting "
                             "back to back (default 1)")
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    parser.add_argument("--http-jobs", type=int, default=3000)
    parser.add_argument("--http-workers", type=int, default=8)
    parser.add_argument("--submitters", type=int, default=8,
                        help="concurrent POST /api/jobs callers (part b)")
    parser.add_argument("--client", choices=sorted(CALLERS), default="fast",
                        help="part b's HTTP client: bench.fast_client (default) or httpx2")
    parser.add_argument("--rate", type=float, default=300, metavar="JOBS_PER_S",
                        help="part b: submit on this schedule, open loop (default: the "
                             "target, 300); 0: --submitters callers back to back")
    args = parser.parse_args()
    if args.part in ("a", "both"):
        report_a(args)
    if args.part in ("b", "both"):
        elapsed, pickups, closed = part_b(args.http_jobs, args.http_workers, args.capacity,
                                          args.submitters, args.rate, args.client)
        load = (f"submitted at {args.rate:g} jobs/s" if args.rate
                else f"{args.submitters} submitters back to back")
        print(f"(b) HTTP ({args.client} client), modelreins serve (own process), worker "
              f"protocol: {args.http_jobs} "
              f"jobs, {args.http_workers} workers (capacity {args.capacity}), "
              f"{load}: {elapsed:.2f} s = "
              f"{args.http_jobs / elapsed:,.0f} jobs/s; submit-to-claim p50 "
              f"{pct(pickups, 50) * 1000:.1f} ms, p99 {pct(pickups, 99) * 1000:.1f} ms "
              f"[{closed} closed]")


def report_a(args: argparse.Namespace) -> None:
    bare = args.jobs / yardstick(args.jobs, args.dir)
    elapsed, cpu, done = anyio.run(part_a, args.jobs, args.workers, args.capacity, args.dir,
                                   args.backlog, args.audit, args.producers)
    # On a shared machine the wall clock includes time other processes held the CPU;
    # the CPU-time rate is what this process alone sustains.
    where = args.dir or tempfile.gettempdir()
    callers = "1 producer" if args.producers == 1 else f"{args.producers} producers"
    mode = "backlog first" if args.backlog else f"submitted while workers run ({callers})"
    if args.audit:
        mode += ", audited"
    print(f"(a) in-process, SQLite WAL file in {where}, {mode}: {args.jobs} jobs, "
          f"{args.workers} workers (capacity {args.capacity}): "
          f"{elapsed:.2f} s wall = {args.jobs / elapsed:,.0f} jobs/s; "
          f"{cpu:.2f} s CPU = {args.jobs / cpu:,.0f} jobs/s per CPU-second [{done} done]")
    print(f"    yardstick, same run: bare SQLite, one transaction per job's three row changes: "
          f"{bare:,.0f} jobs/s; the queue ran at {100 * args.jobs / elapsed / bare:.1f} % of it")


if __name__ == "__main__":
    main()
