"""The worker against the real server (``mcp_server.app`` in-process): the protocol as the
server engineer built it, with real leases, maintenance and routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from channel import Worker, WorkerClient
from channel.executors import CommandExecutor
from core.errors import Forbidden
from tests.fakes_cli import FAIL, HANG, UPPER, is_running, kill_listed, make_cli, read_pids
from tests.fakes_cli import wait_dead as wait_exited
from tests.worker.conftest import config, running_worker
from tests.worker.real_server import Admin, running_server

REAL = config(long_poll_s=1.0)
"""Short long polls: the server holds an abandoned poll until its wait runs out."""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_server(tmp_path / "server-home") as admin:
        yield admin


def executor(tmp_path: Path, body: str, *args: object) -> CommandExecutor:
    cli = make_cli(tmp_path, "agent", body)
    return CommandExecutor([str(cli), *map(str, args)], tmp_path / "work", "w1")


async def test_a_job_submitted_to_the_server_is_served_by_the_worker(
        server: Admin, tmp_path: Path) -> None:
    token = await server.enroll("w1", tags="code")
    async with running_worker(server.url, executor(tmp_path, UPPER), REAL, token=token):
        job = await server.submit("make it loud", tags=["code"])
        done = await server.finished(job["id"])
    assert (done["status"], done["result"], done["assignedTo"]) == ("done", "MAKE IT LOUD",
                                                                     "w1")
    assert [(a["worker"], a["outcome"]) for a in done["history"]] == [("w1", "done")]


async def test_a_failing_command_fails_the_job_on_the_server(
        server: Admin, tmp_path: Path) -> None:
    token = await server.enroll("w1")
    async with running_worker(server.url, executor(tmp_path, FAIL), REAL, token=token):
        job = await server.submit("break")
        failed = await server.finished(job["id"])
    assert failed["status"] == "failed"
    assert failed["result"].startswith("exit code 3\n")
    assert failed["result"].endswith("boom: something broke")


async def test_a_timed_out_job_is_failed_by_its_worker_before_its_lease_lapses(
        server: Admin, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    token = await server.enroll("w1")
    try:
        async with running_worker(server.url, executor(tmp_path, HANG, pids), REAL,
                                  token=token):
            job = await server.submit("hang", timeout_s=1)
            failed = await server.finished(job["id"])
        # Failed by the worker's timeout, once — not lost to an expired lease and retried.
        assert failed["status"] == "failed"
        assert failed["result"].startswith("timed out after 1 s")
        assert [(a["worker"], a["outcome"]) for a in failed["history"]] == [("w1", "failed")]
        for pid in read_pids(pids):
            await wait_exited(pid)
            assert not is_running(pid)
    finally:
        kill_listed(pids)


async def test_the_sdk_serves_and_fails_jobs_on_the_server(server: Admin) -> None:
    token = await server.enroll("triager")

    def handle_job(job: dict[str, Any]) -> str:
        if job["prompt"] == "explode":
            raise RuntimeError("cannot triage this")
        return f"priority=high: {job['prompt']}"

    worker = Worker(name="triager", url=server.url, token=token, heartbeat_s=0.5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve, handle_job)
        good = await server.finished((await server.submit("refund"))["id"])
        bad = await server.finished((await server.submit("explode"))["id"])
        worker.stop()
    assert (good["status"], good["result"]) == ("done", "priority=high: refund")
    assert bad["status"] == "failed"
    assert "RuntimeError: cannot triage this" in bad["result"]
    assert bad["result"].startswith("Traceback (most recent call last):")


async def test_a_worker_token_cannot_serve_under_another_name(
        server: Admin, tmp_path: Path) -> None:
    token = await server.enroll("w1")
    await server.enroll("w2")
    async with running_worker(server.url, executor(tmp_path, UPPER), REAL, name="w2",
                              token=token) as worker:
        with anyio.fail_after(10):
            await worker.finished.wait()
    assert isinstance(worker.error, Forbidden)


async def test_reviews_and_artifacts_reach_the_server(server: Admin) -> None:
    token = await server.enroll("w1")
    async with WorkerClient(server.url, token, "w1") as client:
        await client.heartbeat()
        queued = await client.review(type="draft", title="Reply to #7", content="Dear…",
                                     preview="Dear", target="ticket:7")
        stored = await client.upload_artifact(b"report body", "report.txt",
                                              content_type="text/plain")
        await client.sign_off()
    assert queued["ok"] is True
    assert (stored["size_bytes"], stored["content_type"]) == (11, "text/plain")
    async with server.client() as api:
        served = await api.get(stored["url"])
    assert served.content == b"report body"
