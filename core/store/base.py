"""The store interface the engine depends on: one small repository per domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from anyio.abc import TaskStatus

from core.models import DispatchRecord
from core.store.queue import ArtifactRepo, JobRepo, ReviewRepo, WorkerRepo
from core.store.schedule import LeaseRepo, RunRepo, TaskRepo

__all__ = [
    "AuditRepo",
    "AuditRow",
    "DispatchRepo",
    "Store",
    "TokenRepo",
    "TokenRow",
    "ViewRepo",
    "ViewRow",
]


class DispatchRepo(Protocol):
    async def add(self, record: DispatchRecord) -> None: ...

    async def get(self, dispatch_id: str) -> DispatchRecord | None: ...

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        provider: str | None = None,
        status: str | None = None,
        providers: frozenset[str] | None = None,
    ) -> tuple[list[DispatchRecord], int]:
        """Newest first, with the total count matching the filters; ``providers`` keeps
        only dispatches served by one of them (None: any)."""
        ...


@dataclass(frozen=True)
class TokenRow:
    """An API token at rest: only the SHA-256 of the raw value, never the value itself."""

    id: str
    hash: str
    prefix: str
    name: str
    scopes: tuple[str, ...]
    providers: tuple[str, ...] | None
    kind: str
    worker_id: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenRepo(Protocol):
    async def add(self, row: TokenRow) -> None: ...

    async def by_hash(self, token_hash: str) -> TokenRow | None: ...

    async def get(self, token_id: str) -> TokenRow | None: ...

    async def all(self, *, include_revoked: bool) -> list[TokenRow]:
        """Newest first."""
        ...

    async def revoke(self, token_id: str, at: datetime) -> TokenRow | None:
        """Set ``revoked_at`` unless already set; the row as it now is, None if unknown."""
        ...

    async def touch(self, token_id: str, at: datetime, *, stale_at: datetime) -> bool:
        """Set ``last_used_at = at`` only if it is unset or not after ``stale_at``."""
        ...

    async def has_admin(self) -> bool:
        """Whether an unrevoked token carries the ``admin`` scope."""
        ...


@dataclass(frozen=True)
class ViewRow:
    """A one-time view. ``secret`` is None once viewed or expired (the row is a tombstone)."""

    nonce_hash: str
    name: str
    kind: str
    secret: str | None
    created_at: datetime
    expires_at: datetime
    viewed_at: datetime | None = None


class ViewRepo(Protocol):
    async def add(self, row: ViewRow) -> None: ...

    async def take(self, nonce_hash: str, now: datetime) -> ViewRow | None:
        """Atomically consume the view: a live secret (unviewed, unexpired) is returned in
        the row as it was and erased with ``viewed_at`` set; otherwise the row comes back
        with ``secret=None`` and any expired secret is erased. Erased values must not
        survive in the backend's files. None if there is no such view."""
        ...

    async def sweep(self, now: datetime, *, purge_before: datetime) -> int:
        """Erase secrets expired at ``now`` (returns how many); drop tombstones that
        expired before ``purge_before``."""
        ...


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None


class AuditRepo(Protocol):
    async def add(
        self, *, at: datetime, actor: str, action: str, target: str | None,
        details: str | None,
    ) -> None:
        """Append an entry; ``details`` is already JSON text."""

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[AuditRow], int]:
        """Newest first (``since`` inclusive, ``until`` exclusive), with the matching total."""
        ...


class Store(Protocol):
    @property
    def dispatches(self) -> DispatchRepo: ...

    @property
    def tokens(self) -> TokenRepo: ...

    @property
    def views(self) -> ViewRepo: ...

    @property
    def audit(self) -> AuditRepo: ...

    @property
    def tasks(self) -> TaskRepo: ...

    @property
    def runs(self) -> RunRepo: ...

    @property
    def leases(self) -> LeaseRepo: ...

    @property
    def jobs(self) -> JobRepo: ...

    @property
    def workers(self) -> WorkerRepo: ...

    @property
    def reviews(self) -> ReviewRepo: ...

    @property
    def artifacts(self) -> ArtifactRepo: ...

    async def background(self, *, task_status: TaskStatus[None] = ...) -> None:
        """Run the store's background work until cancelled; the engine starts it with
        ``await task_group.start(store.background)``."""
        ...

    async def close(self) -> None: ...
