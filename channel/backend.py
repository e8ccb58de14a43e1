"""The worker backend seam: how the channel server acts as its worker.

Two implementations of :class:`WorkerBackend`:

- :class:`QueueBackend` drives ``engine.queue`` of an engine opened in this process on the
  shared ``$MODELREINS_HOME`` (SQLite, WAL). Assignments are made by whichever process
  accepts a job, so :meth:`~core.queue.QueueService.wait_inbox` wakes on its store
  recheck rather than on an in-process event.
- :class:`HttpBackend` speaks the §7 worker protocol through
  :class:`~channel.client.WorkerClient` (remote mode, ``--url``).

Jobs cross the seam in the worker protocol's shape (snake_case dicts, ``id`` an integer)
either way, so the channel server has one code path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from channel.client import Job, WorkerClient
from core.errors import Conflict, NotFound
from core.queue import QueueService
from core.queue.models import CloseStatus

__all__ = ["HttpBackend", "PresenceStatus", "QueueBackend", "WorkerBackend"]

PresenceStatus = Literal["active", "idle", "busy"]


class WorkerBackend(Protocol):
    """One worker's side of the queue."""

    @property
    def name(self) -> str:
        """The worker's name."""
        ...

    async def heartbeat(self, status: PresenceStatus, *, tags: list[str] | None,
                        provider: str | None, capacity: int) -> None:
        """Say the worker is here (renewing the leases of the jobs it holds)."""
        ...

    async def inbox(self, wait_s: float) -> list[Job]:
        """Jobs assigned to the worker and not yet claimed; waits up to ``wait_s`` for
        one when there are none."""
        ...

    async def claim(self, job_id: int) -> Job | None:
        """The claimed job, or None when it is no longer this worker's to take."""
        ...

    async def close(self, job_id: int, result: str, status: CloseStatus) -> dict[str, Any]:
        """Record the outcome of a job the worker holds."""
        ...

    async def sign_off(self) -> None:
        """Go offline: the worker's unclaimed jobs go back to the queue."""
        ...


class QueueBackend:
    """:class:`WorkerBackend` on the queue of an engine in this process.

    ``credential_check`` runs before every heartbeat (authenticating the worker's token),
    so a token revoked while the channel runs stops it as it would over HTTP."""

    def __init__(self, queue: QueueService, name: str, *, recheck_s: float = 0.5,
                 credential_check: Callable[[], Awaitable[object]] | None = None) -> None:
        self.queue = queue
        self._name = name
        self.recheck_s = recheck_s
        self.credential_check = credential_check

    @property
    def name(self) -> str:
        return self._name

    async def heartbeat(self, status: PresenceStatus, *, tags: list[str] | None,
                        provider: str | None, capacity: int) -> None:
        if self.credential_check is not None:
            await self.credential_check()
        await self.queue.workers.heartbeat(self._name, status, tags=tags, provider=provider,
                                           capacity=capacity)

    async def inbox(self, wait_s: float) -> list[Job]:
        jobs = await self.queue.wait_inbox(self._name, wait_s, recheck_s=self.recheck_s)
        return [job.worker_wire() for job in jobs]

    async def claim(self, job_id: int) -> Job | None:
        try:
            job = await self.queue.jobs.claim(job_id, self._name)
        except (Conflict, NotFound):
            return None
        return job.worker_wire()

    async def close(self, job_id: int, result: str, status: CloseStatus) -> dict[str, Any]:
        job = await self.queue.jobs.close(job_id, self._name, result, status)
        return job.worker_wire()

    async def sign_off(self) -> None:
        await self.queue.jobs.release(self._name)


class HttpBackend:
    """:class:`WorkerBackend` over the §7 worker protocol."""

    def __init__(self, client: WorkerClient) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return self.client.name

    async def heartbeat(self, status: PresenceStatus, *, tags: list[str] | None,
                        provider: str | None, capacity: int) -> None:
        await self.client.heartbeat(status, tags=tags, provider=provider, capacity=capacity)

    async def inbox(self, wait_s: float) -> list[Job]:
        return await self.client.inbox(wait_s)

    async def claim(self, job_id: int) -> Job | None:
        return await self.client.claim(job_id)

    async def close(self, job_id: int, result: str, status: CloseStatus) -> dict[str, Any]:
        return await self.client.close(job_id, result, status)

    async def sign_off(self) -> None:
        await self.client.sign_off()
