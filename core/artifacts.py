"""Artifacts workers upload (``POST /artifacts/upload``), kept under
``$MODELREINS_HOME/artifacts/`` and served at ``/s/<slug>``.

An upload streams into a private file (0600) as it arrives and is refused with
PAYLOAD_TOO_LARGE the moment it passes the size limit, so an oversized body never fills
the disk or memory. Expired artifacts are unreadable at once and their files are removed
by :meth:`ArtifactService.sweep` (run by the engine's maintenance loop).
"""

from __future__ import annotations

import mimetypes
import os
import secrets
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from pydantic import BaseModel, Field

from core.clock import Clock, to_ms
from core.errors import NotFound, PayloadTooLarge
from core.models import UtcDatetime
from core.store.queue import ArtifactRepo, ArtifactRow

__all__ = ["Artifact", "ArtifactService", "ArtifactUpload", "StoredArtifact"]

_SLUG_BYTES = 18


class Artifact(BaseModel):
    """An uploaded file as the worker protocol reports it (snake_case, like §7)."""

    slug: str
    url: str = Field(description="Where it is served: /s/<slug> (authorized readers only).")
    content_type: str
    size_bytes: int
    filename: str | None = None
    job_id: int | None = None
    review_id: str | None = None
    expires_at: UtcDatetime | None = None

    @classmethod
    def of(cls, row: ArtifactRow) -> Artifact:
        return cls(slug=row.slug, url=f"/s/{row.slug}", content_type=row.content_type,
                   size_bytes=row.size, filename=row.filename, job_id=row.job_id,
                   review_id=row.review_id, expires_at=row.expires_at)


class StoredArtifact(BaseModel):
    """An artifact and the file that holds it, for serving."""

    artifact: Artifact
    path: Path


class ArtifactUpload:
    """One upload in progress; use as a context manager so a failed upload leaves nothing."""

    def __init__(self, root: Path, limit: int) -> None:
        self.slug = secrets.token_urlsafe(_SLUG_BYTES)
        self.path = root / self.slug
        self.limit = limit
        self.size = 0
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self.committed = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; PAYLOAD_TOO_LARGE as soon as the total passes the limit."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"artifact exceeds {self.limit} bytes")
        assert self._file is not None, "upload already finished"
        self._file.write(chunk)

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        self.finish()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ArtifactUpload:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            self.discard()


class ArtifactService:
    """Files under ``root`` (created 0700 on first upload), rows in the store."""

    def __init__(self, repo: ArtifactRepo, root: Path, clock: Clock, max_bytes: int) -> None:
        self.repo = repo
        self.root = root
        self.clock = clock
        self.max_bytes = max_bytes

    def begin(self) -> ArtifactUpload:
        """Start an upload: a new private file the caller streams into."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return ArtifactUpload(self.root, self.max_bytes)

    async def commit(
        self, upload: ArtifactUpload, *, filename: str | None = None,
        content_type: str | None = None, job_id: int | None = None,
        review_id: str | None = None, expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> Artifact:
        """Record a finished upload; the content type is guessed from the filename when
        the client sent none (``application/octet-stream`` otherwise)."""
        upload.finish()
        if not content_type or content_type == "application/octet-stream":
            guessed = mimetypes.guess_type(filename or "")[0]
            content_type = guessed or content_type or "application/octet-stream"
        row = ArtifactRow(
            slug=upload.slug, path=upload.path.name, content_type=content_type,
            size=upload.size, created_at=to_ms(self.clock.now()), filename=filename,
            job_id=job_id, review_id=review_id, created_by=created_by,
            expires_at=to_ms(expires_at) if expires_at is not None else None)
        await self.repo.add(row)
        upload.committed = True
        return Artifact.of(row)

    async def get(self, slug: str) -> StoredArtifact:
        """The artifact and its file; NOT_FOUND when unknown or expired."""
        row = await self.repo.get(slug)
        now = self.clock.now()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            raise NotFound(f"no artifact '{slug}'")
        path = self.root / Path(row.path).name
        if not path.is_file():
            raise NotFound(f"artifact '{slug}' has no file")
        return StoredArtifact(artifact=Artifact.of(row), path=path)

    async def sweep(self) -> int:
        """Delete expired artifacts, files and rows; how many."""
        removed = 0
        for row in await self.repo.expired(self.clock.now()):
            (self.root / Path(row.path).name).unlink(missing_ok=True)
            removed += bool(await self.repo.delete(row.slug))
        return removed
