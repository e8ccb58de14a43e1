"""One-time views in SQLite, erased so that no copy of a viewed secret stays on disk.

Erasing is an ``UPDATE … SET secret = NULL`` under ``PRAGMA secure_delete=ON`` (set on
every connection), which zeroes the freed bytes in the page. In WAL mode the old page
images, including the frame that first wrote the secret, still sit in the ``-wal`` file;
a ``wal_checkpoint(TRUNCATE)`` after each erase copies the clean pages into the database
and empties the WAL. A checkpoint can be held up by another process's open read; it is
then retried on the next sweep.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from core.clock import from_iso, iso
from core.store.base import ViewRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteViews"]

INSERT = """
INSERT INTO views (nonce_hash, name, kind, secret, created_at, expires_at, viewed_at)
VALUES (?, ?, ?, ?, ?, ?, NULL)
"""
SELECT_ONE = "SELECT * FROM views WHERE nonce_hash = ?"
CONSUME = "UPDATE views SET secret = NULL, viewed_at = ? WHERE nonce_hash = ?"
ERASE_ONE = "UPDATE views SET secret = NULL WHERE nonce_hash = ?"
ERASE_EXPIRED = "UPDATE views SET secret = NULL WHERE secret IS NOT NULL AND expires_at <= ?"
PURGE_TOMBSTONES = "DELETE FROM views WHERE secret IS NULL AND expires_at < ?"
CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"
SCRUB_TRIES = 100
SCRUB_RETRY_S = 0.01


def _view(r: sqlite3.Row) -> ViewRow:
    return ViewRow(
        nonce_hash=r["nonce_hash"],
        name=r["name"],
        kind=r["kind"],
        secret=r["secret"],
        created_at=from_iso(r["created_at"]),
        expires_at=from_iso(r["expires_at"]),
        viewed_at=from_iso(r["viewed_at"]) if r["viewed_at"] else None,
    )


class SqliteViews:
    def __init__(self, db: Database, *, pause_checkpoints: Callable[
            [], AbstractAsyncContextManager[None]] | None = None) -> None:
        self.db = db
        self._pause_checkpoints = pause_checkpoints or nullcontext
        self._unscrubbed = False

    async def add(self, row: ViewRow) -> None:
        self.db.conn.execute(INSERT, (
            row.nonce_hash, row.name, row.kind, row.secret, iso(row.created_at),
            iso(row.expires_at),
        ))

    async def take(self, nonce_hash: str, now: datetime) -> ViewRow | None:
        with self.db.transaction() as conn:
            found = conn.execute(SELECT_ONE, (nonce_hash,)).fetchone()
            if found is None:
                return None
            before = _view(found)
            if before.secret is None:
                return before
            live = before.viewed_at is None and before.expires_at > now
            if live:
                conn.execute(CONSUME, (iso(now), nonce_hash))
            else:
                conn.execute(ERASE_ONE, (nonce_hash,))
        await self._scrub()
        return before if live else replace(before, secret=None)

    async def sweep(self, now: datetime, *, purge_before: datetime) -> int:
        with self.db.transaction() as conn:
            erased = conn.execute(ERASE_EXPIRED, (iso(now),)).rowcount
            purged = conn.execute(PURGE_TOMBSTONES, (iso(purge_before),)).rowcount
        if erased or purged or self._unscrubbed:
            await self._scrub()
        return int(erased)

    async def _scrub(self) -> None:
        # A checkpoint already in progress makes TRUNCATE answer "busy" at once. The
        # store's own background checkpointer is paused meanwhile (after its checkpoint in
        # flight, however long a busy disk makes it); another process's checkpoints are
        # short, so try again for a moment rather than leave the erased secret in the WAL
        # until the next sweep.
        async with self._pause_checkpoints():
            for _ in range(SCRUB_TRIES):
                busy, _frames, _done = self.db.conn.execute(CHECKPOINT).fetchone()
                if not busy:
                    self._unscrubbed = False
                    return
                await anyio.sleep(SCRUB_RETRY_S)
        self._unscrubbed = True
