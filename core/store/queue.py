"""The queue's slice of the store interface: rows at rest and the repositories over them.

Every write method is one atomic step (a transaction with conditional updates), so several
server processes sharing one database never double-assign, double-claim or double-close a
job: a method reports whether it changed anything and the caller decides what that means.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.store.frozen import fast_init

__all__ = [
    "ArtifactRepo",
    "ArtifactRow",
    "AttemptRow",
    "CapabilityRow",
    "Decision",
    "InHand",
    "JobRepo",
    "JobRow",
    "NewJob",
    "ReviewRepo",
    "ReviewRow",
    "StatsRow",
    "WorkerRepo",
    "WorkerRow",
]


@fast_init
@dataclass(frozen=True)
class AttemptRow:
    """One claim of a job; ``outcome`` is None while it runs."""

    job_id: int
    attempt: int
    worker: str
    worker_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    error: str | None = None


@fast_init
@dataclass(frozen=True)
class NewJob:
    prompt: str
    input: Any
    tags: tuple[str, ...]
    capability: str | None
    provider: str | None
    model: str | None
    effort: str
    urgency: str
    priority: int
    status: str
    risk_tier: str
    max_attempts: int
    timeout_s: int
    created_by: str
    created_at: datetime
    assigned_to: str | None = None
    """Only for a job held for a worker's session approval."""


@fast_init
@dataclass(frozen=True)
class JobRow:
    id: int
    prompt: str
    input: Any
    tags: tuple[str, ...]
    capability: str | None
    provider: str | None
    model: str | None
    effort: str
    urgency: str
    priority: int
    status: str
    risk_tier: str
    assigned_to: str | None
    assigned_at: datetime | None
    attempts: int
    max_attempts: int
    timeout_s: int
    lease_expires_at: datetime | None
    result: Any
    error: str | None
    approved_by: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    history: tuple[AttemptRow, ...] = ()


@fast_init
@dataclass(frozen=True)
class CapabilityRow:
    name: str
    risk_tier: str
    requires_secrets: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True)
class WorkerRow:
    id: str
    name: str
    description: str
    capabilities: tuple[CapabilityRow, ...]
    tags: tuple[str, ...]
    state: str
    """``active``, ``paused`` or ``revoked``: what an admin decided, not presence."""
    created_at: datetime
    presence: str | None = None
    """``active|idle|busy`` from the last heartbeat, ``offline`` after a clean sign-off."""
    details: dict[str, Any] | None = None
    provider: str | None = None
    capacity: int = 1
    last_seen: datetime | None = None
    session_id: str | None = None
    """Set when a heartbeat finds the worker offline; cleared by sign-off or revocation."""
    session_started_at: datetime | None = None
    resumed_at: datetime | None = None
    last_assigned_at: datetime | None = None
    revoked_at: datetime | None = None


@fast_init
@dataclass(frozen=True)
class InHand:
    """What one worker holds: claimed jobs, assigned-but-unclaimed jobs, latest lease."""

    running: int = 0
    assigned: int = 0
    lease_until: datetime | None = None


@fast_init
@dataclass(frozen=True)
class StatsRow:
    done_30d: int = 0
    failed_30d: int = 0
    failures_1h: int = 0


@dataclass(frozen=True)
class ReviewRow:
    id: str
    type: str
    title: str
    content: str
    preview: str | None
    target: str | None
    job_id: int | None
    created_by: str
    created_at: datetime
    status: str = "open"


@dataclass(frozen=True)
class ArtifactRow:
    slug: str
    path: str
    content_type: str
    size: int
    created_at: datetime
    filename: str | None = None
    job_id: int | None = None
    review_id: str | None = None
    created_by: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """An approval or rejection; session grants carry the worker session they cover."""

    job_id: int
    decision: str
    actor: str
    at: datetime
    worker_id: str | None = None
    capability: str | None = None
    session_id: str | None = None


class JobRepo(Protocol):
    async def add(self, job: NewJob, *, assign_to: str | None = None) -> JobRow:
        """Insert the job and, in the same transaction, give it to ``assign_to`` on the
        terms of :meth:`assign` — left unassigned if the worker has no room by now, or if
        older jobs wait unassigned (they go first)."""
        ...

    async def get(self, job_id: int) -> JobRow | None:
        """The job with its attempt history."""
        ...

    async def page(
        self, *, limit: int, offset: int, status: str | None = None,
        tags: Sequence[str] = (), assigned_to: str | None = None,
    ) -> tuple[list[JobRow], int]:
        """Newest first; a job matches ``tags`` when it carries all of them."""
        ...

    async def inbox(self, worker: str, status: str) -> list[JobRow]:
        """Jobs assigned to ``worker`` in ``status``, most urgent then oldest first."""
        ...

    async def queued(
        self, *, after: tuple[int, int] | None, limit: int,
        capabilities: Collection[str] | None = None, providers: Collection[str] | None = None,
    ) -> list[JobRow]:
        """Pending unassigned jobs (no history), most urgent then oldest first, keyset-paged
        after ``(priority, id)``; if given, only jobs needing none or one of
        ``capabilities`` and none or one of ``providers``."""
        ...

    async def has_queued(self) -> bool:
        """Whether any job is pending and unassigned."""
        ...

    async def assign(self, job_id: int, worker: str, risk_tier: str, now: datetime) -> bool:
        """Give a pending unassigned job to ``worker`` if it is active and has room."""
        ...

    async def hold(self, job_id: int, worker: str | None, risk_tier: str, now: datetime
                   ) -> bool:
        """Move a pending unassigned job to ``awaiting_approval`` (for ``worker``'s session
        when the tier is ``session``)."""
        ...

    async def claim(self, job_id: int, worker: str, now: datetime) -> tuple[JobRow | None, bool]:
        """pending+assigned to ``worker`` → running with a lease and a new attempt."""
        ...

    async def close(
        self, job_id: int, worker: str, status: str, result: Any, error: str | None,
        now: datetime,
    ) -> tuple[JobRow | None, bool]:
        """running+held by ``worker`` → ``status`` with ``result``, recorded once."""
        ...

    async def renew(self, worker: str, now: datetime) -> int:
        """Extend the lease of every job ``worker`` runs to now + the job's timeout."""
        ...

    async def release(self, worker: str, now: datetime) -> list[int]:
        """Unassign ``worker``'s unclaimed jobs; their ids."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[int]:
        """Running jobs whose lease has passed."""
        ...

    async def requeue(
        self, job_id: int, now: datetime, *, outcome: str, error: str, only_if_expired: bool,
    ) -> tuple[JobRow | None, bool]:
        """End the running attempt as ``outcome``: back to pending, or failed when the
        attempts are used up."""
        ...

    async def transition(
        self, job_id: int, *, expect: Collection[str], now: datetime,
        changes: Mapping[str, Any], end_attempt: tuple[str, str | None] | None = None,
        reset_attempts: bool = False,
    ) -> tuple[JobRow | None, bool]:
        """Apply ``changes`` if the job's status is in ``expect``."""
        ...

    async def in_hand(self) -> dict[str, InHand]:
        """Per worker name: what it holds right now."""
        ...

    async def stats(self, now: datetime) -> dict[str, StatsRow]:
        """Per worker id: 30-day done/failed, failures in the last hour."""
        ...

    async def decide(self, decision: Decision) -> None: ...

    async def session_grants(self) -> dict[str, frozenset[str]]:
        """Per worker id: capabilities approved for its current session."""
        ...


class WorkerRepo(Protocol):
    async def add(self, row: WorkerRow) -> bool:
        """False when a live worker already has the name."""
        ...

    async def get(self, worker_id: str) -> WorkerRow | None: ...

    async def by_name(self, name: str, *, include_revoked: bool = False) -> WorkerRow | None:
        """The live worker with this name, else (if asked) the latest revoked one."""
        ...

    async def all(self, *, include_revoked: bool) -> list[WorkerRow]:
        """By name."""
        ...

    async def fleet_now(self) -> tuple[list[WorkerRow], dict[str, InHand]]:
        """The live workers by name and, per worker name, what it holds (as
        :meth:`JobRepo.in_hand`), both as of one instant: what every routing pass reads."""
        ...

    async def holding(self, name: str) -> tuple[WorkerRow | None, InHand]:
        """The live worker with this name (None if there is none) and what the name holds
        (as :meth:`JobRepo.in_hand`; nothing if absent there), both as of one instant.
        ``assigned`` counts exactly the jobs :meth:`JobRepo.inbox` lists as ``pending``."""
        ...

    async def set_state(self, worker_id: str, state: str, now: datetime) -> WorkerRow | None: ...

    async def heartbeat(
        self, name: str, *, presence: str, details: dict[str, Any] | None,
        tags: Sequence[str] | None, provider: str | None, capacity: int | None,
        now: datetime, window_start: datetime, session_id: str,
    ) -> tuple[WorkerRow | None, bool]:
        """Record a heartbeat; True when it starts a new session (the worker was offline),
        which then gets ``session_id``."""
        ...

    async def sign_off(self, name: str, now: datetime) -> WorkerRow | None:
        """Mark the worker offline and end its session."""
        ...


class ReviewRepo(Protocol):
    async def add(self, row: ReviewRow) -> None: ...

    async def get(self, review_id: str) -> ReviewRow | None: ...

    async def page(self, *, limit: int, offset: int, status: str | None = None
                   ) -> tuple[list[ReviewRow], int]: ...


class ArtifactRepo(Protocol):
    async def add(self, row: ArtifactRow) -> None: ...

    async def get(self, slug: str) -> ArtifactRow | None: ...

    async def for_job(self, job_id: int) -> list[ArtifactRow]: ...

    async def expired(self, now: datetime) -> list[ArtifactRow]: ...

    async def delete(self, slug: str) -> bool: ...
