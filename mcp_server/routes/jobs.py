"""The queue for callers and humans (DESIGN §6): ``/api/jobs…``, route-now ``POST
/dispatch`` and ``GET /dispatch/explain``.

Approving and rejecting need ``jobs:approve`` and a human: a worker token is refused even
if it somehow carried the scope (the queue enforces it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from core.errors import field_error
from core.fleet import Dispatched
from core.models import Page, WireModel
from core.queue import Job, JobPatch, JobSpec, RouteExplanation
from core.queue.models import JobStatus, Urgency
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import Paging, QueryModel

__all__ = [
    "ENDPOINTS",
    "MAX_WAIT_S",
    "ExplainQuery",
    "JobQuery",
    "Reason",
    "WaitQuery",
    "contribute",
    "job_id",
    "while_connected",
]

MAX_WAIT_S = 30.0
"""Longest wait one request may ask for (job results, the worker inbox)."""

T = TypeVar("T")


async def _hang_up(request: Request, scope: anyio.CancelScope) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def while_connected(request: Request, wait: Callable[[], Awaitable[T]]) -> T | None:
    """``await wait()``, or None as soon as the client hangs up: a long-poll whose caller
    is gone would otherwise hold its server task (and its watcher) to the end of its wait."""
    done: list[T] = []
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_hang_up, request, tg.cancel_scope)
        try:
            done.append(await wait())
        except Exception as exc:  # raised below, outside the task group: not as a group
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return done[0] if done else None


class JobQuery(Paging):
    status: JobStatus | None = Field(default=None, description="Only jobs in this state.")
    tags: str | None = Field(default=None, description="Comma-separated; only jobs carrying "
                                                       "all of them.")
    assigned_to: str | None = Field(default=None, description="Only this worker's jobs.")


class WaitQuery(QueryModel):
    wait: float | None = Field(default=None, ge=0, description=(
        f"Wait up to this many seconds (≤ {MAX_WAIT_S:g}) for the job to finish."))


class Reason(WireModel):
    reason: str | None = Field(default=None, max_length=2000, description="For the record.")


class ExplainQuery(BaseModel):
    """``/dispatch/explain`` speaks snake_case, like the worker protocol."""

    model_config = ConfigDict(extra="forbid")

    job_tags: str | None = Field(default=None, description="Comma-separated job tags.")
    urgency: Urgency = "normal"
    capability: str | None = None
    provider: str | None = None
    job_id: int | None = Field(default=None, ge=1, description="Explain an existing job "
                                                              "instead (others ignored).")


def job_id(call: ApiCall) -> int:
    """The ``{id}`` path parameter as the integer it must be."""
    raw = call.path("id")
    if not raw.isdigit() or int(raw) < 1:
        raise field_error("id", "a job id is a positive integer")
    return int(raw)


async def submit_job(call: ApiCall) -> Job:
    """Submit a job

    Routed at once to the best eligible worker, or held in `awaiting_approval` when its
    capability's risk tier is `approve` (or `session`, for a session not yet approved)."""
    return await call.engine.queue.jobs.submit(call.body_as(JobSpec), actor=call.principal)


async def list_jobs(call: ApiCall) -> Page[Job]:
    """List jobs, newest first

    Filter by `status`, `tags` (all must match) and `assignedTo`."""
    q = call.query_as(JobQuery)
    return await call.engine.queue.jobs.list(status=q.status, tags=q.tags,
                                             assigned_to=q.assigned_to, limit=q.limit,
                                             offset=q.offset)


async def get_job(call: ApiCall) -> Job:
    """One job

    Its state, worker, attempts with their history, result or error. With `wait`, answers
    when it finishes (or as it is when the wait runs out)."""
    wait = call.query_as(WaitQuery).wait
    jobs = call.engine.queue.jobs
    number = job_id(call)
    if wait:
        wait_s = min(wait, MAX_WAIT_S)
        waited = await while_connected(call.request, lambda: jobs.wait_for(number, wait_s))
        if waited is not None:
            return waited
    return await jobs.get(number)


async def update_job(call: ApiCall) -> Job:
    """Change a job's tags, urgency or effort

    Only until it is claimed (409 afterwards)."""
    return await call.engine.queue.jobs.update(job_id(call), call.body_as(JobPatch),
                                               actor=call.principal)


async def cancel_job(call: ApiCall) -> Job:
    """Cancel a job

    Any job not finished; a worker running it can no longer close it."""
    reason = call.body_as(Reason).reason
    return await call.engine.queue.jobs.cancel(job_id(call), actor=call.principal, reason=reason)


async def retry_job(call: ApiCall) -> Job:
    """Retry a failed, escalated or cancelled job

    Its attempts start again from 0; its history is kept."""
    return await call.engine.queue.jobs.retry(job_id(call), actor=call.principal)


async def approve_job(call: ApiCall) -> Job:
    """Approve a held job

    It is routed and runs. For a `session`-tier job this covers the worker's session."""
    return await call.engine.queue.jobs.approve(job_id(call), actor=call.principal)


async def reject_job(call: ApiCall) -> Job:
    """Reject a held job

    It ends `cancelled`, with the reason kept."""
    reason = call.body_as(Reason).reason
    return await call.engine.queue.jobs.reject(job_id(call), actor=call.principal, reason=reason)


async def dispatch_job(call: ApiCall) -> Dispatched:
    """Create a job and route it now

    200 with the job and the worker it went to (null while held for approval). When no
    worker is eligible at this moment: 503 NO_WORKER, and the job is cancelled rather than
    left to run later unnoticed (`details.jobId` names it, `details.candidates` says why
    each worker was not eligible)."""
    return await call.engine.fleet.dispatch(call.body_as(JobSpec), actor=call.principal)


async def explain(call: ApiCall) -> RouteExplanation:
    """Explain routing

    Every worker with its eligibility reasons and score breakdown (0.5·tag overlap +
    0.3·track record + 0.2·(1 − load) − penalties), eligible ones ranked first: exactly
    the numbers assignment uses."""
    q = call.query_as(ExplainQuery)
    queue = call.engine.queue
    if q.job_id is not None:
        return await queue.explain_job(q.job_id)
    return await queue.explain(q.job_tags, q.urgency, q.capability, q.provider)


_CHANGE = (409,)
_JOB = "/api/jobs/{id}"

ENDPOINTS = [
    Endpoint("POST", "/api/jobs", submit_job, "jobs:write", Job, status=201, body=JobSpec,
             tag="jobs"),
    Endpoint("GET", "/api/jobs", list_jobs, "jobs:read", Page[Job], query=JobQuery,
             tag="jobs"),
    Endpoint("GET", _JOB, get_job, "jobs:read", Job, query=WaitQuery, tag="jobs"),
    Endpoint("PATCH", _JOB, update_job, "jobs:write", Job, body=JobPatch, errors=_CHANGE,
             tag="jobs"),
    Endpoint("POST", f"{_JOB}/cancel", cancel_job, "jobs:write", Job, body=Reason,
             empty_body=True, errors=_CHANGE, tag="jobs"),
    Endpoint("POST", f"{_JOB}/retry", retry_job, "jobs:write", Job, errors=_CHANGE,
             tag="jobs"),
    Endpoint("POST", f"{_JOB}/approve", approve_job, "jobs:approve", Job, errors=_CHANGE,
             tag="jobs"),
    Endpoint("POST", f"{_JOB}/reject", reject_job, "jobs:approve", Job, body=Reason,
             empty_body=True, errors=_CHANGE, tag="jobs"),
    Endpoint("POST", "/dispatch", dispatch_job, "jobs:write", Dispatched, body=JobSpec,
             errors=(503,), tag="jobs"),
    Endpoint("GET", "/dispatch/explain", explain, "jobs:read", RouteExplanation,
             query=ExplainQuery, errors=(404,), tag="jobs"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS, protected=("/dispatch",))
