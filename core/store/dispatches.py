"""Dispatch history in SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.clock import from_iso, iso
from core.models import Attempt, DispatchRecord, ErrorInfo, Usage
from core.store.write_behind import Statement, WriteBehind

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteDispatches"]

INSERT = """
INSERT INTO dispatches (id, status, prompt, text, provider, model, input_tokens, output_tokens,
                        latency_ms, created_at, attempts, error, truncated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_ONE = "SELECT * FROM dispatches WHERE id = ?"


def _row(rec: DispatchRecord) -> tuple[Any, ...]:
    return (
        rec.id, rec.status, rec.prompt, rec.text, rec.provider, rec.model,
        rec.usage.input_tokens, rec.usage.output_tokens, rec.latency_ms, iso(rec.created_at),
        json.dumps([a.wire() for a in rec.attempts]),
        json.dumps(rec.error.wire()) if rec.error else None,
        int(rec.truncated),
    )


def _record(row: sqlite3.Row) -> DispatchRecord:
    return DispatchRecord(
        id=row["id"],
        status=row["status"],
        prompt=row["prompt"],
        text=row["text"],
        provider=row["provider"],
        model=row["model"],
        usage=Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"]),
        latency_ms=row["latency_ms"],
        created_at=from_iso(row["created_at"]),
        attempts=[Attempt.model_validate(a) for a in json.loads(row["attempts"])],
        error=ErrorInfo.model_validate(json.loads(row["error"])) if row["error"] else None,
        truncated=bool(row["truncated"]),
    )


class SqliteDispatches:
    """History rows are queued on the store's write-behind (see :mod:`core.store.write_behind`)
    and committed off the event loop; until then :meth:`get` serves them from memory."""

    def __init__(self, db: Database, writes: WriteBehind[Statement]) -> None:
        self.db = db
        self.writes = writes
        self._queued: dict[str, DispatchRecord] = {}

    def written(self, batch: Sequence[Statement]) -> None:
        """Forget the records of ``batch`` once committed: readers find them on disk now."""
        for statement in batch:
            if statement.key is not None:
                self._queued.pop(statement.key, None)

    async def add(self, record: DispatchRecord) -> None:
        self._queued[record.id] = record
        await self.writes.put(Statement(INSERT, record, key=record.id, encode=_row))

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        queued = self._queued.get(dispatch_id)
        if queued is not None:
            return queued
        row = self.db.conn.execute(SELECT_ONE, (dispatch_id,)).fetchone()
        return _record(row) if row else None

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        provider: str | None = None,
        status: str | None = None,
        providers: frozenset[str] | None = None,
    ) -> tuple[list[DispatchRecord], int]:
        if providers is not None and not providers:
            return [], 0
        await self.writes.drain()
        where, args = _filters(provider, status, providers)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        conn = self.db.conn
        total = conn.execute(f"SELECT COUNT(*) FROM dispatches {clause}", args).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            f"SELECT * FROM dispatches {clause} ORDER BY created_at DESC, id DESC "  # noqa: S608
            "LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [_record(r) for r in rows], int(total)


def _filters(provider: str | None, status: str | None, providers: frozenset[str] | None
             ) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if provider is not None:
        where.append("provider = ?")
        args.append(provider)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if providers is not None:
        where.append(f"provider IN ({', '.join('?' * len(providers))})")
        args.extend(sorted(providers))
    return where, args
