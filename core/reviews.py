"""Items a worker queues for a human (``POST /review``): a draft to read, a change to
approve, a question. Admins list them (``GET /api/reviews``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.audit import AuditLog
from core.clock import Clock, to_ms
from core.errors import Forbidden, field_error
from core.ids import new_id
from core.models import Page, UtcDatetime
from core.principal import Principal
from core.store.queue import ReviewRepo, ReviewRow

__all__ = ["REVIEW_STATUSES", "Review", "ReviewService", "ReviewSpec"]

REVIEW_STATUSES = ("open", "done", "dismissed")


class ReviewSpec(BaseModel):
    """What a worker sends (§7, snake_case)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=64, description="What kind of item.")
    title: str = Field(min_length=1, max_length=500)
    content: str = Field(description="The full text for the human.")
    preview: str | None = None
    target: str | None = Field(default=None, description="What it is about (a path, a URL).")
    job_id: int | None = None
    created_by: str | None = Field(
        default=None, description="`worker:NAME`; must be the caller when given.")

    @field_validator("title", "type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Review(BaseModel):
    """A queued review item."""

    id: str
    type: str
    title: str
    content: str
    preview: str | None = None
    target: str | None = None
    job_id: int | None = None
    status: str
    created_by: str
    created_at: UtcDatetime

    @classmethod
    def of(cls, row: ReviewRow) -> Review:
        return cls(id=row.id, type=row.type, title=row.title, content=row.content,
                   preview=row.preview, target=row.target, job_id=row.job_id,
                   status=row.status, created_by=row.created_by, created_at=row.created_at)


class ReviewService:
    def __init__(self, repo: ReviewRepo, clock: Clock, audit: AuditLog) -> None:
        self.repo = repo
        self.clock = clock
        self.audit = audit

    async def submit(self, spec: ReviewSpec, *, actor: Principal) -> Review:
        """Queue an item for a human, attributed to the caller. A worker files only in
        its own name (FORBIDDEN otherwise)."""
        if actor.kind == "worker" and spec.created_by not in (None, actor.actor):
            raise Forbidden(f"a worker files reviews only as '{actor.actor}'")
        row = ReviewRow(
            id=new_id("rev"), type=spec.type, title=spec.title, content=spec.content,
            preview=spec.preview, target=spec.target, job_id=spec.job_id,
            created_by=spec.created_by or actor.actor, created_at=to_ms(self.clock.now()))
        await self.repo.add(row)
        details: dict[str, Any] = {"type": row.type, "title": row.title, "job": row.job_id}
        await self.audit.record(actor.actor, "review.create", row.id, details)
        return Review.of(row)

    async def list(self, *, status: str | None = None, limit: int = 20, offset: int = 0
                   ) -> Page[Review]:
        """Newest first."""
        if status is not None and status not in REVIEW_STATUSES:
            raise field_error("status", f"must be one of {', '.join(REVIEW_STATUSES)}")
        if not 1 <= limit <= 500:
            raise field_error("limit", "must be between 1 and 500")
        if offset < 0:
            raise field_error("offset", "must be ≥ 0")
        rows, total = await self.repo.page(limit=limit, offset=offset, status=status)
        return Page[Review](items=[Review.of(r) for r in rows], total=total, limit=limit,
                            offset=offset)
