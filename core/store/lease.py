"""Named leader leases in SQLite: one upsert that only wins when the lease is free.

The conditional ``ON CONFLICT … DO UPDATE … WHERE`` takes the lease over only if it has
expired or is already ours, and ``BEGIN IMMEDIATE`` serializes processes on the file, so
two contenders can never both come out holding it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import from_iso, iso
from core.store.schedule import LeaseState

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteLeases"]

ACQUIRE = """
INSERT INTO scheduler_lease (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE scheduler_lease.holder = excluded.holder OR scheduler_lease.expires_at <= ?
"""
SELECT = "SELECT holder, expires_at FROM scheduler_lease WHERE name = ?"
RELEASE = "DELETE FROM scheduler_lease WHERE name = ? AND holder = ?"


class SqliteLeases:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, name: str, holder: str, *, now: datetime, expires_at: datetime
                      ) -> LeaseState:
        with self.db.transaction() as conn:
            conn.execute(ACQUIRE, (name, holder, iso(expires_at), iso(now)))
            row = conn.execute(SELECT, (name,)).fetchone()
        return LeaseState(row["holder"], from_iso(row["expires_at"]))

    async def release(self, name: str, holder: str) -> None:
        self.db.conn.execute(RELEASE, (name, holder))
