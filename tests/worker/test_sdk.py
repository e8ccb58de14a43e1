"""The Python SDK: ``Worker(name).run(handler)`` semantics over the same client."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from channel import Worker
from tests.worker.fake_server import TOKEN, FakeServer


@asynccontextmanager
async def serving(worker: Worker, handler: Callable[[dict[str, Any]], Any]
                  ) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve, handler)
        try:
            yield
        finally:
            worker.stop(force=True)


def worker_for(fake: FakeServer, **options: Any) -> Worker:
    return Worker(name="w1", url=fake.url, token=TOKEN, heartbeat_s=0.2, **options)


async def test_a_handler_return_value_closes_the_job_done(fake: FakeServer) -> None:
    def handle_job(job: dict[str, Any]) -> str:
        return f"triaged #{job['id']}: {job['prompt'].upper()}"

    job = fake.assign("refund please")
    async with serving(worker_for(fake), handle_job):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result) == ("done", f"triaged #{job.id}: REFUND PLEASE")


async def test_a_handler_exception_fails_the_job_with_the_traceback(fake: FakeServer) -> None:
    def handle_job(job: dict[str, Any]) -> str:
        raise ValueError(f"cannot parse {job['prompt']!r}")

    job = fake.assign("garbage")
    async with serving(worker_for(fake), handle_job):
        await fake.until(lambda: fake.closed(job))
        after = fake.assign("next")  # the worker survives its handler's failure
        await fake.until(lambda: fake.closed(after))
    assert job.status == "failed"
    assert job.result.startswith("Traceback (most recent call last):")
    assert "in handle_job" in job.result
    assert job.result.rstrip().endswith("ValueError: cannot parse 'garbage'")


async def test_an_async_handler_and_a_json_result(fake: FakeServer) -> None:
    async def handle_job(job: dict[str, Any]) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return {"priority": "high", "tags": job["tags"]}

    job = fake.assign("triage", tags=["email"])
    async with serving(worker_for(fake), handle_job):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result) == ("done", {"priority": "high", "tags": ["email"]})


async def test_a_sync_handler_runs_in_a_thread_while_heartbeats_go_on(fake: FakeServer) -> None:
    release = threading.Event()

    def handle_job(job: dict[str, Any]) -> str:
        release.wait(30)  # blocks its thread, not the worker
        return "unblocked"

    job = fake.assign("block")
    async with serving(worker_for(fake, tags=["Email", "triage"]), handle_job):
        await fake.until(lambda: job.status == "running")
        start = len(fake.heartbeats)
        await fake.until(lambda: len(fake.heartbeats) >= start + 3)
        release.set()
        await fake.until(lambda: fake.closed(job))
    assert job.result == "unblocked"
    assert {b["tags"] for b in fake.heartbeats if b["status"] != "offline"} == {"Email,triage"}
    assert fake.heartbeats[start]["details"] == {"mode": "sdk", "running": [job.id]}


async def test_a_handler_past_the_job_timeout_fails_it(fake: FakeServer) -> None:
    async def handle_job(job: dict[str, Any]) -> str:
        await anyio.sleep_forever()
        return "never"

    job = fake.assign("slow", timeout_s=1)
    async with serving(worker_for(fake), handle_job):
        await fake.until(lambda: fake.closed(job))
    assert job.status == "failed"
    assert job.result.startswith("timed out after 1 s")


async def test_the_server_and_tags_come_from_the_environment(
        fake: FakeServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELREINS_URL", fake.url)
    monkeypatch.setenv("MODELREINS_TOKEN", TOKEN)
    monkeypatch.setenv("MODELREINS_WORKER_TAGS", "code,review")
    worker = Worker(name="w1", heartbeat_s=0.2)
    assert (worker.url, worker.token, worker.tags) == (fake.url, TOKEN, "code,review")
    job = fake.assign("env")
    async with serving(worker, lambda job: "ok"):
        await fake.until(lambda: fake.closed(job))
    assert fake.heartbeats[0]["tags"] == "code,review"


async def test_a_stuck_sync_handler_is_abandoned_on_a_forced_stop(fake: FakeServer) -> None:
    stuck = threading.Event()

    def handle_job(job: dict[str, Any]) -> str:
        stuck.wait(60)
        return "too late"

    job = fake.assign("stuck")
    worker = worker_for(fake)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve, handle_job)
        await fake.until(lambda: job.status == "running")
        worker.stop(force=True)
    held = [t for t in threading.enumerate() if t.name == f"job-{job.id}"]
    stuck.set()
    assert [t.daemon for t in held] == [True]  # cannot keep the process alive
    assert (job.status, job.closes) == ("running", 0)  # left for the queue to retry


SERVE_WITH_RUN = """
import sys
from channel import Worker

def handle_job(job):
    if job["prompt"] == "boom":
        raise ValueError("cannot do " + job["prompt"])
    return job["prompt"][::-1]

Worker(name="w1", url=sys.argv[1], token=sys.argv[2], heartbeat_s=0.2).run(handle_job)
print("run returned", flush=True)
"""


async def test_run_serves_in_its_own_loop_until_sigterm(fake: FakeServer, home: Path) -> None:
    good, bad = fake.assign("stressed"), fake.assign("boom")
    async with await anyio.open_process([sys.executable, "-c", SERVE_WITH_RUN, fake.url, TOKEN],
                                        stderr=subprocess.DEVNULL) as process:
        await fake.until(lambda: fake.closed(good) and fake.closed(bad), timeout_s=30)
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            assert await process.wait() == 0
        assert process.stdout is not None
        said = b"".join([chunk async for chunk in process.stdout])
    assert said == b"run returned\n"  # SIGTERM ended run() instead of killing the process
    assert (good.status, good.result) == ("done", "desserts")
    assert bad.status == "failed"
    assert bad.result.rstrip().endswith("ValueError: cannot do boom")
    assert fake.heartbeats[-1]["status"] == "offline"
