"""The runner's dealings with its server: reconnecting, refusals, polling, stopping."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from channel.executors import CommandExecutor
from channel.jobs import Outcome
from channel.runner import heartbeat_interval
from core.errors import Unauthorized
from tests.fakes_cli import CAT, GATED, HANG, Gate, is_running, kill_listed, make_cli, read_pids
from tests.fakes_cli import wait_dead as wait_exited
from tests.worker.conftest import (
    RecordingBackoff,
    config,
    running_worker,
    serve,
    serve_on,
    unserved_socket,
)
from tests.worker.fake_server import FakeServer


def cat(tmp_path: Path) -> CommandExecutor:
    return CommandExecutor([str(make_cli(tmp_path, "cat", CAT))], tmp_path / "work", "w1")


@pytest.mark.parametrize(("every", "timeouts", "floor", "expected"), [
    (5.0, [], 0.2, 5.0),
    (5.0, [1800.0], 0.2, 5.0),
    (5.0, [3.0, 600.0], 0.2, 1.0),
    (5.0, [0.3], 0.2, 0.2),
    (1.0, [6.0], 0.2, 1.0),
])
def test_heartbeats_come_often_enough_to_keep_short_leases(
        every: float, timeouts: list[float], floor: float, expected: float) -> None:
    assert heartbeat_interval(every, timeouts, floor) == pytest.approx(expected)


async def test_a_worker_started_before_its_server_connects_with_backoff_once_it_is_up(
        tmp_path: Path) -> None:
    sock = unserved_socket()
    url = "http://{}:{}".format(*sock.getsockname())
    server = FakeServer()
    backoff = RecordingBackoff(until=3)
    async with running_worker(url, cat(tmp_path), config(backoff=backoff)) as worker:
        with anyio.fail_after(10):
            await backoff.reached.wait()
        assert server.heartbeats == []
        job = server.assign("finally")
        async with serve_on(server.app, sock):
            await server.until(lambda: server.closed(job))
        assert worker.error is None
    assert backoff.attempts[:3] == [1, 2, 3]
    assert (job.status, job.result) == ("done", "finally")


async def test_a_result_waits_for_a_server_that_went_away_and_is_closed_once_it_is_back(
        fake: FakeServer, tmp_path: Path) -> None:
    backoff = RecordingBackoff(until=3)
    gated = make_cli(tmp_path, "gated", GATED)
    with Gate(tmp_path / "gate") as gate:
        executor = CommandExecutor([str(gated), str(gate.path), b"".hex(), b"answer".hex()],
                                   tmp_path / "work", "w1")
        job = fake.assign("q")
        async with running_worker(fake.url, executor, config(backoff=backoff)):
            await fake.until(lambda: job.status == "running")
            fake.down = True
            gate.open()
            with anyio.fail_after(10):
                await backoff.reached.wait()
            assert job.closes == 0
            fake.down = False
            await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result, job.closes) == ("done", "answer", 1)
    assert backoff.attempts[:3] == [1, 2, 3]


async def test_a_rejected_token_stops_the_worker_with_a_clear_error(
        fake: FakeServer, tmp_path: Path) -> None:
    async with running_worker(fake.url, cat(tmp_path), token="mr_wrong") as worker:
        with anyio.fail_after(10):
            await worker.finished.wait()
    assert isinstance(worker.error, Unauthorized)
    assert "token rejected" in str(worker.error)
    assert fake.url in str(worker.error)


async def test_a_server_without_long_polls_is_polled_until_a_job_comes(tmp_path: Path
                                                                       ) -> None:
    server = FakeServer(long_poll=False)
    async with serve(server.app) as url:
        server.url = url
        async with running_worker(url, cat(tmp_path)):
            await server.until(lambda: len(server.polls) >= 2)
            job = server.assign("late")
            await server.until(lambda: server.closed(job))
    assert job.result == "late"
    assert all(p["wait"] == "5" and p["status"] == "pending" for p in server.polls)


async def test_a_claim_lost_to_another_worker_is_skipped(fake: FakeServer, tmp_path: Path
                                                         ) -> None:
    taken, mine = fake.assign("taken"), fake.assign("mine")
    fake.contested.add(taken.id)
    async with running_worker(fake.url, cat(tmp_path)) as worker:
        await fake.until(lambda: fake.closed(mine))
        assert worker.error is None
    assert ("claim", taken.id) in fake.refused
    assert taken.status == "pending"
    assert mine.result == "mine"


async def test_stopping_stops_claiming_and_lets_the_running_job_finish(
        fake: FakeServer, tmp_path: Path) -> None:
    gated = make_cli(tmp_path, "gated", GATED)
    with Gate(tmp_path / "gate") as gate:
        executor = CommandExecutor([str(gated), str(gate.path), b"".hex(), b"ok".hex()],
                                   tmp_path / "work", "w1")
        running = fake.assign("first")
        async with running_worker(fake.url, executor) as worker:
            await fake.until(lambda: running.status == "running")
            worker.runner.stop()
            await fake.until(lambda: fake.heartbeats[-1]["capacity"] == 0)
            assert fake.heartbeats[-1]["status"] == "idle"
            waiting = fake.assign("second")
            gate.open()
            with anyio.fail_after(10):
                await worker.finished.wait()
            assert worker.error is None
    assert (running.status, running.result) == ("done", "ok")
    assert ("claim", waiting.id) not in fake.log
    assert fake.heartbeats[-1]["status"] == "offline"
    assert (waiting.status, waiting.assigned_to) == ("pending", "")  # released by signing off


async def test_a_job_still_running_after_the_grace_is_killed_and_left_for_the_queue(
        fake: FakeServer, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = make_cli(tmp_path, "hang", HANG)
    executor = CommandExecutor([str(hang), str(pids)], tmp_path / "work", "w1",
                               kill_grace_s=0.5)
    job = fake.assign("forever")
    try:
        async with running_worker(fake.url, executor, config(grace_s=0.3)) as worker:
            await fake.until(lambda: job.status == "running" and pids.exists())
            worker.runner.stop()
            with anyio.fail_after(10):
                await worker.finished.wait()
        assert worker.error is None
        assert (job.status, job.closes) == ("running", 0)
        for pid in read_pids(pids):
            await wait_exited(pid)
            assert not is_running(pid)
    finally:
        kill_listed(pids)


async def test_an_executor_bug_fails_the_job_and_the_worker_goes_on(fake: FakeServer) -> None:
    calls: list[int] = []

    async def flaky(job: dict[str, object], timeout_s: float) -> Outcome:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("executor bug")
        return Outcome.done("fine")

    first = fake.assign("a")
    async with running_worker(fake.url, flaky) as worker:
        await fake.until(lambda: fake.closed(first))
        second = fake.assign("b")
        await fake.until(lambda: fake.closed(second))
        assert worker.error is None
    assert first.status == "failed"
    assert "RuntimeError: executor bug" in first.result
    assert (second.status, second.result) == ("done", "fine")
