"""The worker wire protocol (DESIGN §7), exactly as existing worker SDKs speak it: no
``/api`` prefix, snake_case bodies, an empty body meaning ``{}``, job ids as integers.

========================================  ==============================================
``PUT /presence``                         heartbeat; renews every lease the worker holds
``GET /presence``                         who is there
``GET /my-jobs?worker=N&status=pending``  the inbox; ``&wait=S`` (≤ 30 s) long-polls
``POST /jobs/{id}/claim``                 take an assigned job (409/403: skip it)
``POST /jobs/{id}/close``                 finish it; the same outcome again is a no-op
``POST /review``                          queue an item for a human
========================================  ==============================================

A worker token acts only as its own worker: naming another worker, or claiming or closing
a job that is not its own, is FORBIDDEN. Any other caller must be an admin, who may act for
any worker (``worker``/``instance`` then required). ``&wait`` is an extension: a client
that does not send it gets the immediate answer of the original protocol.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from core.clock import iso
from core.errors import Conflict, Forbidden, field_error
from core.principal import Principal
from core.queue import Job, Worker
from core.reviews import Review, ReviewSpec
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, Handler, contribution
from mcp_server.routes.jobs import MAX_WAIT_S, job_id, while_connected
from mcp_server.tools.schema import compact_schema

__all__ = [
    "ENDPOINTS",
    "PROTECTED",
    "Close",
    "Heartbeat",
    "Inbox",
    "PresenceList",
    "contribute",
    "worker_name",
]

PROTECTED = ("/presence", "/my-jobs", "/jobs", "/review")

_SNAKE_JOB: dict[str, Any] = compact_schema(Job.model_json_schema(by_alias=False,
                                                                  mode="serialization"))


class _Protocol(BaseModel):
    # Existing SDKs may send fields this server does not know; they are ignored.
    model_config = ConfigDict(extra="ignore")


class Heartbeat(_Protocol):
    """``PUT /presence``."""

    instance: str | None = Field(default=None, description="The worker's name; a worker "
                                 "token's own name if omitted.")
    status: Literal["active", "idle", "busy", "offline"] = Field(
        default="active", description="offline: sign off cleanly (unclaimed jobs go back "
                                      "to the queue at once).")
    details: dict[str, Any] | None = None
    tags: str | list[str] | None = Field(
        default=None, description="ONE comma-separated string ('code,review'), normalized "
                                  "(lowercased, trimmed, deduplicated); null keeps the tags.")
    worker_type: str | None = Field(default="silicon")
    provider: str | None = None
    capacity: int | None = Field(default=None, ge=0)


class HeartbeatAck(BaseModel):
    ok: bool = True
    instance: str
    worker_id: str | None = None
    status: str
    tags: list[str] = Field(default_factory=list)
    capacity: int | None = None
    renewed: int = Field(default=0, description="Leases renewed by this heartbeat.")
    pending: int = Field(default=0, description="Jobs waiting in its inbox.")
    new_session: bool = False
    released: list[int] = Field(default_factory=list, description="Signing off: the jobs "
                                "that went back to the queue.")


class PresenceEntry(BaseModel):
    instance: str
    worker_id: str
    status: str = Field(description="online, offline or paused.")
    presence: str | None = Field(default=None, description="From the last heartbeat.")
    last_seen: str | None = None
    tags: list[str]
    worker_type: str = "silicon"
    provider: str | None = None
    capacity: int
    running: int
    assigned: int
    details: dict[str, Any] | None = None


class PresenceList(BaseModel):
    """``GET /presence``: live workers, most recently heard from first."""

    workers: list[PresenceEntry]


class InboxQuery(_Protocol):
    worker: str | None = Field(default=None, description="A worker token's own name if "
                                                         "omitted.")
    status: Literal["pending", "running"] = Field(
        default="pending", description="pending: assigned, not yet claimed; running: the "
                                       "jobs it holds.")
    wait: float | None = Field(
        default=None, ge=0, description=f"Long-poll: answer as soon as a job is assigned, "
                                        f"or empty after this many seconds (≤ {MAX_WAIT_S:g}).")


class Inbox(BaseModel):
    """``{"jobs": [...]}``: each job in the protocol's snake_case, ``id`` an integer."""

    jobs: list[dict[str, Any]] = Field(json_schema_extra={"items": _SNAKE_JOB})


class ClaimBody(_Protocol):
    worker: str | None = Field(default=None, description="The claiming worker; a worker "
                                                         "token's own name if omitted.")


class Close(_Protocol):
    result: Any = Field(default=None, description="Any JSON; usually the output text.")
    status: Literal["done", "failed", "escalated"] = "done"
    worker: str | None = Field(default=None, description="The closing worker; a worker "
                                                         "token's own name if omitted.")


class WorkerJob(BaseModel):
    """One job in the protocol's snake_case shape."""

    model_config = ConfigDict(extra="allow", json_schema_extra=lambda s: _replace(s, _SNAKE_JOB))


class ReviewQueued(Review):
    ok: bool = True


def _replace(schema: dict[str, Any], new: dict[str, Any]) -> None:
    schema.clear()
    schema.update(new)


def worker_name(principal: Principal, named: str | None, path: str = "worker") -> str:
    """The worker a request acts as: a worker token only as itself (FORBIDDEN otherwise);
    an admin as whichever worker it names."""
    if principal.kind == "worker":
        if named is not None and named != principal.name:
            raise Forbidden(f"this token acts only as worker '{principal.name}', not "
                            f"'{named}'")
        return principal.name
    principal.require("admin")
    if not named:
        raise field_error(path, "required (only a worker token implies its own name)")
    return named


def _reader(principal: Principal, scope: str) -> None:
    if principal.kind != "worker":
        principal.require(scope)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _wire(job: Job) -> Response:
    """The job in the protocol's snake_case, serialized straight from the model."""
    return _json(job.model_dump_json(by_alias=False).encode())


async def heartbeat(call: ApiCall) -> HeartbeatAck:
    """Heartbeat (worker protocol)

    Records presence, renews the lease of every job the worker holds and routes work to
    it. `tags` is one comma-separated string, normalized server-side. `status: offline`
    signs off: the worker's unclaimed jobs go back to the queue."""
    body = call.body_as(Heartbeat)
    name = worker_name(call.principal, body.instance, "instance")
    queue = call.engine.queue
    if body.status == "offline":
        released = await queue.jobs.release(name)
        return HeartbeatAck(instance=name, status="offline", released=released)
    ack = await queue.workers.heartbeat(name, body.status, body.details, body.tags,
                                        body.provider, body.capacity)
    return HeartbeatAck.model_validate(ack)


def _entry(worker: Worker) -> PresenceEntry:
    seen = worker.presence.last_seen
    return PresenceEntry(
        instance=worker.name, worker_id=worker.id, status=worker.status,
        presence=worker.presence.status,
        last_seen=iso(seen) if seen else None,
        tags=worker.tags, provider=worker.presence.provider, capacity=worker.load.capacity,
        running=worker.load.running, assigned=worker.load.assigned,
        details=worker.presence.details)


async def presence(call: ApiCall) -> PresenceList:
    """Who is there (worker protocol)

    Live workers, most recently heard from first. For worker tokens and `jobs:read`."""
    _reader(call.principal, "jobs:read")
    return PresenceList(workers=[_entry(w) for w in await call.engine.queue.workers.presence()])


async def my_jobs(call: ApiCall) -> Response:
    """A worker's inbox (worker protocol)

    Jobs assigned to the worker and not yet claimed (`status=pending`), or those it holds
    (`status=running`). With `wait`, answers as soon as a job is assigned (or empty when
    the wait runs out) instead of at once."""
    q = call.query_as(InboxQuery)
    name = worker_name(call.principal, q.worker)
    queue = call.engine.queue
    if q.wait and q.status == "pending":
        wait = min(q.wait, MAX_WAIT_S)
        jobs = await while_connected(call.request, lambda: queue.wait_inbox(name, wait)) or []
    else:
        jobs = await queue.jobs.inbox(name, q.status)
    return _json(b'{"jobs":[' + b",".join(
        j.model_dump_json(by_alias=False).encode() for j in jobs) + b"]}")


async def claim(call: ApiCall) -> Response:
    """Claim an assigned job (worker protocol)

    200 with the job, now running under a lease of its `timeout_s` (renewed by every
    heartbeat). Any other answer means "skip it": 409 when the job has moved on (another
    worker runs it, it finished, the worker is paused), 403 when it is assigned elsewhere."""
    body = call.body_as(ClaimBody)
    name = worker_name(call.principal, body.worker)
    jobs = call.engine.queue.jobs
    number = job_id(call)
    try:
        return _wire(await jobs.claim(number, name))
    except Conflict:
        job = await jobs.get(number)
        if job.assigned_to != name and job.status in ("pending", "awaiting_approval"):
            raise Forbidden(f"job {number} is not assigned to worker '{name}'") from None
        raise


async def close(call: ApiCall) -> Response:
    """Close a claimed job (worker protocol)

    Records the result once. Closing again with the same outcome answers 200 with the job
    unchanged; a different outcome, or a close by a former holder whose lease expired, is
    409; a worker that never held the job gets 403."""
    body = call.body_as(Close)
    number = job_id(call)
    named = body.worker
    if named is None and call.principal.kind != "worker":
        named = (await call.engine.queue.jobs.get(number)).assigned_to
    name = worker_name(call.principal, named)
    return _wire(await call.engine.queue.jobs.close(number, name, body.result, body.status))


async def review(call: ApiCall) -> ReviewQueued:
    """Queue an item for a human (worker protocol)

    A draft to read, a change to approve, a question. `created_by` must be the caller
    (`worker:NAME`) when given. Admins list the queue at `GET /api/reviews`."""
    principal = call.principal
    _reader(principal, "jobs:write")
    queued = await call.engine.reviews.submit(call.body_as(ReviewSpec), actor=principal)
    return ReviewQueued(**queued.model_dump())


def _row(method: str, path: str, handler: Handler, response: type[BaseModel], *,
         body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
         errors: tuple[int, ...] = ()) -> Endpoint:
    # Every row: a token but no scope (worker tokens carry none), and "{}" for no body.
    return Endpoint(method, path, handler, None, response, body=body, query=query,
                    errors=errors, tag="worker protocol", empty_body=True, needs_token=True)


ENDPOINTS = [
    _row("PUT", "/presence", heartbeat, HeartbeatAck, body=Heartbeat, errors=(404,)),
    _row("GET", "/presence", presence, PresenceList),
    _row("GET", "/my-jobs", my_jobs, Inbox, query=InboxQuery, errors=(404,)),
    _row("POST", "/jobs/{id}/claim", claim, WorkerJob, body=ClaimBody, errors=(409,)),
    _row("POST", "/jobs/{id}/close", close, WorkerJob, body=Close, errors=(409,)),
    _row("POST", "/review", review, ReviewQueued, body=ReviewSpec),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS, protected=PROTECTED)
