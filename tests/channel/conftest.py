"""Fixtures for the channel: an engine on a real home, recruiting, in-process channel
servers with official-SDK clients, and a client extension that receives channel events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client
from mcp.client import ClientExtension
from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientRequestContext
from mcp.shared.memory import create_client_server_memory_streams
from mcp_types import ListRootsResult, Root
from pydantic import BaseModel

from channel.backend import QueueBackend
from channel.enrollment import CredentialStore, enroll
from channel.events import CHANNEL_METHOD
from channel.intake import Intake
from channel.recruit import EngineFleet, Recruitment, RecruitRequest, recruit
from channel.run import Channel
from channel.server import ChannelServer, PushPolicy
from core.engine import Engine
from core.principal import LOCAL
from core.queue import Job, JobSpec
from tests.mcp.processes import make_home

WAIT_S = 10.0
"""Bound on every wait for something the channel does in-process."""


class ChannelEvent(BaseModel):
    content: str
    meta: dict[str, str] | None = None


@dataclass
class ChannelEvents(ClientExtension):
    """A client that shows channel events: it declares ``claude/channel`` and collects
    every ``notifications/claude/channel`` it receives."""

    identifier = "claude/channel"
    received: list[ChannelEvent] = field(default_factory=list)
    _send: MemoryObjectSendStream[ChannelEvent] = field(init=False)
    _receive: MemoryObjectReceiveStream[ChannelEvent] = field(init=False)

    def __post_init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[ChannelEvent](100)

    def notifications(self) -> Sequence[NotificationBinding[Any]]:
        return [NotificationBinding(method=CHANNEL_METHOD, params_type=ChannelEvent,
                                    handler=self._on_event)]

    async def _on_event(self, event: ChannelEvent) -> None:
        self.received.append(event)
        await self._send.send(event)

    async def next(self, timeout_s: float = WAIT_S) -> ChannelEvent:
        with anyio.fail_after(timeout_s):
            return await self._receive.receive()

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    def pending(self) -> list[ChannelEvent]:
        """Events received but not yet taken with :meth:`next`, without waiting."""
        events = []
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except anyio.WouldBlock:
                return events


@pytest.fixture
def mrhome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ModelReins home with two echo providers, as ``$MODELREINS_HOME``."""
    path = make_home(tmp_path / "mrhome")
    monkeypatch.setenv("MODELREINS_HOME", str(path))
    for var in ("MODELREINS_URL", "MODELREINS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
async def engine(mrhome: Path) -> AsyncIterator[Engine]:
    """The engine on :func:`mrhome` (its SQLite file, shared with channel processes)."""
    async with Engine.open(mrhome) as opened:
        yield opened


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small Python project: ``pyproject.toml`` and a package."""
    root = tmp_path / "Shop API"
    (root / "shop").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'shop'\n", encoding="utf-8")
    (root / "shop" / "__init__.py").write_text("", encoding="utf-8")
    return root


def fleet_of(engine: Engine) -> EngineFleet:
    return EngineFleet(engine.queue, engine.tokens, engine.views, engine.audit, engine.clock,
                       LOCAL)


async def recruited(engine: Engine, workspace: Path | None = None, **request: Any
                    ) -> Recruitment:
    return await recruit(fleet_of(engine), RecruitRequest(**request), root=workspace,
                         url=None, home=engine.settings.home, hostname="devbox")


def code_in(argv: list[str]) -> str:
    """The enrollment code in a printed ``modelreins channel --enroll=CODE …`` command."""
    [word] = [w for w in argv if w.startswith("--enroll=")]
    return word.removeprefix("--enroll=")


def code_of(recruitment: Recruitment) -> str:
    return code_in(recruitment.command)


async def submit(engine: Engine, prompt: str = "Say hi", **spec: Any) -> Job:
    return await engine.queue.jobs.submit(JobSpec(prompt=prompt, **spec), actor=LOCAL)


def roots_callback(*paths: Path) -> Any:
    async def list_roots(_: ClientRequestContext) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=p.as_uri()) for p in paths])  # type: ignore[arg-type]

    return list_roots


@dataclass
class InProcessChannel:
    """A channel server for one worker on the test's engine, as a client sees it."""

    server: ChannelServer
    worker: str
    token: str


@asynccontextmanager
async def channel_streams(server: ChannelServer) -> AsyncIterator[Any]:
    """Client streams of ``server``, served in-process over memory streams (as over stdio:
    the channel's own classic-era loop). Closing them is the client's EOF."""
    async with create_client_server_memory_streams() as (client_streams, server_streams), \
            anyio.create_task_group() as tg:
        tg.start_soon(server.serve, *server_streams)
        try:
            yield client_streams
        finally:
            await client_streams[1].aclose()


@asynccontextmanager
async def in_process_channel(
    engine: Engine, *, capacity: int = 1, push: PushPolicy = "auto", tags: str = "code",
    events: ChannelEvents | None = None, mode: str = "legacy", name: str = "shop-devbox",
    settle_s: float = 0.0,
) -> AsyncIterator[tuple[Client, InProcessChannel]]:
    """Recruit ``name``, enroll it, serve its channel and connect an SDK client (with the
    :class:`ChannelEvents` extension when ``events`` is given). The worker signs off when
    the client disconnects, as ``modelreins channel`` does."""
    recruitment = await recruited(engine, None, name=name, capacity=capacity)
    assert engine.settings.home is not None
    credential = await enroll(code_of(recruitment), recruitment.worker, engine.views,
                              CredentialStore(engine.settings.home))
    assert credential.worker == recruitment.worker
    backend = QueueBackend(engine.queue, recruitment.worker, recheck_s=0.05,
                           credential_check=partial(engine.tokens.authenticate,
                                                    credential.token))
    intake = Intake(backend, capacity=capacity, tags=[tags], heartbeat_s=1.0, poll_s=2.0)
    server = ChannelServer(intake, push=push, settle_s=settle_s)
    channel = Channel(server, backend)
    try:
        async with channel_streams(server) as streams, \
                Client(StreamsTransport(streams), mode=mode,
                       extensions=[events] if events is not None else None) as client:
            yield client, InProcessChannel(server, recruitment.worker, credential.token)
    finally:
        await channel.sign_off()
        if events is not None:
            events.close()


class StreamsTransport:
    """A :class:`mcp.client.Transport` over ready-made streams."""

    def __init__(self, streams: Any) -> None:
        self.streams = streams

    async def __aenter__(self) -> Any:
        return self.streams

    async def __aexit__(self, *_: object) -> None:
        return None


async def wait_status(engine: Engine, job_id: int, status: str) -> Job:
    """The job once it has ``status`` (bounded)."""
    with anyio.fail_after(WAIT_S):
        while True:
            job = await engine.queue.jobs.get(job_id)
            if job.status == status:
                return job
            await engine.queue.jobs.wait_for(job_id, 0.05)
