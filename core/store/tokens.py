"""API tokens in SQLite: looked up by the SHA-256 of the raw value, which is never stored."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import from_iso, iso
from core.store.base import TokenRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteTokens"]

INSERT = """
INSERT INTO tokens (id, hash, prefix, name, scopes, providers, kind, worker_id, created_at,
                    last_used_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_BY_HASH = "SELECT * FROM tokens WHERE hash = ?"
SELECT_ONE = "SELECT * FROM tokens WHERE id = ?"
SELECT_ALL = "SELECT * FROM tokens ORDER BY created_at DESC, id DESC"
SELECT_ACTIVE = (
    "SELECT * FROM tokens WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC"
)
REVOKE = "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
# Conditional, so several processes authenticating the same token write at most once
# per throttle window between them.
TOUCH = """
UPDATE tokens SET last_used_at = ?
WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)
"""
HAS_ADMIN = """
SELECT EXISTS (
    SELECT 1 FROM tokens, json_each(tokens.scopes)
    WHERE tokens.revoked_at IS NULL AND json_each.value = 'admin'
)
"""


def _opt_iso(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _params(row: TokenRow) -> tuple[Any, ...]:
    return (
        row.id, row.hash, row.prefix, row.name, json.dumps(list(row.scopes)),
        json.dumps(list(row.providers)) if row.providers is not None else None,
        row.kind, row.worker_id, iso(row.created_at), _opt_iso(row.last_used_at),
        _opt_iso(row.revoked_at),
    )


def _token(r: sqlite3.Row) -> TokenRow:
    return TokenRow(
        id=r["id"],
        hash=r["hash"],
        prefix=r["prefix"],
        name=r["name"],
        scopes=tuple(json.loads(r["scopes"])),
        providers=tuple(json.loads(r["providers"])) if r["providers"] is not None else None,
        kind=r["kind"],
        worker_id=r["worker_id"],
        created_at=from_iso(r["created_at"]),
        last_used_at=from_iso(r["last_used_at"]) if r["last_used_at"] else None,
        revoked_at=from_iso(r["revoked_at"]) if r["revoked_at"] else None,
    )


class SqliteTokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, row: TokenRow) -> None:
        self.db.conn.execute(INSERT, _params(row))

    async def by_hash(self, token_hash: str) -> TokenRow | None:
        found = self.db.conn.execute(SELECT_BY_HASH, (token_hash,)).fetchone()
        return _token(found) if found else None

    async def get(self, token_id: str) -> TokenRow | None:
        found = self.db.conn.execute(SELECT_ONE, (token_id,)).fetchone()
        return _token(found) if found else None

    async def all(self, *, include_revoked: bool) -> list[TokenRow]:
        rows = self.db.conn.execute(SELECT_ALL if include_revoked else SELECT_ACTIVE)
        return [_token(r) for r in rows.fetchall()]

    async def revoke(self, token_id: str, at: datetime) -> TokenRow | None:
        with self.db.transaction() as conn:
            conn.execute(REVOKE, (iso(at), token_id))
            found = conn.execute(SELECT_ONE, (token_id,)).fetchone()
        return _token(found) if found else None

    async def touch(
        self, token_id: str, at: datetime, *, stale_at: datetime
    ) -> bool:
        cursor = self.db.conn.execute(TOUCH, (iso(at), token_id, iso(stale_at)))
        return cursor.rowcount > 0

    async def has_admin(self) -> bool:
        return bool(self.db.conn.execute(HAS_ADMIN).fetchone()[0])
