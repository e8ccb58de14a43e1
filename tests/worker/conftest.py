"""Fixtures for worker tests: the fake §7 server on loopback and runners wired to it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import pytest
import uvicorn

from channel.client import WorkerClient
from channel.jobs import Executor
from channel.runner import Runner, RunnerConfig
from tests.support.loopback import bound_socket
from tests.worker.fake_server import TOKEN, FakeServer

FAST = RunnerConfig(heartbeat_s=0.2, long_poll_s=5.0, poll_interval_s=0.05, grace_s=5.0,
                    backoff=lambda attempt: 0.01 * attempt)
"""Quick cadences, so tests wait on events for fractions of a second."""


@dataclass
class RecordingBackoff:
    """A backoff policy that records each failure count it is asked about and fires
    ``reached`` once it has been asked ``until`` times."""

    until: int = 3
    delay_s: float = 0.01
    attempts: list[int] = field(default_factory=list)
    reached: anyio.Event = field(default_factory=anyio.Event)

    def __call__(self, attempt: int) -> float:
        self.attempts.append(attempt)
        if len(self.attempts) >= self.until:
            self.reached.set()
        return self.delay_s


@asynccontextmanager
async def serve_on(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """Serve ``app`` on ``sock``, a bound socket that may not be listening yet (asyncio
    starts listening on it)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield
        finally:
            server.should_exit = server.force_exit = True


def unserved_socket() -> socket.socket:
    """A bound loopback socket that is not listening: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port (no lifespan: these apps have none, and
    uvicorn logs a cancelled lifespan on forced exit); yields its base URL."""
    sock = bound_socket()
    async with serve_on(app, sock):
        yield "http://{}:{}".format(*sock.getsockname())


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    async with serve(server.app) as url:
        server.url = url
        yield server


@dataclass
class RunningWorker:
    """A runner being served in the test's task group."""

    runner: Runner
    client: WorkerClient
    finished: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None

    async def run(self) -> None:
        try:
            await self.runner.run()
        except Exception as exc:
            self.error = exc
        finally:
            self.finished.set()

    async def stopped(self, *, force: bool = False, timeout_s: float = 10.0) -> None:
        self.runner.stop(force=force)
        with anyio.fail_after(timeout_s):
            await self.finished.wait()


@asynccontextmanager
async def running_worker(url: str, executor: Executor, config: RunnerConfig = FAST, *,
                         name: str = "w1", token: str | None = TOKEN
                         ) -> AsyncIterator[RunningWorker]:
    """Serve ``executor`` as worker ``name`` until the block ends (then force a stop)."""
    async with WorkerClient(url, token, name) as client, anyio.create_task_group() as tg:
        worker = RunningWorker(Runner(client, executor, config), client)
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            worker.runner.stop(force=True)


def config(**changes: object) -> RunnerConfig:
    """:data:`FAST` with ``changes``."""
    return replace(FAST, **changes)  # type: ignore[arg-type]
