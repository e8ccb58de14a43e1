"""The headless runner serving jobs with a spawned command (fake CLIs), against the fake
§7 server: results, failures, timeouts, output caps, isolation and capacity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channel.executors import CommandExecutor
from tests.fakes_cli import (
    CAT_TO_FILE,
    FAIL,
    FLOOD,
    GATED,
    HANG,
    LEAVE_ORPHAN,
    UPPER,
    Gate,
    is_running,
    kill_listed,
    make_cli,
    pwned_files,
    read_pids,
    wait_dead,
)
from tests.worker.conftest import config, running_worker
from tests.worker.fake_server import FakeServer

PER_JOB_LISTING = """
import json, os
print(json.dumps({"cwd": os.getcwd(), "entries": sorted(os.listdir("."))}))
with open("left-behind", "w") as f:
    f.write("x")
"""


def existing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.exists()]


def command(tmp_path: Path, body: str, *args: object, **options: object) -> CommandExecutor:
    cli = make_cli(tmp_path, "agent", body)
    return CommandExecutor([str(cli), *map(str, args)], tmp_path / "work", "w1",
                           **options)  # type: ignore[arg-type]


def gated(tmp_path: Path, gate: Gate, before: bytes = b"start ", after: bytes = b"end"
          ) -> CommandExecutor:
    return command(tmp_path, GATED, gate.path, before.hex(), after.hex())


async def test_stdout_of_a_successful_command_closes_the_job_done(
        fake: FakeServer, tmp_path: Path) -> None:
    job = fake.assign("hello, world")
    async with running_worker(fake.url, command(tmp_path, UPPER)):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result, job.closes) == ("done", "HELLO, WORLD", 1)


async def test_a_non_zero_exit_fails_the_job_with_the_exit_code_and_stderr_tail(
        fake: FakeServer, tmp_path: Path) -> None:
    job = fake.assign("do it")
    async with running_worker(fake.url, command(tmp_path, FAIL)):
        await fake.until(lambda: fake.closed(job))
    assert job.status == "failed"
    assert job.result.startswith("exit code 3\n")
    assert job.result.endswith("boom: something broke")
    assert "partial answer" not in job.result
    assert len(job.result) < 4200  # the tail of 10 KB of stderr, not all of it


async def test_a_job_past_its_timeout_is_failed_and_its_process_group_killed(
        fake: FakeServer, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    job = fake.assign("hang", timeout_s=1)
    try:
        async with running_worker(fake.url, command(tmp_path, HANG, pids)):
            await fake.until(lambda: fake.closed(job))
        assert job.status == "failed"
        assert job.result.startswith("timed out after 1 s; the command's process group was "
                                     "killed")
        child, grandchild = read_pids(pids)
        await wait_dead(child)
        await wait_dead(grandchild)
        assert not is_running(child) and not is_running(grandchild)
    finally:
        kill_listed(pids)


async def test_processes_a_finished_command_leaves_behind_are_killed(
        fake: FakeServer, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    job = fake.assign("go")
    try:
        async with running_worker(fake.url, command(tmp_path, LEAVE_ORPHAN, pids)):
            await fake.until(lambda: fake.closed(job))
        assert (job.status, job.result) == ("done", "done")
        _, orphan = read_pids(pids)
        await wait_dead(orphan)
        assert not is_running(orphan)
    finally:
        kill_listed(pids)


async def test_output_past_the_cap_is_truncated_and_the_result_says_so(
        fake: FakeServer, tmp_path: Path) -> None:
    job = fake.assign("flood")
    executor = command(tmp_path, FLOOD, 65536 * 32, max_output_bytes=1000)
    async with running_worker(fake.url, executor):
        await fake.until(lambda: fake.closed(job))
    assert job.status == "done"
    assert job.result.startswith("x" * 1000 + "\n\n[output truncated:")
    assert "more than 1000 bytes" in job.result
    assert len(job.result) < 1200


async def test_a_prompt_with_shell_metacharacters_arrives_byte_for_byte_and_runs_nothing(
        fake: FakeServer, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    prompt = (f"$(touch {tmp_path}/PWNED1) `touch {tmp_path}/PWNED2`; touch {tmp_path}/PWNED3"
              f" && echo x > {tmp_path}/PWNED4 | cat '\"\\ ${{HOME}} * ? ~ !! 日本\n\t")
    job = fake.assign(prompt)
    async with running_worker(fake.url, command(tmp_path, CAT_TO_FILE, seen, keep=True)):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result) == ("done", prompt)
    assert seen.read_bytes() == prompt.encode()
    assert pwned_files(tmp_path) == []


async def test_a_job_input_follows_the_prompt_as_json(fake: FakeServer, tmp_path: Path
                                                      ) -> None:
    seen = tmp_path / "seen"
    job = fake.assign("summarise", input={"ticket": 7})
    async with running_worker(fake.url, command(tmp_path, CAT_TO_FILE, seen)):
        await fake.until(lambda: fake.closed(job))
    assert seen.read_text() == 'summarise\n\nInput:\n{\n  "ticket": 7\n}\n'


async def test_each_job_runs_in_a_fresh_directory_removed_afterwards(
        fake: FakeServer, tmp_path: Path) -> None:
    first, second = fake.assign("one"), fake.assign("two")
    async with running_worker(fake.url, command(tmp_path, PER_JOB_LISTING)):
        await fake.until(lambda: fake.closed(first) and fake.closed(second))
    one, two = json.loads(first.result), json.loads(second.result)
    assert one["cwd"] != two["cwd"]
    assert one["entries"] == two["entries"] == []
    directories = [Path(seen["cwd"]) for seen in (one, two)]
    assert all(d.parent == tmp_path / "work" for d in directories)
    assert existing(directories) == []


async def test_keep_leaves_each_job_directory_in_place(fake: FakeServer, tmp_path: Path
                                                       ) -> None:
    first, second = fake.assign("one"), fake.assign("two")
    executor = command(tmp_path, PER_JOB_LISTING, keep=True)
    async with running_worker(fake.url, executor):
        await fake.until(lambda: fake.closed(first) and fake.closed(second))
    kept = [Path(json.loads(job.result)["cwd"]) for job in (first, second)]
    assert executor.kept == kept
    assert all((directory / "left-behind").read_text() == "x" for directory in kept)


async def test_the_job_process_does_not_get_the_worker_token(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELREINS_TOKEN", "mr_secret")
    body = ("import os\nprint(os.environ.get('MODELREINS_TOKEN'), "
            "os.environ['MODELREINS_JOB_ID'], os.environ['MODELREINS_WORKER'])")
    job = fake.assign("env")
    async with running_worker(fake.url, command(tmp_path, body)):
        await fake.until(lambda: fake.closed(job))
    assert job.result == f"None {job.id} w1\n"


async def test_a_command_that_cannot_start_fails_the_job_and_the_worker_goes_on(
        fake: FakeServer, tmp_path: Path) -> None:
    job = fake.assign("x")
    executor = CommandExecutor([str(tmp_path / "missing")], tmp_path / "work", "w1")
    async with running_worker(fake.url, executor) as worker:
        await fake.until(lambda: fake.closed(job))
        later = fake.assign("y")
        await fake.until(lambda: fake.closed(later))
        assert worker.error is None
    assert job.status == "failed"
    assert "command not found" in job.result


async def test_at_capacity_one_two_jobs_never_overlap(fake: FakeServer, tmp_path: Path
                                                      ) -> None:
    with Gate(tmp_path / "gate") as gate:
        first, second = fake.assign("one"), fake.assign("two")
        async with running_worker(fake.url, gated(tmp_path, gate)):
            await fake.until(lambda: ("claim", first.id) in fake.log)
            beats = len(fake.heartbeats)
            await fake.until(lambda: len(fake.heartbeats) >= beats + 2)
            assert second.status == "pending"
            gate.open()
            await fake.until(lambda: ("claim", second.id) in fake.log)
            gate.open()
            await fake.until(lambda: fake.closed(second))
    assert fake.log == [("claim", first.id), ("close", first.id),
                        ("claim", second.id), ("close", second.id)]
    assert first.result == second.result == "start end"


async def test_capacity_two_runs_two_jobs_at_once(fake: FakeServer, tmp_path: Path) -> None:
    with Gate(tmp_path / "gate") as gate:
        first, second = fake.assign("one"), fake.assign("two")
        async with running_worker(fake.url, gated(tmp_path, gate), config(capacity=2)):
            await fake.until(lambda: first.status == second.status == "running")
            third = fake.assign("three")
            beats = len(fake.heartbeats)
            await fake.until(lambda: len(fake.heartbeats) >= beats + 2)
            assert third.status == "pending"
            assert fake.heartbeats[-1]["status"] == "busy"
            jobs = (first, second, third)
            for done in (1, 2, 3):
                # One opening at a time: a gated fake's buffered read may take several.
                await fake.until(lambda: sum(j.status == "running" for j in jobs) >= 1)
                gate.open()
                await fake.until(lambda n=done: sum(fake.closed(j) for j in jobs) >= n)
    assert {j.status for j in (first, second, third)} == {"done"}


async def test_heartbeats_go_on_while_a_job_runs(fake: FakeServer, tmp_path: Path) -> None:
    with Gate(tmp_path / "gate") as gate:
        job = fake.assign("slow")
        async with running_worker(fake.url, gated(tmp_path, gate),
                                  config(heartbeat_s=0.05, tags="Code, review")):
            await fake.until(lambda: ("claim", job.id) in fake.log)
            start = len(fake.heartbeats)

            def busy_beats() -> int:
                return sum(1 for b in fake.heartbeats[start:]
                           if b["status"] == "busy" and b["details"]["running"] == [job.id])

            await fake.until(lambda: busy_beats() >= 3)
            assert job.status == "running"
            gate.open()
            await fake.until(lambda: fake.closed(job))
            after = len(fake.heartbeats)
            await fake.until(lambda: any(b["status"] == "active" and not b["details"]["running"]
                                         for b in fake.heartbeats[after:]))
    beat = next(b for b in fake.heartbeats[after:] if b["status"] == "active")
    assert beat == {"instance": "w1", "status": "active", "details": {"running": []},
                    "tags": "Code, review", "worker_type": "silicon", "capacity": 1}
    assert set(fake.content_types) == {"application/json"}
    assert (fake.heartbeats[-1]["instance"], fake.heartbeats[-1]["status"]) == (
        "w1", "offline")
