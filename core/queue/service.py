"""The queue facade the engine exposes as ``engine.queue``.

``queue.workers`` (:class:`~core.queue.workers.WorkerService`) and ``queue.jobs``
(:class:`~core.queue.jobs.JobService`) hold the operations; this object adds what spans
both: routing passes and their explanation, long-poll waits, and the maintenance loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import anyio

from core.clock import Clock
from core.config import QueueConfig
from core.queue.allocate import Allocator, Assignment, explanation_model
from core.queue.context import AuditSink, QueueContext, job_model
from core.queue.jobs import JobService
from core.queue.models import Job, RouteExplanation, Urgency, tags_field
from core.queue.notify import Changes, inbox_key
from core.queue.router import JobView
from core.queue.workers import WorkerService
from core.store.base import Store
from core.store.queue import JobRow

__all__ = ["MaintenanceReport", "QueueService"]


@dataclass(frozen=True)
class MaintenanceReport:
    expired: int
    released: int
    assigned: int


class QueueService:
    """The job queue and the worker fleet."""

    def __init__(self, store: Store, clock: Clock, config: QueueConfig,
                 audit: AuditSink | None = None) -> None:
        self.ctx = QueueContext(store=store, clock=clock, config=config, audit_sink=audit)
        self.allocator = Allocator(self.ctx)
        self.workers = WorkerService(self.ctx, self.allocator)
        self.jobs = JobService(self.ctx, self.allocator)

    @property
    def changes(self) -> Changes:
        """In-process notifications (keys from :mod:`core.queue.notify`)."""
        return self.ctx.changes

    async def assign_pending(self) -> list[Assignment]:
        """Route every pending unassigned job that can go to an online worker with room;
        the assignments (and approval holds) made, each with the router's explanation."""
        return await self.allocator.assign_pending()

    async def expire_leases(self) -> int:
        """Requeue (or fail) running jobs whose lease passed; how many."""
        return await self.jobs.expire_leases()

    async def explain(
        self, job_tags: str | Sequence[str] | None = None, urgency: Urgency = "normal",
        capability: str | None = None, provider: str | None = None,
    ) -> RouteExplanation:
        """``/dispatch/explain``: where a job like this would go now, and why — computed by
        the very function assignment uses."""
        job = JobView(tags=tuple(tags_field(job_tags, "job_tags")), capability=capability,
                      provider=provider, urgency=urgency)
        return explanation_model(await self.allocator.explain(job))

    async def explain_job(self, job_id: int) -> RouteExplanation:
        """The same for an existing job."""
        job = await self.jobs.get(job_id)
        view = JobView(tags=tuple(job.tags), capability=job.capability, provider=job.provider,
                       urgency=job.urgency, risk_tier=job.risk_tier,
                       approved=job.approved_by is not None)
        return explanation_model(await self.allocator.explain(view))

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop_waiting` was called."""
        return self.ctx.stopping

    def stop_waiting(self) -> None:
        """The server is shutting down: long-polls in flight answer now with what there
        is, and later ones at once, so they do not hold up its graceful shutdown."""
        self.ctx.stopping = True
        self.changes.notify_all()

    async def wait_inbox(self, worker_name: str, timeout_s: float, *,
                         recheck_s: float = 1.0) -> list[Job]:
        """Long-poll for ``GET /my-jobs``: the worker's pending inbox as soon as it is not
        empty, or empty after ``timeout_s`` (or once :meth:`stop_waiting` is called). Wakes
        at once on an in-process assignment; re-reads the store every ``recheck_s`` for
        assignments made by other processes."""
        deadline: float | None = None
        checked = False
        while True:
            with self.changes.watch(inbox_key(worker_name)) as assigned:
                if checked:
                    rows = await self.ctx.store.jobs.inbox(worker_name, "pending")
                    jobs = [job_model(r) for r in rows]
                else:  # the first read also refuses an unknown worker
                    jobs, checked = await self.jobs.inbox(worker_name), True
                if jobs or self.ctx.stopping:
                    return jobs
                now = anyio.current_time()
                deadline = now + timeout_s if deadline is None else deadline
                if deadline <= now:
                    return jobs
                await assigned.wait(min(recheck_s, deadline - now))
                if assigned.complete and assigned.items and not self.ctx.stopping:
                    # Jobs this process just assigned, as they were committed: no need to
                    # read them back (a job that moved on since gets CONFLICT on claim,
                    # as it would after a read).
                    return [job_model(r) for r in assigned.items if isinstance(r, JobRow)]

    async def maintain(self) -> MaintenanceReport:
        """One maintenance pass: expire leases, take unclaimed jobs back from workers that
        went silent, route whatever is pending."""
        expired = await self.jobs.expire_leases()
        released = await self.jobs.release_stale(await self.allocator.snapshot())
        assigned = await self.allocator.assign_pending()
        return MaintenanceReport(expired=expired, released=len(released),
                                 assigned=len(assigned))

    async def run_maintenance(self, *, interval_s: float = 1.0) -> NoReturn:
        """Run :meth:`maintain` every ``interval_s`` until cancelled (start it in the
        engine's task group)."""
        while True:
            await self.maintain()
            await anyio.sleep(interval_s)
