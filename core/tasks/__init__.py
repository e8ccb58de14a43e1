"""Scheduled tasks: cron maths, webhook targets and delivery, prompt context, wire models.

The service and the scheduler live in :mod:`core.tasks.service` and
:mod:`core.tasks.scheduler` (the engine builds them); they are not imported here so that
the store can use the models without importing the services.
"""

from __future__ import annotations

from core.tasks.context import read_context, with_context
from core.tasks.cron import (
    last_fire_between,
    next_fire,
    normalize,
    validate_schedule,
    validate_timezone,
)
from core.tasks.models import Run, RunWebhook, Task, TaskContext, TaskPatch, TaskSpec
from core.tasks.targets import (
    WebhookPolicy,
    check_target,
    is_public_address,
    validate_webhook_url,
)
from core.tasks.webhooks import WebhookOutcome, backoff, build_payload, deliver

__all__ = [
    "Run",
    "RunWebhook",
    "Task",
    "TaskContext",
    "TaskPatch",
    "TaskSpec",
    "WebhookOutcome",
    "WebhookPolicy",
    "backoff",
    "build_payload",
    "check_target",
    "deliver",
    "is_public_address",
    "last_fire_between",
    "next_fire",
    "normalize",
    "read_context",
    "validate_schedule",
    "validate_timezone",
    "validate_webhook_url",
    "with_context",
]
