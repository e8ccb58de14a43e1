"""``/api/tasks``: scheduled tasks and their runs.

A task is named by its id or its unique name wherever ``{id}`` appears. ``POST
/api/tasks/{id}/run`` answers 202 with ``{runId}`` at once: the run goes on in the
background; poll ``/results/{runId}``.
"""

from __future__ import annotations

from pydantic import Field

from core.models import Page, WireModel
from core.tasks.models import Run, Task, TaskPatch, TaskSpec
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import Paging, window

__all__ = ["ENDPOINTS", "RunStarted", "contribute"]


class RunStarted(WireModel):
    """A run that was started (or recorded as skipped: a run of the task was running)."""

    run_id: str = Field(description="run_<ulid>; poll GET /api/tasks/{id}/results/{runId}.")


async def list_tasks(call: ApiCall) -> Page[Task]:
    """List tasks

    Every task by name, with its next run (`nextRunAt`) and its newest run's start and
    status (`lastRunAt`, `lastStatus`)."""
    paging = call.query_as(Paging)
    items, total = window(await call.engine.tasks.list(), paging)
    return Page[Task](items=items, total=total, limit=paging.limit, offset=paging.offset)


async def create_task(call: ApiCall) -> Task:
    """Create a task

    A prompt dispatched on a cron schedule; every problem is reported at once."""
    return await call.engine.tasks.create(call.body_as(TaskSpec), principal=call.principal)


async def get_task(call: ApiCall) -> Task:
    """One task, by id or name"""
    return await call.engine.tasks.get(call.path("id"))


async def update_task(call: ApiCall) -> Task:
    """Change a task

    Only the fields given change; an explicit null clears an optional field. Takes
    effect at the next run."""
    return await call.engine.tasks.update(call.path("id"), call.body_as(TaskPatch),
                                          principal=call.principal)


async def delete_task(call: ApiCall) -> None:
    """Delete a task and all of its runs"""
    await call.engine.tasks.delete(call.path("id"), principal=call.principal)


async def run_task(call: ApiCall) -> RunStarted:
    """Run a task now

    Whatever its schedule or enabled flag say. Answers at once (202) with the run's id; the
    run continues in the background."""
    run = await call.engine.tasks.run(call.path("id"), principal=call.principal)
    return RunStarted(run_id=run.run_id)


async def list_results(call: ApiCall) -> Page[Run]:
    """A task's runs, newest first"""
    paging = call.query_as(Paging)
    return await call.engine.tasks.results(call.path("id"), limit=paging.limit,
                                           offset=paging.offset)


async def latest_result(call: ApiCall) -> Run:
    """A task's newest run (404 if it has not run yet)"""
    return await call.engine.tasks.latest(call.path("id"))


async def get_result(call: ApiCall) -> Run:
    """One run of a task"""
    return await call.engine.tasks.get_run(call.path("id"), call.path("runId"))


ENDPOINTS = [
    Endpoint("GET", "/api/tasks", list_tasks, "tasks:read", Page[Task], query=Paging,
             tag="tasks"),
    Endpoint("POST", "/api/tasks", create_task, "tasks:write", Task, status=201,
             body=TaskSpec, errors=(403, 409), tag="tasks"),
    Endpoint("GET", "/api/tasks/{id}", get_task, "tasks:read", Task, tag="tasks"),
    Endpoint("PATCH", "/api/tasks/{id}", update_task, "tasks:write", Task, body=TaskPatch,
             errors=(409,), tag="tasks"),
    Endpoint("DELETE", "/api/tasks/{id}", delete_task, "tasks:write", None, status=204,
             tag="tasks"),
    Endpoint("POST", "/api/tasks/{id}/run", run_task, "tasks:write", RunStarted, status=202,
             tag="tasks"),
    Endpoint("GET", "/api/tasks/{id}/results", list_results, "tasks:read", Page[Run],
             query=Paging, tag="tasks"),
    Endpoint("GET", "/api/tasks/{id}/results/latest", latest_result, "tasks:read", Run,
             tag="tasks"),
    Endpoint("GET", "/api/tasks/{id}/results/{runId}", get_result, "tasks:read", Run,
             tag="tasks"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
