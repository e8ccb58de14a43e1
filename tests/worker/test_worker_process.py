"""``modelreins worker`` as a process: signals, exit status, CLI wiring."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from mcp_server.cli import build_parser
from tests.fakes_cli import HANG, Gate, is_running, kill_listed, make_cli, read_pids, wait_dead
from tests.mcp.processes import MODELREINS
from tests.worker.fake_server import TOKEN, FakeServer

pytestmark = pytest.mark.slow

CWD_AFTER_GATE = """
import os, sys
with open(sys.argv[1], "rb") as gate:
    gate.read(2)
print(os.getcwd(), end="")
"""


@dataclass
class WorkerProcess:
    process: Process
    stderr: list[str] = field(default_factory=list)
    _grew: anyio.Event = field(default_factory=anyio.Event)

    def heard(self, text: str) -> None:
        self.stderr.append(text)
        self._grew.set()
        self._grew = anyio.Event()

    async def said(self, text: str, timeout_s: float = 15.0) -> None:
        """Wait until ``text`` appears on the worker's stderr."""
        with anyio.fail_after(timeout_s):
            while text not in self.output():
                await self._grew.wait()

    async def exit_code(self, timeout_s: float = 15.0) -> int:
        with anyio.fail_after(timeout_s):
            return await self.process.wait()

    def output(self) -> str:
        return "".join(self.stderr)


@asynccontextmanager
async def worker_process(home: Path, *args: str, env: dict[str, str] | None = None
                         ) -> AsyncIterator[WorkerProcess]:
    """``modelreins worker ARGS`` with ``home`` as its home; killed if still running after."""
    environment = {**os.environ, "MODELREINS_HOME": str(home), **(env or {})}
    async with await anyio.open_process([MODELREINS, "worker", *args], env=environment,
                                        stdout=subprocess.DEVNULL) as process:
        assert process.stderr is not None
        worker = WorkerProcess(process)
        async with anyio.create_task_group() as tg:
            async def drain() -> None:
                assert process.stderr is not None
                async for text in TextReceiveStream(process.stderr):
                    worker.heard(text)

            tg.start_soon(drain)
            try:
                yield worker
            finally:
                if process.returncode is None:
                    process.kill()
                await process.wait()


# What a fake agent saw: its arguments, its working directory and its stdin.
REPORT_ARGV_CWD_STDIN = """
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "stdin": sys.stdin.read()}))
"""


def is_dir(path: Path) -> bool:
    return path.is_dir()


def connect(fake: FakeServer) -> dict[str, str]:
    return {"MODELREINS_URL": fake.url, "MODELREINS_TOKEN": TOKEN}


async def test_sigterm_stops_claiming_lets_the_running_job_finish_and_exits_0(
        fake: FakeServer, home: Path, tmp_path: Path) -> None:
    cli = make_cli(tmp_path, "agent", CWD_AFTER_GATE)
    with Gate(tmp_path / "gate") as gate:
        first = fake.assign("one")
        async with worker_process(home, "--name", "w1", "--exec", f"{cli} {gate.path}",
                                  "--keep", "--heartbeat", "0.2", env=connect(fake)) as worker:
            await fake.until(lambda: first.status == "running", timeout_s=30)
            worker.process.send_signal(signal.SIGTERM)
            await fake.until(lambda: fake.heartbeats[-1]["capacity"] == 0)
            second = fake.assign("two")
            gate.open()
            assert await worker.exit_code() == 0, worker.output()
    assert first.status == "done"
    kept = Path(first.result)
    assert kept.parent == home / "work"
    assert is_dir(kept)  # --keep
    assert ("claim", second.id) not in fake.log
    assert fake.heartbeats[-1]["status"] == "offline"
    assert second.assigned_to == ""  # released by signing off
    assert "SIGTERM: stopping" in worker.output()
    assert f"job {first.id}: closed done" in worker.output()


async def test_a_second_signal_kills_the_running_job_and_leaves_it_for_the_queue(
        fake: FakeServer, home: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cli = make_cli(tmp_path, "hang", HANG)
    job = fake.assign("forever")
    try:
        async with worker_process(home, "--name", "w1", "--exec", f"{cli} {pids}",
                                  "--heartbeat", "0.2", env=connect(fake)) as worker:
            await fake.until(lambda: job.status == "running" and pids.exists(), timeout_s=30)
            worker.process.send_signal(signal.SIGTERM)
            await fake.until(lambda: fake.heartbeats[-1]["capacity"] == 0)
            worker.process.send_signal(signal.SIGINT)
            assert await worker.exit_code() == 0, worker.output()
        assert (job.status, job.closes) == ("running", 0)
        for pid in read_pids(pids):
            await wait_dead(pid)
            assert not is_running(pid)
        assert "interrupted by shutdown" in worker.output()
    finally:
        kill_listed(pids)


async def test_a_rejected_token_exits_1_with_one_clear_line(
        fake: FakeServer, home: Path) -> None:
    env = {"MODELREINS_URL": fake.url, "MODELREINS_TOKEN": "mr_wrong"}
    async with worker_process(home, "--name", "w1", "--exec", "cat", env=env) as worker:
        assert await worker.exit_code(30) == 1
    assert "error: UNAUTHORIZED: token rejected by" in worker.output()


async def test_without_a_server_it_says_how_to_name_one(home: Path) -> None:
    async with worker_process(home, "--name", "w1") as worker:
        assert await worker.exit_code(30) == 2
    assert "no server to work for: pass --url" in worker.output()


async def test_a_command_that_is_not_installed_is_refused_before_claiming_anything(
        fake: FakeServer, home: Path) -> None:
    job = fake.assign("x")
    async with worker_process(home, "--name", "w1", "--exec", "no-such-agent --print",
                              env=connect(fake)) as worker:
        assert await worker.exit_code(30) == 2
    assert "command not found: no-such-agent" in worker.output()
    assert (job.status, fake.heartbeats) == ("pending", [])


async def test_the_command_lines_flags_reach_the_server_and_each_job(
        fake: FakeServer, home: Path, tmp_path: Path) -> None:
    cli = make_cli(tmp_path, "agent", REPORT_ARGV_CWD_STDIN)
    workdir = tmp_path / "jobs here"
    job = fake.assign("it's $(rm -rf ~) time", worker="builder")
    async with worker_process(home, "--name", "builder", "--tags", "code,docs",
                              "--capacity", "3", "--workdir", str(workdir), "--keep",
                              "--exec", f"{cli} --model opus", "--heartbeat", "0.2",
                              env=connect(fake)) as worker:
        await fake.until(lambda: fake.closed(job), timeout_s=30)
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.exit_code() == 0, worker.output()
    first = fake.heartbeats[0]
    assert (first["instance"], first["tags"], first["capacity"]) == ("builder", "code,docs", 3)
    assert job.status == "done", job.result
    ran = json.loads(job.result)
    assert ran["argv"] == ["--model", "opus"]
    assert ran["stdin"] == "it's $(rm -rf ~) time"
    assert Path(ran["cwd"]).parent == workdir
    assert is_dir(Path(ran["cwd"]))  # --keep
    assert not is_dir(home / "work")


async def test_by_default_each_job_runs_claude_print(
        fake: FakeServer, home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make_cli(bin_dir, "claude", REPORT_ARGV_CWD_STDIN)
    job = fake.assign("summarise the diff")
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    async with worker_process(home, "--name", "w1", "--heartbeat", "0.2",
                              env={**connect(fake), "PATH": path}) as worker:
        await fake.until(lambda: fake.closed(job), timeout_s=30)
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.exit_code() == 0, worker.output()
    ran = json.loads(job.result)
    assert (ran["argv"], ran["stdin"]) == (["--print"], "summarise the diff")
    assert Path(ran["cwd"]).parent == home / "work"
    assert not is_dir(Path(ran["cwd"]))  # removed without --keep
    assert fake.heartbeats[0]["capacity"] == 1


async def test_provider_answers_jobs_from_the_local_config(
        fake: FakeServer, home: Path) -> None:
    job = fake.assign("repeat after me")
    async with worker_process(home, "--name", "w1", "--provider", "echo", "--heartbeat", "0.2",
                              env=connect(fake)) as worker:
        await fake.until(lambda: fake.closed(job), timeout_s=30)
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.exit_code() == 0, worker.output()
    assert (job.status, job.result) == ("done", "repeat after me")
    assert "with provider 'echo'" in worker.output()


def test_the_documented_defaults() -> None:
    args = build_parser().parse_args(["worker"])
    assert (args.command, args.provider, args.capacity, args.heartbeat, args.keep) == (
        "claude --print", None, 1, 5.0, False)


def test_exec_and_provider_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["worker", "--exec", "cat", "--provider", "echo"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
