"""The audit log in SQLite: append-only rows, read newest first through filtered pages.

Entries are queued on the store's write-behind (the same worker and connection that commit
dispatch history), so recording one costs the caller no synchronous write; reads drain the
queue first, so a page always shows every entry recorded before it was asked for.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import from_iso, iso
from core.store.base import AuditRow
from core.store.write_behind import Statement, WriteBehind

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteAudit"]

INSERT = "INSERT INTO audit (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)"
COUNT = "SELECT COUNT(*) FROM audit {where}"
PAGE = "SELECT * FROM audit {where} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"


def _entry(r: sqlite3.Row) -> AuditRow:
    return AuditRow(
        id=r["id"],
        at=from_iso(r["at"]),
        actor=r["actor"],
        action=r["action"],
        target=r["target"],
        details=json.loads(r["details"]) if r["details"] is not None else None,
    )


def _where(
    actor: str | None, target: str | None, action: str | None,
    since: datetime | None, until: datetime | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("actor", "=", actor), ("target", "=", target), ("action", "=", action),
        ("at", ">=", iso(since) if since else None), ("at", "<", iso(until) if until else None),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            args.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


class SqliteAudit:
    def __init__(self, db: Database, writes: WriteBehind[Statement]) -> None:
        self.db = db
        self.writes = writes

    async def add(
        self, *, at: datetime, actor: str, action: str, target: str | None,
        details: str | None,
    ) -> None:
        await self.writes.put(Statement(INSERT, (iso(at), actor, action, target, details)))

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
        await self.writes.drain()
        where, args = _where(actor, target, action, since, until)
        conn = self.db.conn
        total = conn.execute(COUNT.format(where=where), args).fetchone()[0]
        rows = conn.execute(PAGE.format(where=where), [*args, limit, offset]).fetchall()
        return [_entry(r) for r in rows], int(total)
