"""Scheduled-task tools: ``mr_task_create``, ``mr_task_list``, ``mr_task_result``,
``mr_task_run``, ``mr_task_update``, ``mr_task_delete``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.clock import iso
from core.models import WireModel
from core.tasks.models import Run, Task, TaskPatch, TaskSpec
from mcp_server.tools.base import MAX_WAIT_S, Call, ToolGroup
from mcp_server.tools.dispatch import DEFAULT_WAIT_S

__all__ = ["TOOLS", "TaskDeleted", "TaskList"]

TOOLS = ToolGroup()

TaskRef = Annotated[str, Field(min_length=1, description="The task's id (task_…) or its name.")]
Schedule = Annotated[str, Field(
    min_length=1, description="5-field cron 'minute hour day-of-month month day-of-week' "
                              "(names, ranges, steps, lists) or @hourly, @daily, @weekly, "
                              "@monthly, @yearly; in the task's timezone.")]
TaskName = Annotated[str, Field(min_length=1, max_length=100,
                                description="A unique name; usable wherever a task id is.")]
Prompt = Annotated[str, Field(min_length=1, description="The prompt dispatched at each run.")]
Provider = Annotated[str | None, Field(description="Provider; the default provider if omitted.")]
Model = Annotated[str | None, Field(description="Model override for the task's runs.")]
Webhook = Annotated[str | None, Field(
    description="URL each run's result is POSTed to (public http/https).")]
WebhookFormat = Annotated[Literal["json", "slack"] | None, Field(
    description="Webhook body: 'json' ({task, run, text, …}) or 'slack' ({\"text\": …}).")]
Timezone = Annotated[str | None, Field(
    description="IANA timezone of the schedule, e.g. 'Europe/Berlin' (default UTC).")]
ReadFile = Annotated[str | None, Field(
    description="A file whose tail is appended to the prompt at each run (only from the "
                "directories the server's config allows).")]


class TaskList(WireModel):
    """Every scheduled task, with its next and last run."""

    tasks: list[Task]


class TaskDeleted(WireModel):
    task_id: str
    deleted: bool = True


def render_task(task: Task) -> str:
    state = "enabled" if task.enabled else "disabled"
    lines = [f"{task.name} ({task.id}): '{task.schedule}' {task.timezone}, {state}, "
             f"provider {task.provider or '(default)'}"]
    if task.next_run_at:
        lines.append(f"  next run {iso(task.next_run_at)}")
    if task.last_run_at:
        lines.append(f"  last run {iso(task.last_run_at)}: {task.last_status}")
    if task.webhook:
        lines.append(f"  webhook ({task.webhook_format}) {task.webhook}")
    lines.append(f"  prompt: {' '.join(task.prompt.split())[:120]}")
    return "\n".join(lines)


def render_tasks(listing: TaskList) -> str:
    return "\n".join(render_task(t) for t in listing.tasks) or "No scheduled tasks."


def render_run(run: Run) -> str:
    if run.status == "running":
        return (f"Run {run.run_id} of {run.task_id} is running (started "
                f"{iso(run.started_at)}). Poll it with mr_task_result(taskId="
                f'"{run.task_id}", runId="{run.run_id}").')
    if run.error is not None:
        head = f"{run.status}: {run.error.code}: {run.error.message}"
    else:
        head = run.text
    usage = run.usage
    facts = (f"[{run.status} · {run.provider or '-'} · {run.model or '-'} · "
             f"{usage.input_tokens}→{usage.output_tokens} tokens · {run.latency_ms} ms · "
             f"{run.run_id} · {run.trigger}]")
    if run.webhook is not None:
        facts += f" [webhook {run.webhook.status}]"
    return f"{head}\n\n{facts}"


def render_deleted(deleted: TaskDeleted) -> str:
    return f"Deleted task {deleted.task_id} and its runs."


@TOOLS.tool(title="Create a scheduled task", render=render_task)
async def mr_task_create(
    call: Call,
    name: TaskName,
    schedule: Schedule,
    prompt: Prompt,
    provider: Provider = None,
    model: Model = None,
    enabled: Annotated[bool, Field(description="Disabled tasks only run when asked.")] = True,
    webhook: Webhook = None,
    webhookFormat: WebhookFormat = None,
    timezone: Timezone = None,
    readFile: ReadFile = None,
) -> Task:
    """Create a task that dispatches a prompt on a cron schedule; its results are stored
    (read them with mr_task_result) and optionally POSTed to a webhook."""
    fields: dict[str, Any] = {
        "name": name, "schedule": schedule, "prompt": prompt, "provider": provider,
        "model": model, "enabled": enabled, "webhook": webhook,
        "webhookFormat": webhookFormat, "timezone": timezone,
        "context": {"readFile": readFile} if readFile is not None else None,
    }
    spec = TaskSpec.model_validate({k: v for k, v in fields.items() if v is not None})
    return await call.engine.tasks.create(spec, principal=call.principal)


@TOOLS.tool(title="List scheduled tasks", render=render_tasks, read_only=True,
            idempotent=True)
async def mr_task_list(call: Call) -> TaskList:
    """Every scheduled task with its schedule, next run, and last run's time and status."""
    return TaskList(tasks=await call.engine.tasks.list())


@TOOLS.tool(title="Read a task's result", render=render_run, read_only=True, idempotent=True)
async def mr_task_result(
    call: Call,
    taskId: TaskRef,
    runId: Annotated[str | None, Field(
        pattern=r"^run_[0-9A-Za-z]+$",
        description="One run (as returned by mr_task_run); the newest run if omitted.")] = None,
) -> Run:
    """The result of a task's run: its text, provider, usage and webhook delivery."""
    if runId is None:
        return await call.engine.tasks.latest(taskId)
    return await call.engine.tasks.get_run(taskId, runId)


@TOOLS.tool(title="Run a task now", render=render_run, open_world=True)
async def mr_task_run(
    call: Call,
    taskId: TaskRef,
    wait_s: Annotated[float, Field(
        ge=0, le=MAX_WAIT_S,
        description="Seconds to wait for the run to finish. Past it this returns the run "
                    "with status 'running'; poll with mr_task_result(taskId, runId).",
    )] = DEFAULT_WAIT_S,
) -> Run:
    """Run a task now, whatever its schedule; returns the finished run, or its runId to
    poll if it takes longer than wait_s."""
    tasks = call.engine.tasks
    run = await tasks.run(taskId, principal=call.principal)
    if run.finished:
        return run

    async def poll(seconds: float) -> Run:
        return await tasks.wait_run(run.run_id, seconds)

    return await call.wait(poll, _finished, budget_s=wait_s, label="running the task")


def _finished(run: Run) -> bool:
    return run.finished


@TOOLS.tool(title="Change a scheduled task", render=render_task, idempotent=True)
async def mr_task_update(
    call: Call,
    taskId: TaskRef,
    name: Annotated[str | None, Field(description="A new unique name.")] = None,
    schedule: Annotated[str | None, Field(description="A new cron schedule.")] = None,
    prompt: Annotated[str | None, Field(description="A new prompt.")] = None,
    provider: Annotated[str | None, Field(
        description="A new provider; null goes back to the default provider.")] = None,
    model: Annotated[str | None, Field(description="A new model; null clears it.")] = None,
    enabled: Annotated[bool | None, Field(description="Enable or disable the task.")] = None,
    webhook: Annotated[str | None, Field(
        description="A new webhook URL; null removes the webhook.")] = None,
    webhookFormat: WebhookFormat = None,
    timezone: Timezone = None,
    readFile: Annotated[str | None, Field(
        description="A new context file; null removes it.")] = None,
) -> Task:
    """Change some fields of a task; only the arguments given change (an explicit null
    clears an optional field). Takes effect at the next run."""
    given = call.provided()
    values: dict[str, Any] = {
        "name": name, "schedule": schedule, "prompt": prompt, "provider": provider,
        "model": model, "enabled": enabled, "webhook": webhook,
        "webhookFormat": webhookFormat, "timezone": timezone,
        "context": {"readFile": readFile} if readFile is not None else None,
    }
    wire = {k: v for k, v in values.items() if k in given or (k == "context" and
                                                              "readFile" in given)}
    patch = TaskPatch.model_validate(wire)
    return await call.engine.tasks.update(taskId, patch, principal=call.principal)


@TOOLS.tool(title="Delete a scheduled task", render=render_deleted, destructive=True,
            idempotent=True)
async def mr_task_delete(
    call: Call,
    taskId: TaskRef,
) -> TaskDeleted:
    """Delete a task and all of its stored runs."""
    task = await call.engine.tasks.get(taskId)
    await call.engine.tasks.delete(task.id, principal=call.principal)
    return TaskDeleted(task_id=task.id)
