"""Scheduled tasks: cron maths, webhook delivery and prompt context for task runs."""

from __future__ import annotations

from core.tasks.context import read_context, with_context
from core.tasks.cron import (
    last_fire_between,
    next_fire,
    normalize,
    validate_schedule,
    validate_timezone,
)
from core.tasks.webhooks import (
    WebhookOutcome,
    WebhookPolicy,
    backoff,
    build_payload,
    check_target,
    deliver,
    is_public_address,
    validate_webhook_url,
)

__all__ = [
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
