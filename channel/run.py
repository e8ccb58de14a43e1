"""Assembling a channel process: enroll, pick the worker backend, build the server.

:func:`open_channel` is what ``modelreins channel`` runs inside. Without a URL it opens the
engine on the shared home and works on its queue in-process (:class:`QueueBackend`); with
one it talks to that server over HTTP (:class:`HttpBackend`). Either way it first turns the
enrollment code into the worker's token (:mod:`channel.enrollment`) — in-process the token
is then authenticated, so a revoked token stops the channel here as it would over HTTP —
and on the way out the worker signs off, which sends its unclaimed jobs back to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import httpx2

from channel.backend import HttpBackend, QueueBackend, WorkerBackend
from channel.client import WorkerClient
from channel.enrollment import CredentialStore, HttpExchange, enroll
from channel.intake import Intake
from channel.recruit import EngineFleet, Recruitment, RecruitRequest, recruit
from channel.server import ChannelServer, PushPolicy, Recruiter
from core.engine import Engine
from core.errors import Forbidden, ModelReinsError
from core.principal import LOCAL

__all__ = ["SIGN_OFF_TIMEOUT_S", "Channel", "ChannelOptions", "open_channel"]

SIGN_OFF_TIMEOUT_S = 5.0

log = logging.getLogger("modelreins.channel")


@dataclass(frozen=True)
class ChannelOptions:
    """``modelreins channel``'s arguments."""

    code: str
    worker: str
    home: Path
    url: str | None = None
    tags: Sequence[str] | None = None
    provider: str | None = None
    capacity: int = 1
    push: PushPolicy = "auto"


class Channel:
    """An enrolled channel: its server, and a sign-off that runs once."""

    def __init__(self, server: ChannelServer, backend: WorkerBackend,
                 engine: Engine | None = None) -> None:
        self.server = server
        self.backend = backend
        self.engine = engine
        self._signed_off = False

    async def aclose(self) -> None:
        """Close what must not be left half-written when the process ends abruptly."""
        if self.engine is not None:
            await self.engine.aclose()

    async def sign_off(self) -> None:
        """Go offline (once), shielded and bounded: it runs while the process is ending."""
        if self._signed_off:
            return
        self._signed_off = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(SIGN_OFF_TIMEOUT_S):
            try:
                await self.backend.sign_off()
            except ModelReinsError as exc:
                log.warning("sign-off failed: %s", exc)


def _engine_recruiter(engine: Engine, home: Path) -> Recruiter:
    fleet = EngineFleet(engine.queue, engine.tokens, engine.views, engine.audit,
                        engine.clock, LOCAL)

    async def recruiter(request: RecruitRequest, root: Path) -> Recruitment:
        return await recruit(fleet, request, root=root, url=None, home=home)

    return recruiter


def _server(options: ChannelOptions, backend: WorkerBackend,
            recruiter: Recruiter | None) -> ChannelServer:
    intake = Intake(backend, capacity=options.capacity, provider=options.provider,
                    tags=list(options.tags) if options.tags is not None else None)
    return ChannelServer(intake, recruiter=recruiter, push=options.push)


@asynccontextmanager
async def _in_process(options: ChannelOptions) -> AsyncIterator[Channel]:
    async with Engine.open(options.home) as engine:
        credential = await enroll(options.code, options.worker, engine.views,
                                  CredentialStore(options.home))
        principal = await engine.tokens.authenticate(credential.token)
        if principal.kind != "worker" or principal.name != options.worker:
            raise Forbidden(f"the stored token does not act as worker '{options.worker}'")
        backend = QueueBackend(engine.queue, options.worker, credential_check=partial(
            engine.tokens.authenticate, credential.token))
        channel = Channel(_server(options, backend, _engine_recruiter(engine, options.home)),
                          backend, engine)
        try:
            yield channel
        finally:
            await channel.sign_off()


@asynccontextmanager
async def _remote(options: ChannelOptions, url: str) -> AsyncIterator[Channel]:
    async with httpx2.AsyncClient(trust_env=False) as http:
        credential = await enroll(options.code, options.worker, HttpExchange(url, http),
                                  CredentialStore(options.home), url=url)
        client = WorkerClient(url, credential.token, options.worker, http=http)
        backend = HttpBackend(client)
        channel = Channel(_server(options, backend, None), backend)
        try:
            yield channel
        finally:
            await channel.sign_off()


@asynccontextmanager
async def open_channel(options: ChannelOptions) -> AsyncIterator[Channel]:
    """The enrolled channel for ``options``; signs off when the block ends."""
    opened = (_in_process(options) if options.url is None
              else _remote(options, options.url.rstrip("/")))
    async with opened as channel:
        yield channel
