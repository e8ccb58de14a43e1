"""Jobs: submission, the human controls (update, cancel, retry, approve, reject) and the
worker side (inbox, claim, close, release), plus lease expiry.

Who may touch a job: a worker claims only a job assigned to it — otherwise CONFLICT, the
"skip it" answer of the worker protocol, since between reading its inbox and claiming the
job may have been re-routed. A worker closes only the job it holds: a *former* holder (its
lease expired, or it was revoked, and the job moved on) gets CONFLICT; a worker that never
held the job gets FORBIDDEN. The HTTP edge maps a token acting for another worker's name to
403 before the queue is asked.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any

import anyio

from core.errors import Conflict, Forbidden, NotFound, field_error
from core.models import Page
from core.principal import Principal
from core.queue.allocate import Allocator, Snapshot
from core.queue.context import SYSTEM, QueueContext, job_model, worker_actor
from core.queue.models import (
    CLOSE_STATUSES,
    JOB_STATUSES,
    TERMINAL,
    Job,
    JobPatch,
    JobSpec,
    tags_field,
)
from core.queue.notify import job_key
from core.queue.router import JobView, is_online, strictest_tier
from core.queue.workers import refuse_unknown
from core.store.queue import Decision, JobRow, NewJob

__all__ = ["PRIORITY", "JobService"]

PRIORITY: dict[str, int] = {"low": 0, "normal": 1, "high": 2}
#: Jobs a human may still cancel; jobs a human may retry.
CANCELLABLE = ("awaiting_approval", "pending", "running")
RETRYABLE = ("failed", "escalated", "cancelled")
EDITABLE = ("awaiting_approval", "pending")
ERROR_SUMMARY_CHARS = 500
EXPIRE_BATCH = 500


def _target(job_id: int) -> str:
    return f"job:{job_id}"


def _summary(result: Any) -> str | None:
    if result is None:
        return None
    text = result if isinstance(result, str) else str(result)
    return text[:ERROR_SUMMARY_CHARS]


def _require_json(path: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise field_error(path, f"must be JSON ({exc})") from exc


def _claim_refusal(row: JobRow, worker: str) -> Conflict:
    if row.assigned_to != worker:
        holder = f"assigned to {row.assigned_to}" if row.assigned_to else "not assigned"
        return Conflict(f"job {row.id} is {row.status} and {holder}, not to {worker}")
    if row.status == "pending":
        return Conflict(f"worker '{worker}' may not claim now (paused or revoked)")
    return Conflict(f"job {row.id} is already {row.status}")


class JobService:
    """``queue.jobs``: everything that happens to a job."""

    def __init__(self, ctx: QueueContext, allocator: Allocator) -> None:
        self.ctx = ctx
        self.allocator = allocator

    async def _row(self, job_id: int) -> JobRow:
        row = await self.ctx.store.jobs.get(job_id)
        if row is None:
            raise NotFound(f"no job {job_id}")
        return row

    async def get(self, job_id: int) -> Job:
        return job_model(await self._row(job_id))

    async def list(
        self, *, status: str | None = None, tags: str | Sequence[str] | None = None,
        assigned_to: str | None = None, limit: int = 20, offset: int = 0,
    ) -> Page[Job]:
        """Newest first; ``tags`` (list or comma string) must all be present."""
        if status is not None and status not in JOB_STATUSES:
            raise field_error("status", f"must be one of {', '.join(JOB_STATUSES)}")
        if limit < 1 or limit > 500:
            raise field_error("limit", "must be between 1 and 500")
        if offset < 0:
            raise field_error("offset", "must be ≥ 0")
        rows, total = await self.ctx.store.jobs.page(
            limit=limit, offset=offset, status=status, tags=tags_field(tags),
            assigned_to=assigned_to)
        return Page[Job](items=[job_model(r) for r in rows], total=total, limit=limit,
                         offset=offset)

    async def submit(self, spec: JobSpec, *, actor: Principal) -> Job:
        """Queue a job and route it at once. A capability whose strictest tier is
        ``approve`` holds it in ``awaiting_approval`` instead."""
        snap = await self.allocator.snapshot()
        view = JobView(tags=tuple(spec.tags), capability=spec.capability,
                       provider=spec.provider, urgency=spec.urgency)
        choice, basis = self.allocator.choose(view, snap)
        held = choice.needs_approval
        assign_to = None if held else choice.chosen
        if spec.input is not None:
            _require_json("input", spec.input)
        # Routed as it is inserted (one transaction) — unless older jobs are waiting: then
        # it queues up behind them and the pass below serves them first.
        row = await self.ctx.store.jobs.add(NewJob(
            prompt=spec.prompt, input=spec.input, tags=view.tags,
            capability=spec.capability, provider=spec.provider, model=spec.model,
            effort=spec.effort, urgency=spec.urgency, priority=PRIORITY[spec.urgency],
            status="awaiting_approval" if held else "pending", risk_tier=choice.job.risk_tier,
            max_attempts=spec.max_attempts or self.ctx.config.max_attempts,
            timeout_s=spec.timeout_s or self.ctx.config.default_timeout_s,
            created_by=actor.actor, created_at=snap.now,
            assigned_to=choice.chosen if held else None,
        ), assign_to=assign_to)
        details: dict[str, Any] = {"tags": list(row.tags), "capability": row.capability,
                                   "risk_tier": row.risk_tier, "status": row.status}
        if row.risk_tier == "audit":
            details.update(prompt=row.prompt, input=row.input)
        await self.ctx.audit(actor.actor, "job.submit", _target(row.id), details)
        if held or (assign_to is not None and row.assigned_to == assign_to):
            await self.allocator.placed(row, choice, basis, held=held, snap=snap)
            return job_model(row)
        # Behind a backlog, or the chosen worker filled up meanwhile (another process), or
        # no worker could take it now: a pass routes what can go somewhere.
        placed = await self.allocator.assign_pending(snap if assign_to is None else None)
        if any(a.job_id == row.id for a in placed):
            return await self.get(row.id)
        return job_model(row)

    async def update(self, job_id: int, patch: JobPatch, *, actor: Principal) -> Job:
        """Change tags, urgency or effort — only until the job is claimed (else CONFLICT)."""
        changes: dict[str, Any] = patch.model_dump(exclude_none=True)
        if "tags" in changes:
            changes["tags"] = tuple(changes["tags"])
        if "urgency" in changes:
            changes["priority"] = PRIORITY[changes["urgency"]]
        if not changes:
            return await self.get(job_id)
        row, changed = await self.ctx.store.jobs.transition(
            job_id, expect=EDITABLE, now=self.ctx.now(), changes=changes)
        self._check(job_id, row, changed, "changed once claimed")
        await self.ctx.audit(actor.actor, "job.update", _target(job_id),
                             patch.model_dump(mode="json", exclude_none=True))
        assert row is not None
        return job_model(row)

    async def cancel(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job:
        """Stop a job that has not finished (a running one's holder can no longer close it)."""
        error = f"cancelled by {actor.actor}" + (f": {reason}" if reason else "")
        row, changed = await self.ctx.store.jobs.transition(
            job_id, expect=CANCELLABLE, now=self.ctx.now(),
            changes={"status": "cancelled", "lease_expires_at": None, "error": error},
            end_attempt=("cancelled", error))
        self._check(job_id, row, changed, "cancelled once finished")
        await self.ctx.audit(actor.actor, "job.cancel", _target(job_id), {"reason": reason})
        self.ctx.changes.notify(job_key(job_id))
        await self.allocator.assign_pending()
        return await self.get(job_id)

    async def retry(self, job_id: int, *, actor: Principal) -> Job:
        """Send a failed, escalated or cancelled job round again. Its attempt count restarts
        at 0 (max_attempts applies afresh), its result and error are cleared, and its
        history is kept — new attempts continue its numbering. It passes the same gate as
        a new job: an ``approve``-tier job needs approval again."""
        row = await self._row(job_id)
        snap = await self.allocator.snapshot()
        tier = strictest_tier(row.capability, snap.views.values())
        status = "awaiting_approval" if tier == "approve" else "pending"
        row2, changed = await self.ctx.store.jobs.transition(
            job_id, expect=RETRYABLE, now=self.ctx.now(), reset_attempts=True, changes={
                "status": status, "assigned_to": None, "assigned_at": None,
                "lease_expires_at": None, "result": None, "error": None, "approved_by": None,
                "risk_tier": tier})
        self._check(job_id, row2, changed, "retried unless failed, escalated or cancelled")
        await self.ctx.audit(actor.actor, "job.retry", _target(job_id), {"status": status})
        if status == "pending":
            await self.allocator.assign_pending()
        return await self.get(job_id)

    async def approve(self, job_id: int, *, actor: Principal) -> Job:
        """Release a held job. For a ``session``-tier job this approves the capability for
        the proposed worker's current session: until it goes offline it needs no more."""
        self._require_human(actor)
        now = self.ctx.now()
        held = await self._row(job_id)
        row, changed = await self.ctx.store.jobs.transition(
            job_id, expect=("awaiting_approval",), now=now, changes={
                "status": "pending", "assigned_to": None, "assigned_at": None,
                "approved_by": actor.actor})
        self._check(job_id, row, changed, "approved unless awaiting approval")
        decision = Decision(job_id=job_id, decision="approved", actor=actor.actor, at=now)
        worker = held.assigned_to
        if held.risk_tier == "session" and worker is not None:
            found = await self.ctx.store.workers.by_name(worker)
            if found is not None and found.session_id is not None:
                decision = Decision(
                    job_id=job_id, decision="approved", actor=actor.actor, at=now,
                    worker_id=found.id, capability=held.capability,
                    session_id=found.session_id)
        await self.ctx.store.jobs.decide(decision)
        await self.ctx.audit(actor.actor, "job.approve", _target(job_id), {
            "risk_tier": held.risk_tier,
            "session_of": worker if decision.worker_id is not None else None})
        await self.allocator.assign_pending()
        return await self.get(job_id)

    async def reject(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job:
        """Refuse a held job: it ends ``cancelled``."""
        self._require_human(actor)
        now = self.ctx.now()
        error = f"rejected by {actor.actor}" + (f": {reason}" if reason else "")
        row, changed = await self.ctx.store.jobs.transition(
            job_id, expect=("awaiting_approval",), now=now,
            changes={"status": "cancelled", "error": error})
        self._check(job_id, row, changed, "rejected unless awaiting approval")
        await self.ctx.store.jobs.decide(
            Decision(job_id=job_id, decision="rejected", actor=actor.actor, at=now))
        await self.ctx.audit(actor.actor, "job.reject", _target(job_id), {"reason": reason})
        self.ctx.changes.notify(job_key(job_id))
        return await self.get(job_id)

    @staticmethod
    def _require_human(actor: Principal) -> None:
        if actor.kind == "worker":
            raise Forbidden("workers cannot approve or reject jobs")
        actor.require("jobs:approve")

    @staticmethod
    def _check(job_id: int, row: JobRow | None, changed: bool, what: str) -> None:
        if row is None:
            raise NotFound(f"no job {job_id}")
        if not changed:
            raise Conflict(f"job {job_id} is {row.status}; it cannot be {what}")

    async def inbox(self, worker_name: str, status: str = "pending") -> builtins.list[Job]:
        """Jobs assigned to the worker in ``status`` (default: waiting to be claimed)."""
        store = self.ctx.store
        if status != "pending":
            rows = await store.jobs.inbox(worker_name, status)
            if not rows and await store.workers.by_name(worker_name) is None:
                await refuse_unknown(self.ctx, worker_name)
            return [job_model(r) for r in rows]
        # What the worker holds unclaimed is known from memory as exactly as the worker
        # itself: a worker back for more (each long-poll starts here) usually holds none,
        # and then there is no job to read.
        worker, held = await store.workers.holding(worker_name)
        rows = await store.jobs.inbox(worker_name, status) if held.assigned else []
        if not rows and worker is None:
            await refuse_unknown(self.ctx, worker_name)
        return [job_model(r) for r in rows]

    async def claim(self, job_id: int, worker_name: str) -> Job:
        """Take an assigned job: it runs under a lease of ``timeout_s`` (renewed by every
        heartbeat). Exactly one claim wins; any other gets CONFLICT."""
        row, changed = await self.ctx.store.jobs.claim(job_id, worker_name, self.ctx.now())
        if row is None:
            raise NotFound(f"no job {job_id}")
        if not changed:
            raise _claim_refusal(row, worker_name)
        await self.ctx.audit(worker_actor(worker_name), "job.claim", _target(job_id),
                             {"attempt": row.history[-1].attempt if row.history else None})
        return job_model(row)

    async def close(self, job_id: int, worker_name: str, result: Any, status: str = "done"
                    ) -> Job:
        """Finish a claimed job with ``result``. Closing again with the same outcome returns
        the job unchanged; a different outcome is CONFLICT. The result is recorded once."""
        if status not in CLOSE_STATUSES:
            raise field_error("status", "must be done, failed or escalated")
        error = None if status == "done" else _summary(result)
        try:
            row, changed = await self.ctx.store.jobs.close(
                job_id, worker_name, status, result, error, self.ctx.now())
        except (TypeError, ValueError) as exc:
            raise field_error("result", f"must be JSON ({exc})") from exc
        if row is None:
            raise NotFound(f"no job {job_id}")
        if not changed:
            return self._repeat_close(row, worker_name, status)
        if status != "done":
            self.allocator.forget_stats()
        details: dict[str, Any] = {"status": status, "attempt": row.history[-1].attempt}
        if row.risk_tier == "audit":
            details.update(prompt=row.prompt, input=row.input, result=result)
        await self.ctx.audit(worker_actor(worker_name), "job.close", _target(job_id), details)
        self.ctx.changes.notify(job_key(job_id))
        await self.allocator.assign_pending()
        return job_model(row)

    @staticmethod
    def _repeat_close(row: JobRow, worker: str, status: str) -> Job:
        mine = [a for a in row.history if a.worker == worker]
        last = row.history[-1] if row.history else None
        if last is not None and last.worker == worker and row.status in TERMINAL:
            if row.status == status and last.outcome == status:
                return job_model(row)
            raise Conflict(f"job {row.id} is already closed as {row.status}")
        if mine:
            raise Conflict(f"worker '{worker}' no longer holds job {row.id} (it is now "
                           f"{row.status}); its result was not recorded")
        if row.status == "pending" and row.assigned_to == worker:
            raise Conflict(f"job {row.id} must be claimed before it is closed")
        raise Forbidden(f"job {row.id} is not assigned to worker '{worker}'")

    async def release(self, worker_name: str) -> builtins.list[int]:
        """The worker goes offline cleanly: its session ends and its unclaimed jobs go back
        to the queue and on to other workers. Returns the released job ids."""
        now = self.ctx.now()
        worker = await self.ctx.store.workers.sign_off(worker_name, now)
        if worker is None:
            await refuse_unknown(self.ctx, worker_name)
        released = await self.ctx.store.jobs.release(worker_name, now)
        await self.ctx.audit(worker_actor(worker_name), "worker.offline", worker.id,
                             {"released": released})
        await self.allocator.assign_pending()
        return released

    async def release_stale(self, snap: Snapshot) -> builtins.list[int]:
        """Unclaimed jobs of workers that went silent go back to the queue."""
        released: builtins.list[int] = []
        for name, held in snap.held.items():
            view = snap.views.get(name)
            offline = view is not None and not is_online(view, snap.now,
                                                         self.ctx.presence_window)
            if held.assigned and offline:
                ids = await self.ctx.store.jobs.release(name, snap.now)
                for job_id in ids:
                    await self.ctx.audit(SYSTEM, "job.release", _target(job_id),
                                         {"worker": name, "reason": "offline"})
                released.extend(ids)
        return released

    async def expire_leases(self) -> int:
        """Running jobs whose lease passed go back to ``pending`` (the attempt recorded as
        lost) and are routed again — or end ``failed`` once their attempts are used up."""
        now = self.ctx.now()
        jobs = self.ctx.store.jobs
        expired = 0
        for job_id in await jobs.expired(now, EXPIRE_BATCH):
            row, changed = await jobs.requeue(job_id, now, outcome="lost",
                                              error="lease expired", only_if_expired=True)
            if not changed or row is None:
                continue
            expired += 1
            self.allocator.forget_stats()
            await self.ctx.audit(SYSTEM, "job.expire", _target(job_id), {
                "worker": row.history[-1].worker if row.history else None,
                "status": row.status, "attempts": row.attempts})
            if row.status in TERMINAL:
                self.ctx.changes.notify(job_key(job_id))
        if expired:
            await self.allocator.assign_pending()
        return expired

    async def wait_for(self, job_id: int, timeout_s: float, *, recheck_s: float = 1.0) -> Job:
        """The job once it reaches a terminal state, or as it is when ``timeout_s`` passes
        (or the server shuts down). Wakes on an in-process close at once; re-reads the store
        every ``recheck_s`` for changes made by other processes."""
        deadline = anyio.current_time() + timeout_s
        while True:
            with self.ctx.changes.watch(job_key(job_id)) as changed:
                job = await self.get(job_id)
                left = deadline - anyio.current_time()
                if job.status in TERMINAL or left <= 0 or self.ctx.stopping:
                    return job
                await changed.wait(min(recheck_s, left))

