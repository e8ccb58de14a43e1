"""The channel worker's job intake: presence, claiming within capacity, completing.

:class:`Intake` holds the jobs the session has claimed and not yet completed. A job is
claimed only while that count is under the declared capacity — whether it then reaches the
session as a pushed channel event (:meth:`Intake.run`) or is pulled with ``mr_job_next``
(:meth:`Intake.next`) — and room frees when ``mr_job_complete`` closes one. Claims happen
under one lock, so push and pull together never exceed the capacity.

Heartbeats run every ``heartbeat_s`` (well inside the server's presence window) and renew
the leases of the jobs held, however long the session takes over them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import anyio

from channel.backend import PresenceStatus, WorkerBackend
from channel.backoff import Backoff
from channel.client import Job
from channel.jobs import job_id
from core.errors import Conflict, Forbidden, ModelReinsError, NotFound, Unauthorized
from core.queue.models import CloseStatus

__all__ = ["FATAL", "HEARTBEAT_S", "POLL_S", "Intake", "Push"]

HEARTBEAT_S = 10.0
POLL_S = 20.0
"""Longest wait of one inbox long-poll."""
FATAL = (Unauthorized, Forbidden, NotFound)
"""Backend errors that no retry can fix: the token or the worker is gone."""

Push = Callable[[Job], Awaitable[None]]

log = logging.getLogger("modelreins.channel")


class Intake:
    """What the session holds, and the loops that keep it fed."""

    def __init__(self, backend: WorkerBackend, *, capacity: int = 1,
                 tags: list[str] | None = None, provider: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S, poll_s: float = POLL_S,
                 backoff: Backoff | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.backend = backend
        self.capacity = capacity
        self.tags = tags
        self.provider = provider
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.held: dict[int, Job] = {}
        self._claiming = anyio.Lock()
        self._room = anyio.Event()

    @property
    def room(self) -> int:
        return self.capacity - len(self.held)

    def presence(self) -> PresenceStatus:
        if not self.held:
            return "idle"
        return "busy" if self.room <= 0 else "active"

    async def heartbeat(self) -> None:
        await self.backend.heartbeat(self.presence(), tags=self.tags, provider=self.provider,
                                     capacity=self.capacity)

    async def try_heartbeat(self) -> None:
        """A heartbeat whose transient failure is only logged (the next one retries); the
        errors in :data:`FATAL` still raise."""
        try:
            await self.heartbeat()
        except FATAL:
            raise
        except ModelReinsError as exc:
            log.warning("heartbeat failed: %s", exc)

    async def heartbeats(self) -> NoReturn:
        """Heartbeat forever; a failed beat is retried at the next one (fatal ones raise)."""
        while True:
            await anyio.sleep(self.heartbeat_s)
            await self.try_heartbeat()

    async def _take(self, job: Job) -> Job | None:
        """Claim ``job`` if there is room (caller holds the lock)."""
        if self.room <= 0:
            return None
        claimed = await self.backend.claim(job_id(job))
        if claimed is None:
            return None
        full = {**job, **claimed}
        self.held[job_id(full)] = full
        return full

    async def next(self) -> Job | None:
        """Pull: claim the next job assigned to this worker; None when none is waiting.
        CONFLICT when the session already holds as many jobs as its capacity."""
        async with self._claiming:
            if self.room <= 0:
                waiting = ", ".join(str(i) for i in sorted(self.held))
                raise Conflict(f"at capacity ({self.capacity}): complete job(s) {waiting} "
                               "with mr_job_complete first")
            for job in await self.backend.inbox(0):
                if (claimed := await self._take(job)) is not None:
                    return claimed
        return None

    async def complete(self, ident: int, result: str, status: CloseStatus) -> dict[str, Any]:
        """Close a held job; its slot frees (also when the server says it moved on)."""
        try:
            reply = await self.backend.close(ident, result, status)
        except Conflict:
            self._release(ident)
            raise
        self._release(ident)
        return reply

    def _release(self, ident: int) -> None:
        if self.held.pop(ident, None) is not None:
            self._room.set()
            self._room = anyio.Event()

    async def _wait_for_room(self) -> None:
        while self.room <= 0:
            await self._room.wait()

    async def run(self, push: Push) -> NoReturn:
        """Push mode: claim every job assigned to this worker while there is room and hand
        each to ``push``. Transient backend failures back off and retry."""
        failures = 0
        while True:
            await self._wait_for_room()
            try:
                jobs = await self.backend.inbox(self.poll_s)
                for job in jobs:
                    async with self._claiming:
                        claimed = await self._take(job)
                    if claimed is not None:
                        await push(claimed)
                        await self.try_heartbeat()
                failures = 0
            except FATAL:
                raise
            except ModelReinsError as exc:
                failures += 1
                delay = self.backoff(failures)
                log.warning("job intake failed (%s); retrying in %.1f s", exc, delay)
                await anyio.sleep(delay)
