"""Where the queue meets the rest of the engine: worker identities with their tokens,
route-now dispatch (``POST /dispatch``), and the job runner behind ``fleet`` providers.

Registering a worker mints its token (``kind="worker"``, carrying the worker's id); revoking
it revokes every token of that worker at once, while the worker row stays for the record.

Two "no worker" policies, on purpose:

- :meth:`FleetService.dispatch` routes *now*: if no worker is eligible at this instant (busy
  ones included), the job is cancelled — not left to run later behind the caller's back —
  and NO_WORKER is raised naming it. A job held for approval is routed (to a human) and
  returned.
- :meth:`FleetService.run_job` (``fleet`` providers) waits for a result anyway, so a job
  whose only obstacle is that matching workers are busy stays queued; NO_WORKER (retriable,
  so a fallback provider may take over) only when no worker could take it at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import Field

from core.audit import AuditLog
from core.auth import TokenInfo, TokenService
from core.errors import NoWorker, ProviderError, ProviderTimeout
from core.models import Usage, WireModel
from core.principal import Principal
from core.providers import Completion, JobRequest
from core.queue import Job, JobSpec, QueueService, RouteExplanation, Worker
from core.queue.models import TERMINAL
from core.queue.router import AT_CAPACITY
from core.queue.workers import CapabilityInput
from core.views import ViewService

__all__ = [
    "Dispatched",
    "FleetService",
    "RegisteredWorker",
    "WorkerList",
    "WorkerRegistration",
]

class Dispatched(WireModel):
    """``POST /dispatch``: the job and the worker it was routed to (null while it waits
    for a human's approval)."""

    job: Job
    worker: Worker | None = None


class WorkerList(WireModel):
    """The fleet: every worker with presence, load and 30-day record."""

    workers: list[Worker]


@dataclass(frozen=True)
class RegisteredWorker:
    """A new worker and its token: either the raw ``token`` (for an owner who may see it,
    to show once) or the one-time ``view_url`` that shows it — never both."""

    worker: Worker
    token_info: TokenInfo
    token: str | None = field(default=None, repr=False)
    view_url: str | None = None


class WorkerRegistration(WireModel):
    """``POST /api/v1/workers/register``: the worker, its token's record, and the one-time
    link to the raw token (the response never carries the token itself)."""

    worker: Worker
    token: TokenInfo
    view_url: str = Field(description="GET it once (Accept: application/json for "
                                      "{token, name, kind}); later GETs are 410.")


def _reasons(exp: RouteExplanation) -> list[dict[str, Any]]:
    return [{"worker": c.worker, "reasons": c.reasons} for c in exp.candidates]


def _text(result: Any) -> str:
    if result is None:
        return ""
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _completion(job: Job, provider: str) -> Completion:
    """A finished job as a provider's answer: its result, or the failure raised."""
    worker = job.history[-1].worker if job.history else None
    if job.status == "done":
        return Completion(text=_text(job.result),
                          model=job.model or (f"worker:{worker}" if worker else None),
                          usage=Usage())
    if job.status == "cancelled":
        raise ProviderError(f"job {job.id} was cancelled: {job.error}", provider=provider,
                            retriable=False)
    verb = "failed" if job.status == "failed" else "escalated it to a human"
    raise ProviderError(f"worker '{worker}' {verb} (job {job.id}): "
                        f"{job.error or _text(job.result)}", provider=provider,
                        retriable=job.status == "failed")


class FleetService:
    """``engine.fleet``."""

    def __init__(self, queue: QueueService, tokens: TokenService, views: ViewService,
                 audit: AuditLog) -> None:
        self.queue = queue
        self.tokens = tokens
        self.views = views
        self.audit = audit

    async def register(
        self, name: str, description: str = "", capabilities: Sequence[CapabilityInput] = (),
        tags: str | Sequence[str] | None = None, *, actor: Principal,
        view_base_url: str | None = None,
    ) -> RegisteredWorker:
        """Admin: a new worker identity and a token that acts as it (no scopes: it speaks
        the worker protocol as its own worker, nothing else). With ``view_base_url`` the
        raw token is put behind a one-time view at ``<view_base_url>/view/<nonce>``;
        without, it is returned (for the owner of the home to show once)."""
        actor.require("admin")
        worker = await self.queue.workers.register(name, description, capabilities, tags,
                                                   actor=actor)
        info, raw = await self.tokens.mint(name, (), kind="worker", worker_id=worker.id)
        await self.audit.record(actor.actor, "token.create", info.id, {
            "name": info.name, "kind": info.kind, "prefix": info.prefix,
            "workerId": worker.id})
        if view_base_url is None:
            return RegisteredWorker(worker=worker, token_info=info, token=raw)
        nonce = await self.views.create(raw, name=name, kind="worker")
        return RegisteredWorker(worker=worker, token_info=info,
                                view_url=f"{view_base_url.rstrip('/')}/view/{nonce}")

    async def revoke(self, id_or_name: str, *, actor: Principal) -> Worker:
        """Admin: retire the worker (the row stays) and revoke its tokens at once."""
        actor.require("admin")
        worker = await self.queue.workers.revoke(id_or_name, actor=actor)
        for info in await self.tokens.list():
            if info.worker_id == worker.id:
                await self.tokens.revoke(info.id)
                await self.audit.record(actor.actor, "token.revoke", info.id,
                                        {"name": info.name, "workerId": worker.id})
        return worker

    async def dispatch(self, spec: JobSpec, *, actor: Principal) -> Dispatched:
        """Create a job and route it now: the job with its worker, or NO_WORKER (the job
        then ends ``cancelled``, so it cannot run later unnoticed)."""
        job = await self.queue.jobs.submit(spec, actor=actor)
        if job.assigned_to is None and job.status != "awaiting_approval":
            exp = await self.queue.explain_job(job.id)
            await self.queue.jobs.cancel(job.id, actor=actor, reason="no eligible worker")
            raise NoWorker(f"no worker is eligible for this job now (job {job.id} cancelled)",
                           details={"jobId": job.id, "candidates": _reasons(exp)})
        worker = await self.queue.workers.get(job.assigned_to) if job.assigned_to else None
        return Dispatched(job=job, worker=worker)

    async def run_job(self, request: JobRequest) -> Completion:
        """The engine's :data:`~core.providers.JobRunner`: submit, wait up to the
        provider's timeout for a worker's result, and return it as the completion text."""
        spec = JobSpec.model_validate({
            "prompt": request.prompt, "input": dict(request.input) if request.input else None,
            "tags": list(request.tags), "capability": request.capability,
            "model": request.model, "urgency": request.urgency, "effort": request.effort,
            "timeout_s": max(1, math.ceil(request.timeout_s))})
        actor = Principal(name=f"provider:{request.provider}", kind="local")
        job = await self.queue.jobs.submit(spec, actor=actor)
        try:
            await self._check_routable(job, actor, request.provider)
            done = await self.queue.jobs.wait_for(job.id, request.timeout_s)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._abandon(job.id, actor, "the dispatch ended before its result")
            raise
        if done.status not in TERMINAL and self.queue.stopping:
            await self._abandon(job.id, actor, "the server is shutting down")
            raise ProviderError(f"the server shut down before job {job.id} finished (it is "
                                f"now cancelled)", provider=request.provider, retriable=True)
        if done.status not in TERMINAL:
            await self._abandon(job.id, actor, "timed out")
            raise ProviderTimeout(f"no result for job {job.id} within {request.timeout_s:g} s "
                                  f"(it was {done.status}; now cancelled)",
                                  provider=request.provider)
        return _completion(done, request.provider)

    async def _check_routable(self, job: Job, actor: Principal, provider: str) -> None:
        if job.status != "pending" or job.assigned_to is not None:
            return
        exp = await self.queue.explain_job(job.id)
        if any(set(c.reasons) <= {AT_CAPACITY} for c in exp.candidates):
            return
        await self.queue.jobs.cancel(job.id, actor=actor, reason="no eligible worker")
        error = NoWorker(f"no worker can take this job (job {job.id} cancelled)",
                         provider=provider, details={"jobId": job.id,
                                                     "candidates": _reasons(exp)})
        error.retriable = True
        raise error

    async def _abandon(self, job_id: int, actor: Principal, reason: str) -> None:
        job = await self.queue.jobs.get(job_id)
        if job.status not in TERMINAL:
            await self.queue.jobs.cancel(job_id, actor=actor, reason=reason)
