"""The job queue and the worker fleet: wire models, the scoring router, the services."""

from __future__ import annotations

from core.queue.allocate import Assignment
from core.queue.context import AuditSink
from core.queue.models import (
    Capability,
    Job,
    JobAttempt,
    JobPatch,
    JobSpec,
    RouteExplanation,
    Worker,
    WorkerRecord,
    normalize_tags,
    parse_model,
)
from core.queue.notify import Changes
from core.queue.service import MaintenanceReport, QueueService

__all__ = [
    "Assignment",
    "AuditSink",
    "Capability",
    "Changes",
    "Job",
    "JobAttempt",
    "JobPatch",
    "JobSpec",
    "MaintenanceReport",
    "QueueService",
    "RouteExplanation",
    "Worker",
    "WorkerRecord",
    "normalize_tags",
    "parse_model",
]
