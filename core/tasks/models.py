"""Wire models of scheduled tasks and their runs (camelCase on the wire, §6 ``/api/tasks``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.models import ErrorInfo, Usage, UtcDatetime, WireModel
from core.tasks.webhooks import WebhookFormat, WebhookOutcome

__all__ = [
    "Run",
    "RunStatus",
    "RunTrigger",
    "RunWebhook",
    "Task",
    "TaskContext",
    "TaskPatch",
    "TaskSpec",
    "WebhookFormat",
]

RunTrigger = Literal["schedule", "manual", "catchup"]
RunStatus = Literal["running", "success", "error", "skipped"]


class TaskContext(WireModel):
    """Extra context appended to the prompt at each run."""

    read_file: str = Field(
        description="A file whose tail is appended to the prompt; only from tasks.readPaths."
    )


class TaskSpec(WireModel):
    """What a caller gives to create a task."""

    name: str = Field(description="Unique name; usable wherever a task id is.")
    schedule: str = Field(description="5-field cron (or @hourly, @daily, …), in `timezone`.")
    prompt: str = Field(description="The prompt dispatched at each run.")
    provider: str | None = Field(default=None, description="Provider; the default if omitted.")
    model: str | None = Field(default=None, description="Model override.")
    enabled: bool = Field(default=True, description="Disabled tasks only run when asked to.")
    webhook: str | None = Field(default=None, description="URL the result is POSTed to.")
    webhook_format: WebhookFormat = Field(default="json", description="json or slack.")
    timezone: str = Field(default="UTC", description="IANA timezone of the schedule.")
    context: TaskContext | None = None


class TaskPatch(WireModel):
    """A change to a task: only the fields given change; an explicit null clears an optional
    field (``provider``, ``model``, ``webhook``, ``context``) or resets one with a default
    (``webhookFormat`` → json, ``timezone`` → UTC)."""

    name: str | None = None
    schedule: str | None = None
    prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    enabled: bool | None = None
    webhook: str | None = None
    webhook_format: WebhookFormat | None = None
    timezone: str | None = None
    context: TaskContext | None = None


class _Identified(WireModel):
    id: str = Field(description="task_<ulid>")


class Task(TaskSpec, _Identified):
    """A stored task, as every edge shows it (``id`` first, then the creation fields)."""

    created_at: UtcDatetime
    updated_at: UtcDatetime
    next_run_at: UtcDatetime | None = Field(default=None, description="Null when disabled.")
    last_run_at: UtcDatetime | None = Field(default=None, description="Start of the newest run.")
    last_status: RunStatus | None = Field(default=None, description="Status of the newest run.")

    def spec(self) -> TaskSpec:
        """The creation fields of this task."""
        return TaskSpec.model_validate(self.model_dump(include=set(TaskSpec.model_fields)))


class RunWebhook(WireModel):
    """The webhook delivery of one run: ``pending`` until it is delivered or given up."""

    status: Literal["pending", "delivered", "failed", "refused"]
    attempts: int = 0
    last_error: str | None = None
    http_status: int | None = None

    @classmethod
    def of(cls, outcome: WebhookOutcome) -> RunWebhook:
        return cls.model_validate(outcome.model_dump())


class Run(WireModel):
    """One run of a task. A ``skipped`` run carries the reason in ``error`` (code CONFLICT)."""

    run_id: str = Field(description="run_<ulid>")
    task_id: str
    trigger: RunTrigger
    status: RunStatus
    text: str = ""
    provider: str | None = None
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: int = 0
    error: ErrorInfo | None = None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    webhook: RunWebhook | None = None
    dispatch_id: str | None = Field(default=None, description="The dispatch in history.")

    @property
    def finished(self) -> bool:
        return self.status != "running"
