"""Items workers queue for a human (``POST /review``) and uploaded artifacts, in SQLite."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import from_iso, iso
from core.store.queue import ArtifactRow, ReviewRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteArtifacts", "SqliteReviews"]

INSERT_REVIEW = """
INSERT INTO reviews (id, type, title, content, preview, target, job_id, status, created_by,
                     created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_REVIEW = "SELECT * FROM reviews WHERE id = ?"
INSERT_ARTIFACT = """
INSERT INTO artifacts (slug, path, filename, content_type, size, job_id, review_id, created_by,
                       created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_ARTIFACT = "SELECT * FROM artifacts WHERE slug = ?"
ARTIFACTS_FOR_JOB = "SELECT * FROM artifacts WHERE job_id = ? ORDER BY created_at, slug"
ARTIFACTS_EXPIRED = """
SELECT * FROM artifacts WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at
"""
DELETE_ARTIFACT = "DELETE FROM artifacts WHERE slug = ?"


def _opt(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _review(r: sqlite3.Row) -> ReviewRow:
    return ReviewRow(
        id=r["id"], type=r["type"], title=r["title"], content=r["content"],
        preview=r["preview"], target=r["target"], job_id=r["job_id"],
        created_by=r["created_by"], created_at=from_iso(r["created_at"]), status=r["status"],
    )


def _artifact(r: sqlite3.Row) -> ArtifactRow:
    return ArtifactRow(
        slug=r["slug"], path=r["path"], content_type=r["content_type"], size=r["size"],
        created_at=from_iso(r["created_at"]), filename=r["filename"], job_id=r["job_id"],
        review_id=r["review_id"], created_by=r["created_by"],
        expires_at=from_iso(r["expires_at"]) if r["expires_at"] else None,
    )


class SqliteReviews:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, row: ReviewRow) -> None:
        self.db.conn.execute(INSERT_REVIEW, (
            row.id, row.type, row.title, row.content, row.preview, row.target, row.job_id,
            row.status, row.created_by, iso(row.created_at),
        ))

    async def get(self, review_id: str) -> ReviewRow | None:
        row = self.db.conn.execute(SELECT_REVIEW, (review_id,)).fetchone()
        return _review(row) if row else None

    async def page(self, *, limit: int, offset: int, status: str | None = None
                   ) -> tuple[list[ReviewRow], int]:
        clause, args = ("WHERE status = ?", [status]) if status is not None else ("", [])
        conn = self.db.conn
        total = conn.execute(f"SELECT COUNT(*) FROM reviews {clause}", args).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            f"SELECT * FROM reviews {clause} ORDER BY created_at DESC, id DESC "  # noqa: S608
            "LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [_review(r) for r in rows], int(total)


class SqliteArtifacts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, row: ArtifactRow) -> None:
        self.db.conn.execute(INSERT_ARTIFACT, (
            row.slug, row.path, row.filename, row.content_type, row.size, row.job_id,
            row.review_id, row.created_by, iso(row.created_at), _opt(row.expires_at),
        ))

    async def get(self, slug: str) -> ArtifactRow | None:
        row = self.db.conn.execute(SELECT_ARTIFACT, (slug,)).fetchone()
        return _artifact(row) if row else None

    async def for_job(self, job_id: int) -> list[ArtifactRow]:
        return [_artifact(r) for r in self.db.conn.execute(ARTIFACTS_FOR_JOB, (job_id,))]

    async def expired(self, now: datetime) -> list[ArtifactRow]:
        return [_artifact(r) for r in self.db.conn.execute(ARTIFACTS_EXPIRED, (iso(now),))]

    async def delete(self, slug: str) -> bool:
        return bool(self.db.conn.execute(DELETE_ARTIFACT, (slug,)).rowcount)
