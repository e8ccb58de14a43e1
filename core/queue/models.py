"""Wire models of the job queue and the worker fleet (DESIGN.md §7, §8).

REST serializes them camelCase like every other model; the worker protocol (§7) is
snake_case, which :meth:`Job.worker_wire` produces. Both spellings are accepted on input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator

from core.errors import ValidationFailed
from core.models import UtcDatetime, WireModel

__all__ = [
    "CLOSE_STATUSES",
    "JOB_STATUSES",
    "TERMINAL",
    "TIER_ORDER",
    "WORKER_NAME",
    "Capability",
    "CloseStatus",
    "Effort",
    "Job",
    "JobAttempt",
    "JobPatch",
    "JobSpec",
    "JobStatus",
    "Presence",
    "PresenceStatus",
    "RiskTier",
    "RouteCandidate",
    "RouteExplanation",
    "RouteScore",
    "Tags",
    "Urgency",
    "Worker",
    "WorkerLoad",
    "WorkerRecord",
    "WorkerStatus",
    "normalize_tags",
    "parse_model",
    "tags_field",
]

RiskTier = Literal["auto", "audit", "approve", "session"]
Effort = Literal["trivial", "quick", "standard", "deep", "critical"]
Urgency = Literal["low", "normal", "high"]
JobStatus = Literal[
    "awaiting_approval", "pending", "running", "done", "failed", "escalated", "cancelled"
]
CloseStatus = Literal["done", "failed", "escalated"]
WorkerStatus = Literal["online", "offline", "paused", "revoked"]
PresenceStatus = Literal["active", "idle", "busy"]
AttemptOutcome = Literal["done", "failed", "escalated", "lost", "cancelled"]

JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
TERMINAL: frozenset[str] = frozenset({"done", "failed", "escalated", "cancelled"})
CLOSE_STATUSES: frozenset[str] = frozenset({"done", "failed", "escalated"})
#: Strictness of risk tiers: when workers disagree about a capability, the strictest wins.
TIER_ORDER: dict[str, int] = {"auto": 0, "audit": 1, "session": 2, "approve": 3}
WORKER_NAME = re.compile(r"[a-z0-9._-]{1,64}")
_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,63}")

M = TypeVar("M", bound=BaseModel)


def normalize_tags(value: str | Iterable[str] | None) -> list[str]:
    """``" Code, REVIEW ,code"`` or ``["Code", "review"]`` → ``["code", "review"]``:
    split on commas, lowercased, trimmed, deduplicated keeping first-seen order, empties
    dropped."""
    if value is None:
        return []
    if not isinstance(value, str | Iterable):
        raise ValueError("tags must be a comma-separated string or a list of strings")
    items = [value] if isinstance(value, str) else value
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"tags must be strings, got {type(item).__name__}")
        for part in item.split(","):
            tag = part.strip().lower()
            if tag:
                seen.setdefault(tag, None)
    return list(seen)


Tags = Annotated[list[str], BeforeValidator(normalize_tags)]
"""A tag list that also accepts one comma-separated string."""


def tags_field(value: str | Iterable[str] | None, path: str = "tags") -> list[str]:
    """:func:`normalize_tags` for service arguments: bad input is a VALIDATION_ERROR."""
    try:
        return normalize_tags(value)
    except ValueError as exc:
        raise ValidationFailed(f"{path}: {exc}",
                               details=[{"path": path, "problem": str(exc)}]) from exc


def _capability_name(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip().lower()
    if not _CAPABILITY.fullmatch(name):
        raise ValueError("a capability is 1-64 of a-z 0-9 . _ : / - (starting alphanumeric)")
    return name


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; failures become one VALIDATION_ERROR listing each
    field path and problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"path": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['path']}: {d['problem']}" for d in details)
        raise ValidationFailed(summary, details=details) from exc


class JobAttempt(WireModel):
    """One claim of a job by a worker, kept for good (the job's history)."""

    attempt: int = Field(description="1, 2, … over the job's whole life (retries continue).")
    worker: str
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    outcome: AttemptOutcome | None = Field(
        default=None, description="None while running; lost = lease expired or worker revoked.")
    error: str | None = None


class Job(WireModel):
    """A unit of work for the fleet."""

    id: int
    prompt: str
    input: Any = None
    tags: list[str] = Field(default_factory=list)
    capability: str | None = None
    provider: str | None = None
    model: str | None = None
    effort: Effort = "standard"
    urgency: Urgency = "normal"
    status: JobStatus
    risk_tier: RiskTier = "auto"
    assigned_to: str | None = Field(
        default=None, description="The worker that has it (or, awaiting approval, the one "
        "whose session the approval would cover).")
    attempts: int = Field(default=0, description="Claims counted toward max_attempts.")
    max_attempts: int
    timeout_s: int
    lease_expires_at: UtcDatetime | None = None
    result: Any = None
    error: str | None = None
    approved_by: str | None = None
    created_by: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    history: list[JobAttempt] = Field(default_factory=list)

    def worker_wire(self) -> dict[str, Any]:
        """The snake_case shape of the worker protocol (``GET /my-jobs``, claim replies)."""
        return self.model_dump(mode="json", by_alias=False)


class JobSpec(WireModel):
    """What a caller submits."""

    prompt: str = Field(description="The instruction for the worker; must not be blank.")
    input: Any = Field(default=None, description="Any JSON the worker needs.")
    tags: Tags = Field(default_factory=list, description="A list or one comma string.")
    capability: str | None = None
    provider: str | None = None
    model: str | None = None
    effort: Effort = "standard"
    urgency: Urgency = "normal"
    timeout_s: int | None = Field(default=None, gt=0, le=7 * 24 * 3600,
                                  description="Lease length; the queue default if omitted.")
    max_attempts: int | None = Field(default=None, gt=0, le=100)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("capability")
    @classmethod
    def _capability(cls, value: str | None) -> str | None:
        return _capability_name(value)


class JobPatch(WireModel):
    """Changes allowed until a job is claimed."""

    tags: Tags | None = None
    urgency: Urgency | None = None
    effort: Effort | None = None


class Capability(WireModel):
    """Something a worker can do, and how much oversight doing it needs."""

    name: str
    risk_tier: RiskTier = "auto"
    requires_secrets: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = _capability_name(value)
        assert name is not None
        return name


class Presence(WireModel):
    # One flat Literal (not PresenceStatus | Literal["offline"]): its schema is then a single
    # nullable enum, which MCP output schemas can state without a union.
    status: Literal["active", "idle", "busy", "offline"] | None = Field(
        default=None, description="From the last heartbeat; offline after a clean sign-off.")
    last_seen: UtcDatetime | None = None
    details: dict[str, Any] | None = None
    provider: str | None = None
    capacity: int = 1
    session_started_at: UtcDatetime | None = None


class WorkerLoad(WireModel):
    running: int = Field(default=0, description="Claimed jobs.")
    assigned: int = Field(default=0, description="Assigned, not yet claimed (in its inbox).")
    capacity: int = 1


class WorkerRecord(WireModel):
    """Outcomes of the last 30 days (lost leases count as failures; escalations don't)."""

    done_30d: int = 0
    failed_30d: int = 0
    success_rate: float | None = Field(default=None, description="None with no outcomes yet.")


class Worker(WireModel):
    """A durable worker identity and what the queue knows about it now."""

    id: str
    name: str
    description: str = ""
    capabilities: list[Capability] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    status: WorkerStatus
    presence: Presence = Field(default_factory=Presence)
    load: WorkerLoad = Field(default_factory=WorkerLoad)
    record: WorkerRecord = Field(default_factory=WorkerRecord)
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None = None


class RouteScore(WireModel):
    tag_overlap: float
    track_record: float
    load: float
    penalties: dict[str, float] = Field(default_factory=dict)
    total: float


class RouteCandidate(WireModel):
    worker: str
    eligible: bool
    reasons: list[str] = Field(default_factory=list, description="Why it is not eligible.")
    score: RouteScore
    session_approved: bool = False
    last_assigned_at: UtcDatetime | None = None


class RouteExplanation(WireModel):
    """The router's reasoning for one job: every candidate, ranked eligible ones first."""

    job_tags: list[str]
    urgency: Urgency
    capability: str | None = None
    provider: str | None = None
    risk_tier: RiskTier = "auto"
    chosen: str | None = Field(default=None, description="Where assignment sends the job.")
    needs_approval: bool = Field(
        default=False, description="The job is held for a human before it may run.")
    candidates: list[RouteCandidate] = Field(default_factory=list)
