"""Registered workers and their presence in SQLite.

A name is unique among live (not revoked) workers; a revoked row stays for the record and
its name may be registered again. The live rows routing reads are served from memory
between changes (:mod:`core.store.fleet_cache`); changing a row drops them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from core.store.codec import instant, opt_instant, tags, text
from core.store.fleet_cache import FleetCache
from core.store.jobs_sql import HELD
from core.store.queue import CapabilityRow, InHand, WorkerRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteWorkers"]

INSERT = """
INSERT INTO workers (id, name, description, capabilities, tags, state, capacity, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_ONE = "SELECT * FROM workers WHERE id = ?"
SELECT_LIVE = "SELECT * FROM workers WHERE name = ? AND state != 'revoked'"
SELECT_LATEST = "SELECT * FROM workers WHERE name = ? ORDER BY created_at DESC, id DESC LIMIT 1"
SELECT_ALL = "SELECT * FROM workers ORDER BY name, created_at DESC"
SELECT_ALL_LIVE = "SELECT * FROM workers WHERE state != 'revoked' ORDER BY name"
SET_STATE = """
UPDATE workers SET state = :state,
    resumed_at = CASE WHEN :state = 'active' AND state = 'paused' THEN :now ELSE resumed_at END,
    revoked_at = CASE WHEN :state = 'revoked' THEN :now ELSE revoked_at END,
    session_id = CASE WHEN :state = 'revoked' THEN NULL ELSE session_id END,
    session_started_at = CASE WHEN :state = 'revoked' THEN NULL ELSE session_started_at END
WHERE id = :id AND state != 'revoked'
"""
LIVE_LEASE = f"""
SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_in_hand
               WHERE assigned_to = ? AND {HELD} AND status = 'running'
               AND lease_expires_at > ?)
"""  # noqa: S608
HEARTBEAT = """
UPDATE workers SET presence = :presence, details = :details, tags = COALESCE(:tags, tags),
    provider = COALESCE(:provider, provider), capacity = COALESCE(:capacity, capacity),
    last_seen = :now,
    session_id = CASE WHEN :new THEN :session ELSE session_id END,
    session_started_at = CASE WHEN :new THEN :now ELSE session_started_at END
WHERE id = :id
"""
SIGN_OFF = """
UPDATE workers SET presence = 'offline', session_id = NULL, session_started_at = NULL
WHERE name = ? AND state != 'revoked'
"""


@lru_cache(maxsize=1024)
def _capabilities(raw: str) -> tuple[CapabilityRow, ...]:
    return tuple(
        CapabilityRow(c["name"], c["risk_tier"], tuple(c.get("requires_secrets") or ()))
        for c in json.loads(raw)
    )


def _encode_capabilities(caps: Sequence[CapabilityRow]) -> str:
    return json.dumps([
        {"name": c.name, "risk_tier": c.risk_tier, "requires_secrets": list(c.requires_secrets)}
        for c in caps
    ])


def _worker(r: sqlite3.Row) -> WorkerRow:
    return _decode(tuple(r), tuple(r.keys()))


# Routing reads every worker on each pass and most rows are unchanged since the last one.
# Rows are treated as immutable (``details`` included), so an unchanged row is decoded once.
@lru_cache(maxsize=1024)
def _decode(values: tuple[Any, ...], columns: tuple[str, ...]) -> WorkerRow:
    r = dict(zip(columns, values, strict=True))
    return WorkerRow(
        id=r["id"], name=r["name"], description=r["description"],
        capabilities=_capabilities(r["capabilities"]), tags=tags(r["tags"]),
        state=r["state"], created_at=instant(r["created_at"]), presence=r["presence"],
        details=json.loads(r["details"]) if r["details"] is not None else None,
        provider=r["provider"], capacity=r["capacity"], last_seen=opt_instant(r["last_seen"]),
        session_id=r["session_id"], session_started_at=opt_instant(r["session_started_at"]),
        resumed_at=opt_instant(r["resumed_at"]),
        last_assigned_at=opt_instant(r["last_assigned_at"]),
        revoked_at=opt_instant(r["revoked_at"]),
    )


class SqliteWorkers:
    def __init__(self, db: Database, fleet: FleetCache) -> None:
        self.db = db
        self.fleet = fleet

    def _one(self, sql: str, arg: str) -> WorkerRow | None:
        row = self.db.conn.execute(sql, (arg,)).fetchone()
        return _worker(row) if row else None

    async def add(self, row: WorkerRow) -> bool:
        def add(conn: sqlite3.Connection) -> bool:
            if conn.execute(SELECT_LIVE, (row.name,)).fetchone() is not None:
                return False
            conn.execute(INSERT, (
                row.id, row.name, row.description, _encode_capabilities(row.capabilities),
                json.dumps(list(row.tags)), row.state, row.capacity, text(row.created_at),
            ))
            self.fleet.drop()
            return True

        return await self.db.write(add)

    async def get(self, worker_id: str) -> WorkerRow | None:
        return self._one(SELECT_ONE, worker_id)

    async def by_name(self, name: str, *, include_revoked: bool = False) -> WorkerRow | None:
        live = self._live().get(name)
        if live is None and include_revoked:
            return self._one(SELECT_LATEST, name)
        return live

    async def all(self, *, include_revoked: bool) -> list[WorkerRow]:
        if include_revoked:
            return self._read(SELECT_ALL)
        return list(self._live().values())

    async def fleet_now(self) -> tuple[list[WorkerRow], dict[str, InHand]]:
        # One check of the counter covers both: they are exact as of the same instant.
        live = self._live()
        return list(live.values()), self.fleet.in_hand(checked=True)

    async def holding(self, name: str) -> tuple[WorkerRow | None, InHand]:
        live = self._live()  # one check of the counter covers both, as in fleet_now
        return live.get(name), self.fleet.held_by(name)

    def _live(self) -> dict[str, WorkerRow]:
        """Live workers by name: what every routing pass (and every inbox read) asks for."""
        fleet = self.fleet
        fleet.check()
        if fleet.workers is None:
            fleet.workers = {w.name: w for w in self._read(SELECT_ALL_LIVE)}
        return fleet.workers

    def _read(self, sql: str) -> list[WorkerRow]:
        cursor = self.db.conn.cursor()
        cursor.row_factory = None  # plain tuples, decoded through _decode's memo
        cursor.execute(sql)
        columns = tuple(d[0] for d in cursor.description)
        return [_decode(values, columns) for values in cursor]

    async def set_state(self, worker_id: str, state: str, now: datetime) -> WorkerRow | None:
        def set_state(conn: sqlite3.Connection) -> WorkerRow | None:
            conn.execute(SET_STATE, {"state": state, "now": text(now), "id": worker_id})
            self.fleet.drop()
            return self._one(SELECT_ONE, worker_id)

        return await self.db.write(set_state)

    async def heartbeat(
        self, name: str, *, presence: str, details: dict[str, Any] | None,
        tags: Sequence[str] | None, provider: str | None, capacity: int | None,
        now: datetime, window_start: datetime, session_id: str,
    ) -> tuple[WorkerRow | None, bool]:
        at = text(now)

        def heartbeat(conn: sqlite3.Connection) -> tuple[WorkerRow | None, bool]:
            row = conn.execute(SELECT_LIVE, (name,)).fetchone()
            if row is None:
                return None, False
            was_online = (
                row["presence"] not in (None, "offline")
                and row["last_seen"] is not None
                and row["last_seen"] >= text(window_start)
            ) or bool(conn.execute(LIVE_LEASE, (name, at)).fetchone()[0])
            new_session = not was_online or row["session_id"] is None
            conn.execute(HEARTBEAT, {
                "presence": presence,
                "details": json.dumps(details) if details is not None else None,
                "tags": json.dumps(list(tags)) if tags is not None else None,
                "provider": provider, "capacity": capacity, "now": at, "new": new_session,
                "session": session_id, "id": row["id"],
            })
            self.fleet.drop()
            return _worker(conn.execute(SELECT_ONE, (row["id"],)).fetchone()), new_session

        return await self.db.write(heartbeat)

    async def sign_off(self, name: str, now: datetime) -> WorkerRow | None:
        def sign_off(conn: sqlite3.Connection) -> WorkerRow | None:
            conn.execute(SIGN_OFF, (name,))
            self.fleet.drop()
            return self._one(SELECT_LIVE, name)

        return await self.db.write(sign_off)
