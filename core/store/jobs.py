"""Queue jobs, their attempts, approvals and per-worker outcome counts in SQLite.

Every state change is a conditional ``UPDATE`` inside ``BEGIN IMMEDIATE``: the status (and
holder) the change expects is part of its ``WHERE``, so when several processes race for a
job exactly one of them changes it and the others see ``changed=False``. What workers hold
is served from memory (:mod:`core.store.fleet_cache`): the per-job changes — assign, claim,
close, renew — apply themselves to it, the rarer ones drop it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.store.codec import opt_text, tags_text, text
from core.store.fleet_cache import FleetCache
from core.store.job_rows import (
    ATTEMPTS,
    LEASE,
    MAX_ATTEMPTS,
    STATUS,
    attempt_row,
    job_row,
    new_job_row,
    to_json,
    tuples,
)
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
    HELD_STATUSES,
    HISTORY_MANY,
    HISTORY_ONE,
    HOLD,
    INBOX,
    INBOX_HELD,
    INSERT,
    JOB_COLUMNS,
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


def _encode(column: str, value: Any) -> Any:
    kind = _SETTABLE[column]
    if kind == "time":
        return opt_text(value)
    if kind == "json":
        return to_json(list(value) if isinstance(value, tuple) else value)
    return value


class SqliteJobs:
    def __init__(self, db: Database, fleet: FleetCache) -> None:
        self.db = db
        self.fleet = fleet
        self._queued: tuple[int, bool] | None = None
        """Whether jobs were queued when write transaction ``[0]`` committed."""
        self._queued_in = -1

    def _load(self, job_id: int) -> JobRow | None:
        row = tuples(self.db.conn, SELECT_ONE, (job_id,)).fetchone()
        return None if row is None else job_row(row, self._history(job_id))

    def _history(self, job_id: int, last: AttemptRow | None = None) -> tuple[AttemptRow, ...]:
        """Every attempt of the job; ``last``, when given, is its latest."""
        # Attempts are numbered from 1 over a job's whole life: a first one is all there is.
        if last is not None and last.attempt == 1:
            return (last,)
        return tuple(map(attempt_row, tuples(self.db.conn, HISTORY_ONE, (job_id,))))

    def _with_history(self, rows: list[tuple[Any, ...]]) -> list[JobRow]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        by_job: dict[int, list[AttemptRow]] = {}
        query = HISTORY_MANY.format(marks=",".join("?" * len(ids)))
        for a in tuples(self.db.conn, query, ids):
            by_job.setdefault(a[0], []).append(attempt_row(a))
        return [job_row(r, tuple(by_job.get(r[0], ()))) for r in rows]

    def _end_attempt(self, job_id: int, outcome: str, error: str | None, now: datetime,
                     at: str | None = None) -> AttemptRow | None:
        """End the open attempt (if any) as ``outcome`` (``at``: ``now`` as text, if the
        caller has it); the attempt as it now is."""
        conn = self.db.conn
        ended = tuples(conn, END_ATTEMPT, (at or text(now), outcome, error, job_id)).fetchone()
        if ended is None:
            return None
        attempt = attempt_row(ended)
        done, failed = _COUNTS.get(outcome, (0, 0))
        if attempt.worker_id is not None and (done or failed):
            day = now.date().isoformat()
            conn.execute(BUMP_STATS, (attempt.worker_id, day, done, failed))
        return attempt

    async def add(self, job: NewJob, *, assign_to: str | None = None) -> JobRow:
        at = text(job.created_at)
        stored_input = to_json(job.input)
        args = (job.prompt, stored_input, tags_text(job.tags), job.capability,
                job.provider, job.model, job.effort, job.urgency, job.priority, job.status,
                job.risk_tier, assign_to, job.assigned_to, job.max_attempts, job.timeout_s,
                job.created_by, at)

        def insert(conn: sqlite3.Connection) -> JobRow:
            row = new_job_row(tuples(conn, INSERT, args).fetchone(), job, stored_input, at)
            if row.assigned_at is not None and assign_to is not None:
                conn.execute(TOUCH_WORKER, (at, assign_to))
                self._counted(2, self.fleet.assigned, assign_to, at)
            return row

        return await self.db.write(insert)

    async def has_queued(self) -> bool:
        # A close reads this as its transaction commits (its caller asks next, to fill
        # the room it freed): the answer stands until this process writes again. A job
        # another process queues meanwhile is routed by that process's own pass, which
        # sees the room committed before it.
        known, db = self._queued, self.db
        if known is not None and known[0] == db.transactions and not db.in_transaction:
            return known[1]
        return bool(db.conn.execute(QUEUED_ANY).fetchone()[0])

    def _note_queued(self) -> None:
        """Inside a write transaction: read :meth:`has_queued`'s answer just before it
        commits (once per transaction), for after."""
        db = self.db
        if self._queued_in == db.transactions:
            return
        self._queued_in = transaction = db.transactions

        def read() -> None:
            answer = (transaction, bool(db.conn.execute(QUEUED_ANY).fetchone()[0]))

            def publish() -> None:
                self._queued = answer

            db.after_commit(publish)

        db.before_commit(read)

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
        rows = tuples(
            conn, f"SELECT {JOB_COLUMNS} FROM jobs {clause} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*args, limit, offset],
        ).fetchall()
        return self._with_history(rows), int(total)

    async def inbox(self, worker: str, status: str) -> list[JobRow]:
        sql = INBOX_HELD if status in HELD_STATUSES else INBOX
        return self._with_history(tuples(self.db.conn, sql, (worker, status)).fetchall())

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
        return [job_row(r) for r in tuples(self.db.conn, sql, [*args, limit])]

    def _counted(self, changes: int, apply: Callable[..., None], *args: Any) -> None:
        """``changes`` fleet changes were made: ``apply(*args)`` them to the fleet cache
        once committed (:meth:`FleetCache.expect`)."""
        self.fleet.expect(changes, lambda: apply(*args))

    async def assign(self, job_id: int, worker: str, risk_tier: str, now: datetime) -> bool:
        at = text(now)

        def assign(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                ASSIGN, {"worker": worker, "now": at, "id": job_id, "tier": risk_tier}).rowcount
            if not changed:
                return False
            conn.execute(TOUCH_WORKER, (at, worker))
            self._counted(2, self.fleet.assigned, worker, at)
            return True

        # At once, not in a shared commit: a routing pass (its only caller) must not yield
        # between reading the queue and assigning, or passes running side by side pick
        # the same jobs and lose races to each other (3x the CPU per job draining a
        # backlog, bench/queue_throughput.py --backlog).
        with self.db.transaction() as conn:
            return assign(conn)

    async def hold(self, job_id: int, worker: str | None, risk_tier: str, now: datetime
                   ) -> bool:
        with self.db.transaction() as conn:  # at once, as assign (a pass's other write)
            return bool(conn.execute(HOLD, (worker, risk_tier, text(now), job_id)).rowcount)

    async def claim(self, job_id: int, worker: str, now: datetime
                    ) -> tuple[JobRow | None, bool]:
        at = text(now)

        def claim(conn: sqlite3.Connection) -> tuple[JobRow | None, bool]:
            claimed = tuples(conn, CLAIM, (at, at, job_id, worker, worker)).fetchone()
            if claimed is None:
                return self._load(job_id), False
            started = tuples(conn, START_ATTEMPT, (job_id, job_id, worker, worker, at)).fetchone()
            row = job_row(claimed, self._history(job_id, attempt_row(started)))
            self._counted(1, self.fleet.claimed, worker, job_id, claimed[LEASE])
            return row, True

        return await self.db.write(claim)

    async def close(
        self, job_id: int, worker: str, status: str, result: Any, error: str | None,
        now: datetime,
    ) -> tuple[JobRow | None, bool]:
        stored, at = to_json(result), text(now)

        def close(conn: sqlite3.Connection) -> tuple[JobRow | None, bool]:
            closed = tuples(conn, CLOSE, (status, stored, error, at, job_id, worker)).fetchone()
            if closed is None:
                return self._load(job_id), False
            ended = self._end_attempt(job_id, status, error, now, at)
            row = job_row(closed, self._history(job_id, ended))
            self._counted(1, self.fleet.closed, worker, job_id)
            self._note_queued()
            return row, True

        return await self.db.write(close)

    async def renew(self, worker: str, now: datetime) -> int:
        def renew(conn: sqlite3.Connection) -> int:
            leases = conn.execute(RENEW, (text(now), worker)).fetchall()
            if leases:
                self._counted(len(leases), self.fleet.renewed, worker,
                              {job_id: lease for job_id, lease in leases})
            return len(leases)

        return await self.db.write(renew)

    async def release(self, worker: str, now: datetime) -> list[int]:
        def release(conn: sqlite3.Connection) -> list[int]:
            ids = [r[0] for r in conn.execute(RELEASE_IDS, (worker,))]
            if ids:
                conn.execute(RELEASE, (text(now), worker))
            self.fleet.drop()
            return ids

        return await self.db.write(release)

    async def expired(self, now: datetime, limit: int) -> list[int]:
        return [r[0] for r in self.db.conn.execute(EXPIRED, (text(now), limit))]

    async def requeue(
        self, job_id: int, now: datetime, *, outcome: str, error: str, only_if_expired: bool,
    ) -> tuple[JobRow | None, bool]:
        def requeue(conn: sqlite3.Connection) -> tuple[JobRow | None, bool]:
            row = tuples(conn, SELECT_ONE, (job_id,)).fetchone()
            if row is None or row[STATUS] != "running" or (
                only_if_expired and row[LEASE] >= text(now)
            ):
                return self._load(job_id), False
            exhausted = row[ATTEMPTS] >= row[MAX_ATTEMPTS]
            if exhausted:
                used, limit = row[ATTEMPTS], row[MAX_ATTEMPTS]
                final = f"{error}; gave up after {used} of {limit} attempts"
                conn.execute(GIVE_UP, (final, text(now), job_id))
            else:
                conn.execute(REQUEUE, (error, text(now), job_id))
            self._end_attempt(job_id, outcome, error, now)
            self.fleet.drop()
            return self._load(job_id), True

        return await self.db.write(requeue)

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

        def transition(conn: sqlite3.Connection) -> tuple[JobRow | None, bool]:
            changed = conn.execute(sql, [*args, text(now), job_id, *statuses]).rowcount
            if changed:
                if end_attempt is not None:
                    self._end_attempt(job_id, end_attempt[0], end_attempt[1], now)
                self.fleet.drop()
            return self._load(job_id), bool(changed)

        return await self.db.write(transition)

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
        def decide(conn: sqlite3.Connection) -> None:
            conn.execute(DECIDE, (
                decision.job_id, decision.decision, decision.actor, text(decision.at),
                decision.worker_id, decision.capability, decision.session_id,
            ))
            self.fleet.drop()

        await self.db.write(decide)

    async def session_grants(self) -> dict[str, frozenset[str]]:
        fleet = self.fleet
        fleet.check()
        if fleet.grants is None:
            grants: dict[str, set[str]] = {}
            for r in self.db.conn.execute(SESSION_GRANTS):
                grants.setdefault(r["worker_id"], set()).add(r["capability"])
            fleet.grants = {worker_id: frozenset(caps) for worker_id, caps in grants.items()}
        return dict(fleet.grants)
