"""Queue tools for callers: ``mr_job_submit``, ``mr_job_status``, ``mr_job_list``,
``mr_job_cancel``, ``mr_job_approve``, ``mr_workers``, ``mr_explain``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.fleet import WorkerList
from core.models import Page
from core.queue import Job, JobSpec, RouteExplanation
from core.queue.models import TERMINAL
from mcp_server.queue_text import render_explanation, render_job, render_jobs, render_workers
from mcp_server.tools.base import MAX_WAIT_S, Call, ToolGroup

__all__ = ["TOOLS"]

TOOLS = ToolGroup()

JobId = Annotated[int, Field(ge=1, description="The job's id (an integer).")]
TagsArg = Annotated[list[str] | str | None, Field(
    description="Tags: a list or one comma-separated string ('code,review').")]
UrgencyArg = Annotated[Literal["low", "normal", "high"], Field(
    description="Routing priority: more urgent jobs are assigned first.")]
WaitArg = Annotated[float, Field(
    ge=0, le=MAX_WAIT_S,
    description="Seconds to wait for the job to finish (0: return at once). Past it the "
                "job is returned as it is; poll with mr_job_status.")]


def _finished(job: Job) -> bool:
    return job.status in TERMINAL


async def _await(call: Call, job: Job, wait_s: float) -> Job:
    if wait_s <= 0 or _finished(job):
        return job
    jobs = call.engine.queue.jobs

    async def poll(seconds: float) -> Job:
        return await jobs.wait_for(job.id, seconds)

    return await call.wait(poll, _finished, budget_s=wait_s, label=f"job {job.id}")


@TOOLS.tool(title="Submit a job to the worker fleet", render=render_job)
async def mr_job_submit(
    call: Call,
    prompt: Annotated[str, Field(min_length=1, description="What the worker should do.")],
    tags: TagsArg = None,
    capability: Annotated[str | None, Field(
        description="A capability the worker must have (e.g. 'code').")] = None,
    provider: Annotated[str | None, Field(
        description="Only workers serving this provider may take it.")] = None,
    model: Annotated[str | None, Field(description="A model hint for the worker.")] = None,
    effort: Annotated[Literal["trivial", "quick", "standard", "deep", "critical"], Field(
        description="How much work it is.")] = "standard",
    urgency: UrgencyArg = "normal",
    input: Annotated[Any, Field(description="Any JSON the worker needs.")] = None,
    timeout_s: Annotated[int | None, Field(
        gt=0, description="Seconds a worker may hold it without a heartbeat (its lease); "
                          "the queue default if omitted.")] = None,
    wait_s: WaitArg = 0,
) -> Job:
    """Queue a job for the worker fleet; the scoring router assigns it to the best eligible
    worker at once (or holds it for approval when its capability's risk tier says so).
    Returns the job; with wait_s, waits that long for its result."""
    spec = JobSpec.model_validate({
        "prompt": prompt, "tags": tags, "capability": capability, "provider": provider,
        "model": model, "effort": effort, "urgency": urgency, "input": input,
        "timeout_s": timeout_s})
    job = await call.engine.queue.jobs.submit(spec, actor=call.principal)
    return await _await(call, job, wait_s)


@TOOLS.tool(title="A job's status and result", render=render_job, read_only=True,
            idempotent=True)
async def mr_job_status(call: Call, job_id: JobId, wait_s: WaitArg = 0) -> Job:
    """One job: status, assigned worker, attempts and history, result or error. With
    wait_s, waits up to that long for it to finish."""
    return await _await(call, await call.engine.queue.jobs.get(job_id), wait_s)


@TOOLS.tool(title="List jobs", render=render_jobs, read_only=True, idempotent=True)
async def mr_job_list(
    call: Call,
    status: Annotated[Literal["awaiting_approval", "pending", "running", "done", "failed",
                              "escalated", "cancelled"] | None, Field(
        description="Only jobs in this state.")] = None,
    tags: Annotated[list[str] | str | None, Field(
        description="Only jobs carrying all of these tags.")] = None,
    assigned_to: Annotated[str | None, Field(
        description="Only jobs assigned to this worker.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="How many jobs.")] = 20,
    offset: Annotated[int, Field(ge=0, description="How many of the newest to skip.")] = 0,
) -> Page[Job]:
    """Jobs, newest first, filtered by status, tags and worker."""
    return await call.engine.queue.jobs.list(status=status, tags=tags,
                                             assigned_to=assigned_to, limit=limit,
                                             offset=offset)


@TOOLS.tool(title="Cancel a job", render=render_job, destructive=True, idempotent=False)
async def mr_job_cancel(
    call: Call,
    job_id: JobId,
    reason: Annotated[str | None, Field(description="Why, for the record.")] = None,
) -> Job:
    """Cancel a job that has not finished; a worker running it can no longer close it."""
    return await call.engine.queue.jobs.cancel(job_id, actor=call.principal, reason=reason)


@TOOLS.tool(title="Approve or reject a held job", render=render_job)
async def mr_job_approve(
    call: Call,
    job_id: JobId,
    decision: Annotated[Literal["approve", "reject"], Field(
        description="approve: it is routed and runs; reject: it ends cancelled.")] = "approve",
    reason: Annotated[str | None, Field(description="Why (kept with a rejection).")] = None,
) -> Job:
    """Decide on a job held in awaiting_approval by its capability's risk tier (approve,
    or session: approving covers the worker's session)."""
    jobs = call.engine.queue.jobs
    if decision == "reject":
        return await jobs.reject(job_id, actor=call.principal, reason=reason)
    return await jobs.approve(job_id, actor=call.principal)


@TOOLS.tool(title="List the worker fleet", render=render_workers, read_only=True,
            idempotent=True)
async def mr_workers(
    call: Call,
    name: Annotated[str | None, Field(
        description="One worker by name or id (wkr_…); every worker if omitted.")] = None,
    include_revoked: Annotated[bool, Field(description="List revoked workers too.")] = False,
) -> WorkerList:
    """Registered workers: status (online, offline, paused, revoked), presence, load,
    capabilities with risk tiers, tags and 30-day record."""
    workers = call.engine.queue.workers
    if name is not None:
        return WorkerList(workers=[await workers.get(name)])
    return WorkerList(workers=await workers.list(include_revoked=include_revoked))


@TOOLS.tool(title="Explain routing", render=render_explanation, read_only=True,
            idempotent=True)
async def mr_explain(
    call: Call,
    job_tags: TagsArg = None,
    urgency: UrgencyArg = "normal",
    capability: Annotated[str | None, Field(description="Required capability.")] = None,
    provider: Annotated[str | None, Field(description="Required provider.")] = None,
    job_id: Annotated[int | None, Field(
        ge=1, description="Explain an existing job instead (other arguments ignored).")] = None,
) -> RouteExplanation:
    """Where a job would go now and why: every worker with its eligibility reasons and
    score breakdown (0.5·tag overlap + 0.3·track record + 0.2·(1 − load) − penalties) —
    the same numbers assignment uses."""
    queue = call.engine.queue
    if job_id is not None:
        return await queue.explain_job(job_id)
    return await queue.explain(job_tags, urgency, capability, provider)
