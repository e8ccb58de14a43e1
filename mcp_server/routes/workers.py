"""The fleet (DESIGN §6): ``POST /api/v1/workers/register`` and ``/api/workers…``.

Registering answers with a one-time ``viewUrl`` for the worker's token, never the token.
Revoking retires the worker (its row stays, for the record) and revokes its tokens at once.
"""

from __future__ import annotations

from pydantic import Field

from core.fleet import WorkerList, WorkerRegistration
from core.models import WireModel
from core.queue import Capability, Worker
from core.queue.models import Tags
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import QueryModel
from mcp_server.routes.tokens import NO_STORE

__all__ = ["ENDPOINTS", "WorkerQuery", "WorkerRegister", "contribute"]


class WorkerRegister(WireModel):
    """A worker to register."""

    name: str = Field(description="1-64 of a-z 0-9 . _ - ; what it heartbeats as.")
    description: str = ""
    capabilities: list[Capability] = Field(
        default_factory=list, description="What it can do, each with its risk tier: auto "
        "runs, audit runs and logs the full input/output, approve holds every job for a "
        "human, session needs one approval per worker session.")
    tags: Tags = Field(default_factory=list, description="A list or one comma string.")


class WorkerQuery(QueryModel):
    include_revoked: bool = Field(default=False, description="List revoked workers too.")


async def register_worker(call: ApiCall) -> WorkerRegistration:
    """Register a worker

    Answers with the worker and a one-time `viewUrl` showing its token (a worker token:
    it acts only as this worker on the worker protocol)."""
    spec = call.body_as(WorkerRegister)
    done = await call.engine.fleet.register(
        spec.name, spec.description, spec.capabilities, spec.tags, actor=call.principal,
        view_base_url=call.base_url())
    assert done.view_url is not None
    return WorkerRegistration(worker=done.worker, token=done.token_info,
                              view_url=done.view_url)


async def list_workers(call: ApiCall) -> WorkerList:
    """List workers

    Each with status (online, offline, paused, revoked), presence, load and 30-day
    record."""
    q = call.query_as(WorkerQuery)
    return WorkerList(workers=await call.engine.queue.workers.list(
        include_revoked=q.include_revoked))


async def get_worker(call: ApiCall) -> Worker:
    """One worker, by id (`wkr_…`) or name

    Presence, load, capabilities and 30-day record."""
    return await call.engine.queue.workers.get(call.path("id"))


async def pause_worker(call: ApiCall) -> Worker:
    """Pause a worker

    Nothing more is routed to it; its unclaimed jobs go back to the queue, claimed ones
    run on."""
    return await call.engine.queue.workers.pause(call.path("id"), actor=call.principal)


async def resume_worker(call: ApiCall) -> Worker:
    """Resume a paused worker"""
    return await call.engine.queue.workers.resume(call.path("id"), actor=call.principal)


async def revoke_worker(call: ApiCall) -> Worker:
    """Revoke a worker, for good

    Its tokens stop working at once; the jobs it held go back to the queue. The row stays
    for the record."""
    return await call.engine.fleet.revoke(call.path("id"), actor=call.principal)


_ONE = "/api/workers/{id}"

ENDPOINTS = [
    Endpoint("POST", "/api/v1/workers/register", register_worker, "admin",
             WorkerRegistration, status=201, body=WorkerRegister, headers=NO_STORE,
             errors=(409,), tag="workers"),
    Endpoint("GET", "/api/workers", list_workers, "jobs:read", WorkerList, query=WorkerQuery,
             tag="workers"),
    Endpoint("GET", _ONE, get_worker, "jobs:read", Worker, tag="workers"),
    Endpoint("POST", f"{_ONE}/pause", pause_worker, "admin", Worker, errors=(409,),
             tag="workers"),
    Endpoint("POST", f"{_ONE}/resume", resume_worker, "admin", Worker, errors=(409,),
             tag="workers"),
    Endpoint("POST", f"{_ONE}/revoke", revoke_worker, "admin", Worker, errors=(409,),
             tag="workers"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
