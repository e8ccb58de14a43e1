"""The scheduler's slice of the store interface: tasks, their runs, the leader lease.

Every write that decides something is one atomic step, so several processes sharing one
database never fire a due run twice: :meth:`TaskRepo.claim` moves ``next_run_at`` only if
it still holds the expected value, :meth:`RunRepo.start` refuses a run while another of the
same task is running, and :meth:`LeaseRepo.acquire` hands the lease to one holder at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.models import ErrorInfo
from core.tasks.models import Run, RunWebhook, Task

__all__ = [
    "Busy",
    "Claimed",
    "DueTask",
    "Fire",
    "LeaseRepo",
    "LeaseState",
    "RunRepo",
    "TaskRepo",
]


@dataclass(frozen=True)
class DueTask:
    """An enabled task whose ``next_run_at`` has come."""

    id: str
    schedule: str
    timezone: str
    next_run_at: datetime


@dataclass(frozen=True)
class Fire:
    """A fire to claim: move ``task_id``'s ``next_run_at`` from ``due`` to ``next_run_at``."""

    task_id: str
    due: datetime
    next_run_at: datetime | None


@dataclass(frozen=True)
class Claimed:
    """A fire won by :meth:`TaskRepo.claim`: the task as it is now, and the providers its
    runs may use (the restriction of whoever last set it up; None means any)."""

    task: Task
    run_as: frozenset[str] | None


@dataclass(frozen=True)
class Busy:
    """:meth:`RunRepo.start` refused: this run of the same task is still running."""

    run_id: str
    started_at: datetime


@dataclass(frozen=True)
class LeaseState:
    holder: str
    expires_at: datetime


class TaskRepo(Protocol):
    async def add(self, task: Task, *, run_as: frozenset[str] | None) -> None:
        """Insert; CONFLICT (path ``name``) if the name is taken."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def by_name(self, name: str) -> Task | None: ...

    async def all(self) -> list[Task]:
        """Every task, by name."""
        ...

    async def update(
        self, task: Task, *, run_as: frozenset[str] | None, reschedule: bool
    ) -> Task | None:
        """Replace the task's fields; ``next_run_at`` only when ``reschedule`` (so an edit
        never puts back a fire the scheduler has already claimed). The task as stored, or
        None if it is gone; CONFLICT if the new name is taken."""
        ...

    async def set_enabled(
        self, task_id: str, enabled: bool, next_run_at: datetime | None, at: datetime
    ) -> Task | None: ...

    async def delete(self, task_id: str) -> bool:
        """Remove the task and its runs; False if there was no such task."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest ``next_run_at`` of any enabled task (one indexed lookup)."""
        ...

    async def due(self, now: datetime, limit: int) -> list[DueTask]:
        """Enabled tasks due at ``now``, earliest first."""
        ...

    async def claim(self, fires: Sequence[Fire]) -> list[Claimed]:
        """Atomically (all in one transaction) move each enabled task's ``next_run_at``
        from ``due`` to the next; the fires won, in order. A fire is lost when its task no
        longer holds ``due``: someone else fired it, or it was changed, disabled, deleted."""
        ...


class RunRepo(Protocol):
    async def start(self, runs: Sequence[Run], *, stale_before: datetime,
                    abandoned: ErrorInfo) -> list[Run | Busy | None]:
        """In one transaction, insert each running run unless another run of its task is
        still running (:class:`Busy`) or the task is gone (None); outcomes in order.
        Running runs started before ``stale_before`` are first closed with ``abandoned``."""
        ...

    async def add(self, run: Run) -> None:
        """Insert a finished run (a skipped one)."""
        ...

    async def finish(self, run: Run) -> None:
        """Store the outcome of a run started with :meth:`start`."""
        ...

    async def set_webhook(self, run_id: str, webhook: RunWebhook) -> None: ...

    async def get(self, run_id: str) -> Run | None: ...

    async def page(self, task_id: str, *, limit: int, offset: int) -> tuple[list[Run], int]:
        """Newest first, with the task's total count."""
        ...


class LeaseRepo(Protocol):
    async def acquire(self, name: str, holder: str, *, now: datetime, expires_at: datetime
                      ) -> LeaseState:
        """Take or renew lease ``name`` for ``holder`` until ``expires_at`` if it is free,
        expired at ``now`` or already ``holder``'s; returns who holds it afterwards."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""
        ...
