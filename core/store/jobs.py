"""Queue jobs, their attempts, approvals and per-worker outcome counts in SQLite.

Every state change is a conditional ``UPDATE`` inside ``BEGIN IMMEDIATE``: the status (and
holder) the change expects is part of its ``WHERE``, so when several processes race for a
job exactly one of them changes it and the others see ``changed=False``. What workers hold
is served from memory (:mod:`core.store.fleet_cache`): the per-job changes — assign, claim,
close, renew — apply themselves to it, the rarer ones drop it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.store.codec import instant, opt_instant, opt_text, tags, text
from core.store.fleet_cache import FleetCache
from core.store.jobs_sql import (
    ASSIGN,
    BUMP_STATS,
    CLAIM,
    CLOSE,
    DECIDE,
    END_ATTEMPT,
    EXPIRED,
    FAILURES_SINCE,
    GIVE_UP,
    HISTORY_MANY,
    HISTORY_ONE,
    HOLD,
    INBOX,
    INSERT,
    QUEUED,
    QUEUED_ANY,
    RELEASE,
    RELEASE_IDS,
    RENEW,
    REQUEUE,
    SELECT_ONE,
    SESSION_GRANTS,
    START_ATTEMPT,
    STATS_30D,
    TOUCH_WORKER,
)
from core.store.queue import AttemptRow, Decision, InHand, JobRow, NewJob, StatsRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteJobs"]

#: Columns :meth:`SqliteJobs.transition` may set, with how each is stored.
_SETTABLE: dict[str, str] = {
    "status": "plain", "assigned_to": "plain", "assigned_at": "time",
    "lease_expires_at": "time", "result": "json", "error": "plain", "approved_by": "plain",
    "risk_tier": "plain", "tags": "json", "urgency": "plain", "effort": "plain",
    "priority": "plain",
}
#: How an attempt's outcome counts toward a worker's track record (done, failed).
_COUNTS: dict[str, tuple[int, int]] = {"done": (1, 0), "failed": (0, 1), "lost": (0, 1)}
STATS_DAYS = 30


def _json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value is not None else None


def _unjson(raw: str | None) -> Any:
    return json.loads(raw) if raw is not None else None


def _attempt(r: sqlite3.Row) -> AttemptRow:
    return AttemptRow(
        job_id=r["job_id"], attempt=r["attempt"], worker=r["worker"], worker_id=r["worker_id"],
        started_at=instant(r["started_at"]), ended_at=opt_instant(r["ended_at"]),
        outcome=r["outcome"], error=r["error"],
    )


def _job(r: sqlite3.Row, history: tuple[AttemptRow, ...] = ()) -> JobRow:
    return JobRow(
        id=r["id"], prompt=r["prompt"], input=_unjson(r["input"]),
        tags=tags(r["tags"]), capability=r["capability"], provider=r["provider"],
        model=r["model"], effort=r["effort"], urgency=r["urgency"], priority=r["priority"],
        status=r["status"], risk_tier=r["risk_tier"], assigned_to=r["assigned_to"],
        assigned_at=opt_instant(r["assigned_at"]), attempts=r["attempts"],
        max_attempts=r["max_attempts"], timeout_s=r["timeout_s"],
        lease_expires_at=opt_instant(r["lease_expires_at"]), result=_unjson(r["result"]),
        error=r["error"], approved_by=r["approved_by"], created_by=r["created_by"],
        created_at=instant(r["created_at"]), updated_at=instant(r["updated_at"]),
        history=history,
    )


def _encode(column: str, value: Any) -> Any:
    kind = _SETTABLE[column]
    if kind == "time":
        return opt_text(value)
    if kind == "json":
        return _json(list(value) if isinstance(value, tuple) else value)
    return value


class SqliteJobs:
    def __init__(self, db: Database, fleet: FleetCache) -> None:
        self.db = db
        self.fleet = fleet

    def _load(self, job_id: int, row: sqlite3.Row | None = None, *, history: bool = True
              ) -> JobRow | None:
        conn = self.db.conn
        if row is None:
            row = conn.execute(SELECT_ONE, (job_id,)).fetchone()
            if row is None:
                return None
        return _job(row, self._history(job_id) if history else ())

    def _history(self, job_id: int, last: AttemptRow | None = None) -> tuple[AttemptRow, ...]:
        """Every attempt of the job; ``last``, when given, is its latest."""
        # Attempts are numbered from 1 over a job's whole life: a first one is all there is.
        if last is not None and last.attempt == 1:
            return (last,)
        return tuple(_attempt(a) for a in self.db.conn.execute(HISTORY_ONE, (job_id,)))

    def _with_history(self, rows: list[sqlite3.Row]) -> list[JobRow]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        by_job: dict[int, list[AttemptRow]] = {}
        query = HISTORY_MANY.format(marks=",".join("?" * len(ids)))
        for a in self.db.conn.execute(query, ids):
            by_job.setdefault(a["job_id"], []).append(_attempt(a))
        return [_job(r, tuple(by_job.get(r["id"], ()))) for r in rows]

    def _end_attempt(self, job_id: int, outcome: str, error: str | None, now: datetime
                     ) -> AttemptRow | None:
        """End the open attempt (if any) as ``outcome``; the attempt as it now is."""
        conn = self.db.conn
        ended = conn.execute(END_ATTEMPT, (text(now), outcome, error, job_id)).fetchone()
        if ended is None:
            return None
        done, failed = _COUNTS.get(outcome, (0, 0))
        if ended["worker_id"] is not None and (done or failed):
            day = now.date().isoformat()
            conn.execute(BUMP_STATS, (ended["worker_id"], day, done, failed))
        return _attempt(ended)

    async def add(self, job: NewJob, *, assign_to: str | None = None) -> JobRow:
        at = text(job.created_at)
        with self.db.transaction() as conn:
            row = conn.execute(INSERT, {
                "prompt": job.prompt, "input": _json(job.input),
                "tags": json.dumps(list(job.tags)), "capability": job.capability,
                "provider": job.provider, "model": job.model, "effort": job.effort,
                "urgency": job.urgency, "priority": job.priority, "status": job.status,
                "risk_tier": job.risk_tier, "worker": assign_to,
                "assigned_to": job.assigned_to, "max_attempts": job.max_attempts,
                "timeout_s": job.timeout_s, "created_by": job.created_by, "now": at,
            }).fetchone()
            placed = assign_to is not None and row["assigned_to"] == assign_to
            if placed:
                conn.execute(TOUCH_WORKER, (at, assign_to))
                placed = self.fleet.counted(conn, 2)  # the job, the worker's row
        if placed and assign_to is not None:
            self.fleet.assigned(assign_to, at)
        return _job(row)

    async def has_queued(self) -> bool:
        return bool(self.db.conn.execute(QUEUED_ANY).fetchone()[0])

    async def get(self, job_id: int) -> JobRow | None:
        return self._load(job_id)

    async def page(
        self, *, limit: int, offset: int, status: str | None = None,
        tags: Sequence[str] = (), assigned_to: str | None = None,
    ) -> tuple[list[JobRow], int]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("status", status), ("assigned_to", assigned_to)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for tag in tags:
            where.append("EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?)")
            args.append(tag)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        conn = self.db.conn
        total = conn.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            f"SELECT * FROM jobs {clause} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*args, limit, offset],
        ).fetchall()
        return self._with_history(rows), int(total)

    async def inbox(self, worker: str, status: str) -> list[JobRow]:
        return self._with_history(self.db.conn.execute(INBOX, (worker, status)).fetchall())

    async def queued(
        self, *, after: tuple[int, int] | None, limit: int,
        capabilities: Collection[str] | None = None, providers: Collection[str] | None = None,
    ) -> list[JobRow]:
        filters: list[str] = []
        args: list[Any] = []
        if after is not None:
            filters.append("AND (priority < ? OR (priority = ? AND id > ?))")
            args += [after[0], after[0], after[1]]
        for column, allowed in (("capability", capabilities), ("provider", providers)):
            if allowed is not None:
                marks = ",".join("?" * len(allowed))
                filters.append(f"AND ({column} IS NULL OR {column} IN ({marks}))")
                args += sorted(allowed)
        sql = QUEUED.format(filters=" ".join(filters))
        return [_job(r) for r in self.db.conn.execute(sql, [*args, limit])]

    async def assign(self, job_id: int, worker: str, risk_tier: str, now: datetime) -> bool:
        at = text(now)
        with self.db.transaction() as conn:
            changed = conn.execute(
                ASSIGN, {"worker": worker, "now": at, "id": job_id, "tier": risk_tier}).rowcount
            if not changed:
                return False
            conn.execute(TOUCH_WORKER, (at, worker))
            mine = self.fleet.counted(conn, 2)
        if mine:
            self.fleet.assigned(worker, at)
        return True

    async def hold(self, job_id: int, worker: str | None, risk_tier: str, now: datetime
                   ) -> bool:
        changed = self.db.conn.execute(HOLD, (worker, risk_tier, text(now), job_id))
        return bool(changed.rowcount)

    async def claim(self, job_id: int, worker: str, now: datetime
                    ) -> tuple[JobRow | None, bool]:
        at = text(now)
        with self.db.transaction() as conn:
            claimed = conn.execute(CLAIM, (at, at, job_id, worker, worker)).fetchone()
            if claimed is None:
                return self._load(job_id), False
            started = conn.execute(START_ATTEMPT, (job_id, job_id, worker, worker, at)).fetchone()
            row = _job(claimed, self._history(job_id, _attempt(started)))
            mine = self.fleet.counted(conn, 1)
        if mine:
            self.fleet.claimed(worker, job_id, claimed["lease_expires_at"])
        return row, True

    async def close(
        self, job_id: int, worker: str, status: str, result: Any, error: str | None,
        now: datetime,
    ) -> tuple[JobRow | None, bool]:
        with self.db.transaction() as conn:
            closed = conn.execute(
                CLOSE, (status, _json(result), error, text(now), job_id, worker)).fetchone()
            if closed is None:
                return self._load(job_id), False
            ended = self._end_attempt(job_id, status, error, now)
            row = _job(closed, self._history(job_id, ended))
            mine = self.fleet.counted(conn, 1)
        if mine:
            self.fleet.closed(worker, job_id)
        return row, True

    async def renew(self, worker: str, now: datetime) -> int:
        with self.db.transaction() as conn:
            leases = conn.execute(RENEW, (text(now), worker)).fetchall()
            mine = bool(leases) and self.fleet.counted(conn, len(leases))
        if mine:
            self.fleet.renewed(worker, {job_id: lease for job_id, lease in leases})
        return len(leases)

    async def release(self, worker: str, now: datetime) -> list[int]:
        with self.db.transaction() as conn:
            ids = [r[0] for r in conn.execute(RELEASE_IDS, (worker,))]
            if ids:
                conn.execute(RELEASE, (text(now), worker))
        self.fleet.drop()
        return ids

    async def expired(self, now: datetime, limit: int) -> list[int]:
        return [r[0] for r in self.db.conn.execute(EXPIRED, (text(now), limit))]

    async def requeue(
        self, job_id: int, now: datetime, *, outcome: str, error: str, only_if_expired: bool,
    ) -> tuple[JobRow | None, bool]:
        with self.db.transaction() as conn:
            row = conn.execute(SELECT_ONE, (job_id,)).fetchone()
            if row is None or row["status"] != "running" or (
                only_if_expired and row["lease_expires_at"] >= text(now)
            ):
                return self._load(job_id), False
            exhausted = row["attempts"] >= row["max_attempts"]
            if exhausted:
                used, limit = row["attempts"], row["max_attempts"]
                final = f"{error}; gave up after {used} of {limit} attempts"
                conn.execute(GIVE_UP, (final, text(now), job_id))
            else:
                conn.execute(REQUEUE, (error, text(now), job_id))
            self._end_attempt(job_id, outcome, error, now)
            self.fleet.drop()
            return self._load(job_id), True

    async def transition(
        self, job_id: int, *, expect: Collection[str], now: datetime,
        changes: Mapping[str, Any], end_attempt: tuple[str, str | None] | None = None,
        reset_attempts: bool = False,
    ) -> tuple[JobRow | None, bool]:
        sets = [f"{column} = ?" for column in changes]
        args = [_encode(column, value) for column, value in changes.items()]
        if reset_attempts:
            sets.append("attempts = 0")
        sets.append("updated_at = ?")
        statuses = list(expect)
        sql = (
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? "  # noqa: S608
            f"AND status IN ({','.join('?' * len(statuses))})"
        )
        with self.db.transaction() as conn:
            changed = conn.execute(sql, [*args, text(now), job_id, *statuses]).rowcount
            if changed:
                if end_attempt is not None:
                    self._end_attempt(job_id, end_attempt[0], end_attempt[1], now)
                self.fleet.drop()
            return self._load(job_id), bool(changed)

    async def in_hand(self) -> dict[str, InHand]:
        return self.fleet.in_hand()

    async def stats(self, now: datetime) -> dict[str, StatsRow]:
        conn = self.db.conn
        since_day = (now - timedelta(days=STATS_DAYS - 1)).date().isoformat()
        totals = {r["worker_id"]: (int(r["done"]), int(r["failed"]))
                  for r in conn.execute(STATS_30D, (since_day,))}
        recent = {r["worker_id"]: int(r["failures"])
                  for r in conn.execute(FAILURES_SINCE, (text(now - timedelta(hours=1)),))}
        return {
            worker_id: StatsRow(
                done_30d=totals.get(worker_id, (0, 0))[0],
                failed_30d=totals.get(worker_id, (0, 0))[1],
                failures_1h=recent.get(worker_id, 0),
            )
            for worker_id in totals.keys() | recent.keys()
        }

    async def decide(self, decision: Decision) -> None:
        self.db.conn.execute(DECIDE, (
            decision.job_id, decision.decision, decision.actor, text(decision.at),
            decision.worker_id, decision.capability, decision.session_id,
        ))
        self.fleet.drop()

    async def session_grants(self) -> dict[str, frozenset[str]]:
        fleet = self.fleet
        fleet.check()
        if fleet.grants is None:
            grants: dict[str, set[str]] = {}
            for r in self.db.conn.execute(SESSION_GRANTS):
                grants.setdefault(r["worker_id"], set()).add(r["capability"])
            fleet.grants = {worker_id: frozenset(caps) for worker_id, caps in grants.items()}
        return dict(fleet.grants)
