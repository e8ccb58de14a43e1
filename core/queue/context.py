"""What the queue's services share: store, clock, settings, audit sink, notifications —
and the translation of stored rows into wire models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from core.clock import Clock, to_ms
from core.config import QueueConfig
from core.queue.models import (
    Capability,
    Job,
    JobAttempt,
    Presence,
    Worker,
    WorkerLoad,
    WorkerRecord,
    WorkerStatus,
)
from core.queue.notify import Changes
from core.queue.router import WorkerView, is_online
from core.store.base import Store
from core.store.queue import CapabilityRow, InHand, JobRow, StatsRow, WorkerRow

__all__ = [
    "SYSTEM",
    "AuditSink",
    "QueueContext",
    "job_model",
    "trusted",
    "worker_actor",
    "worker_model",
    "worker_view",
]

SYSTEM = "system:queue"
"""The actor of changes the queue makes on its own (assignment, lease expiry)."""


def worker_actor(name: str) -> str:
    return f"worker:{name}"


class AuditSink(Protocol):
    """Anything that records audit entries (core.audit's log, or a test's list)."""

    async def record(self, actor: str, action: str, target: str | None,
                     details: dict[str, Any] | None = None) -> Any: ...


@dataclass
class QueueContext:
    store: Store
    clock: Clock
    config: QueueConfig
    audit_sink: AuditSink | None = None
    changes: Changes = field(default_factory=Changes)
    stopping: bool = False
    """Set when the server shuts down: waits answer at once (see QueueService.stop_waiting)."""

    def now(self) -> datetime:
        return to_ms(self.clock.now())

    @property
    def presence_window(self) -> timedelta:
        return timedelta(seconds=self.config.presence_window_s)

    async def audit(self, actor: str, action: str, target: str | None,
                    details: dict[str, Any] | None = None) -> None:
        if self.audit_sink is not None:
            await self.audit_sink.record(actor, action, target, details)


_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__


def trusted(model: type[_M], /, **values: Any) -> _M:
    """``model(**values)`` for values that are valid already — decoded from rows this
    store wrote — given for every field. It is what pydantic's ``model_construct`` makes,
    without its per-field Python loop, which costs more than validating would: every job
    becomes a model four times on its way through the queue."""
    made = model.__new__(model)
    _set(made, "__dict__", values)
    _set(made, "__pydantic_fields_set__", set(values))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


def job_model(row: JobRow) -> Job:
    return trusted(
        Job, id=row.id, prompt=row.prompt, input=row.input, tags=list(row.tags),
        capability=row.capability, provider=row.provider, model=row.model,
        effort=row.effort, urgency=row.urgency, status=row.status, risk_tier=row.risk_tier,
        assigned_to=row.assigned_to, attempts=row.attempts, max_attempts=row.max_attempts,
        timeout_s=row.timeout_s, lease_expires_at=row.lease_expires_at, result=row.result,
        error=row.error, approved_by=row.approved_by, created_by=row.created_by,
        created_at=row.created_at, updated_at=row.updated_at,
        history=[
            trusted(JobAttempt, attempt=a.attempt, worker=a.worker, started_at=a.started_at,
                    ended_at=a.ended_at, outcome=a.outcome, error=a.error)
            for a in row.history
        ],
    )


@lru_cache(maxsize=1024)
def _tiers(capabilities: tuple[CapabilityRow, ...]) -> Mapping[str, str]:
    return MappingProxyType({c.name: c.risk_tier for c in capabilities})


def worker_view(
    row: WorkerRow, held: InHand, grants: frozenset[str] = frozenset()
) -> WorkerView:
    details = row.details or {}
    return WorkerView(
        name=row.name, tags=row.tags,
        capabilities=_tiers(row.capabilities),
        state=row.state, presence=row.presence, last_seen=row.last_seen,
        lease_until=held.lease_until, provider=row.provider, capacity=row.capacity,
        in_hand=held.running + held.assigned, session_started_at=row.session_started_at,
        resumed_at=row.resumed_at, last_assigned_at=row.last_assigned_at,
        rate_limited=bool(details.get("rate_limited") or details.get("rateLimited")),
        session_grants=grants,
    )


def _status(row: WorkerRow, held: InHand, now: datetime, window: timedelta) -> WorkerStatus:
    if row.state == "revoked":
        return "revoked"
    if row.state == "paused":
        return "paused"
    return "online" if is_online(worker_view(row, held), now, window) else "offline"


def worker_model(row: WorkerRow, held: InHand, stats: StatsRow, now: datetime,
                 window: timedelta) -> Worker:
    outcomes = stats.done_30d + stats.failed_30d
    return Worker(
        id=row.id, name=row.name, description=row.description,
        capabilities=[
            Capability(name=c.name, risk_tier=c.risk_tier,  # type: ignore[arg-type]
                       requires_secrets=list(c.requires_secrets))
            for c in row.capabilities
        ],
        tags=list(row.tags),
        status=_status(row, held, now, window),
        presence=Presence(
            status=row.presence,  # type: ignore[arg-type]
            last_seen=row.last_seen, details=row.details, provider=row.provider,
            capacity=row.capacity, session_started_at=row.session_started_at,
        ),
        load=WorkerLoad(running=held.running, assigned=held.assigned, capacity=row.capacity),
        record=WorkerRecord(
            done_30d=stats.done_30d, failed_30d=stats.failed_30d,
            success_rate=round(stats.done_30d / outcomes, 4) if outcomes else None,
        ),
        created_at=row.created_at, revoked_at=row.revoked_at,
    )
