"""The acceptance test of the fleet's recovery: ``modelreins serve`` and two real
``modelreins worker`` processes; the worker running a job is killed with SIGKILL, its lease
lapses, and the job is served by the other worker and completed exactly once."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import anyio
import pytest

from tests.fakes_cli import Gate, make_cli
from tests.mcp.processes import make_home, serve_process
from tests.worker.real_server import Admin
from tests.worker.test_worker_process import worker_process

pytestmark = pytest.mark.slow

REPORT_THEN_GATED = """
import os, sys
with open(sys.argv[1], "w") as report:
    report.write(f"{os.getpid()} {os.getppid()}\\n")
with open(sys.argv[2], "rb") as gate:
    gate.read(2)
sys.stdout.write("answered by " + os.environ["MODELREINS_WORKER"])
"""
"""Says "<pid> <worker pid>" on the report pipe, waits for the gate, answers."""


class Reports:
    """A named pipe the fake CLIs report on, read without blocking the loop."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""

    async def next(self, timeout_s: float) -> tuple[int, int]:
        """The next ``(fake pid, worker pid)`` reported."""
        with anyio.fail_after(timeout_s):
            while b"\n" not in self._buffer:
                await anyio.wait_readable(self._fd)
                try:
                    self._buffer += os.read(self._fd, 4096)
                except BlockingIOError:
                    continue
        line, self._buffer = self._buffer.split(b"\n", 1)
        pid, parent = line.split()
        return int(pid), int(parent)

    def close(self) -> None:
        os.close(self._fd)


async def test_a_job_whose_worker_is_killed_is_completed_once_by_another_worker(
        tmp_path: Path) -> None:
    home = make_home(tmp_path / "server")
    cli = make_cli(tmp_path, "agent", REPORT_THEN_GATED)
    reports = Reports(tmp_path / "reports")
    killed: list[int] = []
    try:
        with Gate(tmp_path / "gate") as gate:
            async with serve_process(home) as served:
                assert served.token is not None
                admin = Admin(served.url, served.token)
                env = {"MODELREINS_URL": served.url}
                command = f"{cli} {reports.path} {gate.path}"
                async with (
                    worker_process(tmp_path / "home-a", "--name", "wa", "--exec", command,
                                   env={**env, "MODELREINS_TOKEN": await admin.enroll("wa")}
                                   ) as wa,
                    worker_process(tmp_path / "home-b", "--name", "wb", "--exec", command,
                                   env={**env, "MODELREINS_TOKEN": await admin.enroll("wb")}
                                   ) as wb,
                ):
                    await wa.said("worker 'wa' online", timeout_s=30)
                    await wb.said("worker 'wb' online", timeout_s=30)
                    workers = {wa.process.pid: ("wa", wa), wb.process.pid: ("wb", wb)}

                    job = await admin.submit("who answers?", timeout_s=2)
                    fake, holder = await reports.next(timeout_s=20)
                    first, _ = workers.pop(holder)
                    os.kill(holder, signal.SIGKILL)
                    os.killpg(fake, signal.SIGKILL)
                    killed += [holder, fake]

                    _, rescuer = await reports.next(timeout_s=30)
                    assert rescuer in workers
                    second, survivor = workers[rescuer]
                    gate.open()
                    done = await admin.finished(job["id"])

                    survivor.process.send_signal(signal.SIGTERM)
                    assert await survivor.exit_code() == 0, survivor.output()
                # The server would wait out the long poll the survivor abandoned (its
                # graceful shutdown, 10 s); its shutdown is not what this test is about.
                served.process.kill()
    finally:
        reports.close()
        for pid in killed:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    assert first != second
    assert (done["status"], done["result"]) == ("done", f"answered by {second}")
    assert [(a["worker"], a["outcome"]) for a in done["history"]] == [
        (first, "lost"), (second, "done")]
    assert done["attempts"] == 2
