"""The audit log: who did what to which target, and when.

Actors are a token's name, ``worker:NAME`` (see :attr:`core.principal.Principal.actor`)
or ``local`` for the owner at the CLI. Targets are ids (``tok_…``, ``wkr_…``, job ids).

``details`` is stored verbatim and shown to every admin: never put secrets in it (no raw
tokens, enrollment codes, view nonces, API keys or webhook credentials). A token's display
``prefix`` is fine.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.clock import Clock, to_ms
from core.errors import field_error
from core.models import Page, UtcDatetime, WireModel
from core.store.base import AuditRepo, AuditRow

__all__ = ["MAX_LIMIT", "AuditEntry", "AuditLog"]

MAX_LIMIT = 500


class AuditEntry(WireModel):
    """One audit record."""

    id: int
    at: UtcDatetime
    actor: str
    action: str
    target: str | None = None
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntry:
        return cls(id=row.id, at=row.at, actor=row.actor, action=row.action,
                   target=row.target, details=row.details)


def _check_instant(path: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise field_error(path, "must carry a timezone")


class AuditLog:
    """Append entries and read them back, newest first, over an :class:`AuditRepo`."""

    def __init__(self, repo: AuditRepo, clock: Clock) -> None:
        self.repo = repo
        self.clock = clock

    async def record(self, actor: str, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None) -> None:
        """Append one entry at the current time. ``details`` must be JSON-serialisable
        and must never hold a secret."""
        if not actor:
            raise field_error("actor", "must not be empty")
        if not action:
            raise field_error("action", "must not be empty")
        encoded = None
        if details is not None:
            try:
                encoded = json.dumps(details, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise field_error("details", f"must be JSON-serialisable ({exc})") from exc
        await self.repo.add(at=to_ms(self.clock.now()), actor=actor, action=action,
                            target=target, details=encoded)

    async def query(
        self,
        *,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Entries matching every given filter, newest first; ``since`` is inclusive,
        ``until`` exclusive."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("limit", f"must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise field_error("offset", "must not be negative")
        _check_instant("since", since)
        _check_instant("until", until)
        rows, total = await self.repo.page(limit=limit, offset=offset, actor=actor,
                                           target=target, action=action, since=since,
                                           until=until)
        return Page[AuditEntry](items=[AuditEntry.of(r) for r in rows], total=total,
                                limit=limit, offset=offset)
