"""Queue jobs, their attempts, approvals and per-worker outcome counts in SQLite.

Every state change is a conditional ``UPDATE`` inside ``BEGIN IMMEDIATE``: the status (and
holder) the change expects is part of its ``WHERE``, so when several processes race for a
job exactly one of them changes it and the others see ``changed=False``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.store.codec import instant, opt_instant, opt_text, tags, text
from core.store.queue import AttemptRow, Decision, InHand, JobRow, NewJob, StatsRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteJobs"]

INSERT = """
INSERT INTO jobs (prompt, input, tags, capability, provider, model, effort, urgency, priority,
                  status, risk_tier, assigned_to, max_attempts, timeout_s, created_by,
                  created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_ONE = "SELECT * FROM jobs WHERE id = ?"
HISTORY_ONE = "SELECT * FROM job_attempts WHERE job_id = ? ORDER BY attempt"
HISTORY_MANY = "SELECT * FROM job_attempts WHERE job_id IN ({marks}) ORDER BY job_id, attempt"
INBOX = """
SELECT * FROM jobs WHERE assigned_to = ? AND status = ? ORDER BY priority DESC, id
"""
QUEUED = """
SELECT * FROM jobs WHERE status = 'pending' AND assigned_to IS NULL {filters}
ORDER BY priority DESC, id LIMIT ?
"""
# The worker must be active and below its capacity (jobs it holds, claimed or not).
ASSIGN = """
UPDATE jobs SET assigned_to = :worker, assigned_at = :now, risk_tier = :tier, updated_at = :now
WHERE id = :id AND status = 'pending' AND assigned_to IS NULL
  AND (SELECT COUNT(*) FROM jobs AS held
       WHERE held.assigned_to = :worker AND held.status IN ('pending', 'running'))
      < (SELECT capacity FROM workers WHERE name = :worker AND state = 'active')
"""
TOUCH_WORKER = "UPDATE workers SET last_assigned_at = ? WHERE name = ? AND state != 'revoked'"
HOLD = """
UPDATE jobs SET status = 'awaiting_approval', assigned_to = ?, risk_tier = ?, updated_at = ?
WHERE id = ? AND status = 'pending' AND assigned_to IS NULL
"""
LEASE_FROM = "strftime('%Y-%m-%dT%H:%M:%fZ', ?, '+' || timeout_s || ' seconds')"
CLAIM = f"""
UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_expires_at = {LEASE_FROM},
                updated_at = ?
WHERE id = ? AND status = 'pending' AND assigned_to = ?
  AND EXISTS (SELECT 1 FROM workers WHERE name = ? AND state = 'active')
RETURNING *
"""  # noqa: S608
START_ATTEMPT = """
INSERT INTO job_attempts (job_id, attempt, worker, worker_id, started_at)
VALUES (?, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM job_attempts WHERE job_id = ?), ?,
        (SELECT id FROM workers WHERE name = ? AND state != 'revoked'), ?)
"""
CLOSE = """
UPDATE jobs SET status = ?, result = ?, error = ?, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND status = 'running' AND assigned_to = ?
RETURNING *
"""
# A job has at most one open attempt: the one its current claim started.
END_ATTEMPT = """
UPDATE job_attempts SET ended_at = ?, outcome = ?, error = ?
WHERE job_id = ? AND outcome IS NULL RETURNING worker_id
"""
BUMP_STATS = """
INSERT INTO worker_stats (worker_id, day, done, failed) VALUES (?, ?, ?, ?)
ON CONFLICT (worker_id, day) DO UPDATE SET done = done + excluded.done,
                                           failed = failed + excluded.failed
"""
RENEW = f"""
UPDATE jobs SET lease_expires_at = {LEASE_FROM}
WHERE assigned_to = ? AND status = 'running'
"""  # noqa: S608
RELEASE_IDS = "SELECT id FROM jobs WHERE assigned_to = ? AND status = 'pending'"
RELEASE = """
UPDATE jobs SET assigned_to = NULL, assigned_at = NULL, updated_at = ?
WHERE assigned_to = ? AND status = 'pending'
"""
EXPIRED = """
SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < ?
ORDER BY lease_expires_at LIMIT ?
"""
REQUEUE = """
UPDATE jobs SET status = 'pending', assigned_to = NULL, assigned_at = NULL,
                lease_expires_at = NULL, error = ?, updated_at = ?
WHERE id = ? AND status = 'running'
"""
GIVE_UP = """
UPDATE jobs SET status = 'failed', lease_expires_at = NULL, error = ?, updated_at = ?
WHERE id = ? AND status = 'running'
"""
# Forced onto the partial index of in-hand jobs: the planner would otherwise walk every
# pending job by status, which under a long backlog costs per job waiting on every pass.
IN_HAND = """
SELECT assigned_to,
       SUM(status = 'running') AS running,
       SUM(status = 'pending') AS assigned,
       MAX(CASE WHEN status = 'running' THEN lease_expires_at END) AS lease_until
FROM jobs INDEXED BY jobs_in_hand
WHERE status IN ('pending', 'running') AND assigned_to IS NOT NULL
GROUP BY assigned_to
"""
STATS_30D = """
SELECT worker_id, SUM(done) AS done, SUM(failed) AS failed FROM worker_stats
WHERE day >= ? GROUP BY worker_id
"""
FAILURES_SINCE = """
SELECT worker_id, COUNT(*) AS failures FROM job_attempts
WHERE outcome IN ('failed', 'lost') AND ended_at >= ? AND worker_id IS NOT NULL
GROUP BY worker_id
"""
DECIDE = """
INSERT INTO approvals (job_id, decision, actor, at, worker_id, capability, session_id)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
SESSION_GRANTS = """
SELECT approvals.worker_id, approvals.capability FROM approvals
JOIN workers ON workers.id = approvals.worker_id
WHERE approvals.decision = 'approved' AND approvals.capability IS NOT NULL
  AND approvals.session_id = workers.session_id
  AND workers.state != 'revoked'
"""

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
    def __init__(self, db: Database) -> None:
        self.db = db

    def _load(self, job_id: int, row: sqlite3.Row | None = None, *, history: bool = True
              ) -> JobRow | None:
        conn = self.db.conn
        if row is None:
            row = conn.execute(SELECT_ONE, (job_id,)).fetchone()
            if row is None:
                return None
        attempts = tuple(_attempt(a) for a in conn.execute(HISTORY_ONE, (job_id,))
                         ) if history else ()
        return _job(row, attempts)

    def _with_history(self, rows: list[sqlite3.Row]) -> list[JobRow]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        by_job: dict[int, list[AttemptRow]] = {}
        query = HISTORY_MANY.format(marks=",".join("?" * len(ids)))
        for a in self.db.conn.execute(query, ids):
            by_job.setdefault(a["job_id"], []).append(_attempt(a))
        return [_job(r, tuple(by_job.get(r["id"], ()))) for r in rows]

    def _end_attempt(self, job_id: int, outcome: str, error: str | None, now: datetime) -> None:
        conn = self.db.conn
        ended = conn.execute(END_ATTEMPT, (text(now), outcome, error, job_id)).fetchone()
        done, failed = _COUNTS.get(outcome, (0, 0))
        if ended is not None and ended["worker_id"] is not None and (done or failed):
            day = now.date().isoformat()
            conn.execute(BUMP_STATS, (ended["worker_id"], day, done, failed))

    async def add(self, job: NewJob, *, assign_to: str | None = None) -> JobRow:
        at = text(job.created_at)
        with self.db.transaction() as conn:
            cursor = conn.execute(INSERT, (
                job.prompt, _json(job.input), json.dumps(list(job.tags)), job.capability,
                job.provider, job.model, job.effort, job.urgency, job.priority, job.status,
                job.risk_tier, job.assigned_to, job.max_attempts, job.timeout_s,
                job.created_by, at, at,
            ))
            job_id = int(cursor.lastrowid or 0)
            if assign_to is not None:
                self._assign(job_id, assign_to, job.risk_tier, at)
            loaded = self._load(job_id, history=False)
        assert loaded is not None
        return loaded

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

    def _assign(self, job_id: int, worker: str, risk_tier: str, at: str) -> bool:
        conn = self.db.conn
        changed = conn.execute(
            ASSIGN, {"worker": worker, "now": at, "id": job_id, "tier": risk_tier}).rowcount
        if changed:
            conn.execute(TOUCH_WORKER, (at, worker))
        return bool(changed)

    async def assign(self, job_id: int, worker: str, risk_tier: str, now: datetime) -> bool:
        with self.db.transaction():
            return self._assign(job_id, worker, risk_tier, text(now))

    async def hold(self, job_id: int, worker: str | None, risk_tier: str, now: datetime
                   ) -> bool:
        changed = self.db.conn.execute(HOLD, (worker, risk_tier, text(now), job_id))
        return bool(changed.rowcount)

    async def claim(self, job_id: int, worker: str, now: datetime
                    ) -> tuple[JobRow | None, bool]:
        at = text(now)
        with self.db.transaction() as conn:
            claimed = conn.execute(CLAIM, (at, at, job_id, worker, worker)).fetchone()
            if claimed is not None:
                conn.execute(START_ATTEMPT, (job_id, job_id, worker, worker, at))
            return self._load(job_id, claimed), claimed is not None

    async def close(
        self, job_id: int, worker: str, status: str, result: Any, error: str | None,
        now: datetime,
    ) -> tuple[JobRow | None, bool]:
        with self.db.transaction() as conn:
            closed = conn.execute(
                CLOSE, (status, _json(result), error, text(now), job_id, worker)).fetchone()
            if closed is not None:
                self._end_attempt(job_id, status, error, now)
            return self._load(job_id, closed), closed is not None

    async def renew(self, worker: str, now: datetime) -> int:
        return int(self.db.conn.execute(RENEW, (text(now), worker)).rowcount)

    async def release(self, worker: str, now: datetime) -> list[int]:
        with self.db.transaction() as conn:
            ids = [r[0] for r in conn.execute(RELEASE_IDS, (worker,))]
            if ids:
                conn.execute(RELEASE, (text(now), worker))
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
            if changed and end_attempt is not None:
                self._end_attempt(job_id, end_attempt[0], end_attempt[1], now)
            return self._load(job_id), bool(changed)

    async def in_hand(self) -> dict[str, InHand]:
        return {
            r["assigned_to"]: InHand(
                running=int(r["running"]), assigned=int(r["assigned"]),
                lease_until=opt_instant(r["lease_until"]),
            )
            for r in self.db.conn.execute(IN_HAND)
        }

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

    async def session_grants(self) -> dict[str, frozenset[str]]:
        grants: dict[str, set[str]] = {}
        for r in self.db.conn.execute(SESSION_GRANTS):
            grants.setdefault(r["worker_id"], set()).add(r["capability"])
        return {worker_id: frozenset(caps) for worker_id, caps in grants.items()}
