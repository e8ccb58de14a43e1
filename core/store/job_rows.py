"""Stored job and attempt rows to and from :class:`~core.store.queue.JobRow`.

Every job a worker takes is decoded several times (inserted, read from the inbox, claimed,
closed), so rows are read as plain tuples in the order of
:data:`~core.store.jobs_sql.JOB_COLUMNS` and unpacked by position: several times cheaper
than ``sqlite3.Row``, whose lookups by name compare column names one by one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from core.store.codec import instant, opt_instant, tags
from core.store.queue import AttemptRow, JobRow, NewJob

__all__ = [
    "ASSIGNED_TO",
    "ATTEMPTS",
    "ID",
    "LEASE",
    "MAX_ATTEMPTS",
    "STATUS",
    "attempt_row",
    "from_json",
    "job_row",
    "new_job_row",
    "to_json",
    "tuples",
]

# Positions in JOB_COLUMNS of what repositories test before decoding a whole row.
ID, STATUS, ASSIGNED_TO, ATTEMPTS, MAX_ATTEMPTS, LEASE = 0, 10, 12, 14, 15, 17


def tuples(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
    """``conn.execute(sql, args)`` with rows as plain tuples."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(sql, args)


_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""What ``json.dumps(value, ensure_ascii=False)`` uses, made once: ``dumps`` makes a new
one per call whenever an option is given (every job's result passes through here)."""


def to_json(value: Any) -> str | None:
    return _ENCODER.encode(value) if value is not None else None


def from_json(raw: str | None) -> Any:
    return json.loads(raw) if raw is not None else None


def attempt_row(r: Sequence[Any]) -> AttemptRow:
    job_id, attempt, worker, worker_id, started_at, ended_at, outcome, error = r
    return AttemptRow(job_id, attempt, worker, worker_id, instant(started_at),
                      opt_instant(ended_at), outcome, error)


def job_row(r: Sequence[Any], history: tuple[AttemptRow, ...] = ()) -> JobRow:
    (id_, prompt, input_, tags_, capability, provider, model, effort, urgency, priority,
     status, risk_tier, assigned_to, assigned_at, attempts, max_attempts, timeout_s, lease,
     result, error, approved_by, created_by, created_at, updated_at) = r
    return JobRow(
        id_, prompt, from_json(input_), tags(tags_), capability, provider, model, effort,
        urgency, priority, status, risk_tier, assigned_to, opt_instant(assigned_at), attempts,
        max_attempts, timeout_s, opt_instant(lease), from_json(result), error, approved_by,
        created_by, instant(created_at), instant(updated_at), history,
    )


def new_job_row(inserted: Sequence[Any], job: NewJob, stored_input: str | None, at: str
                ) -> JobRow:
    """The row just inserted for ``job`` (``inserted``: its ``id, assigned_to,
    assigned_at``), as reading it back would give it."""
    job_id, assigned_to, assigned_at = inserted
    moment = instant(at)
    return JobRow(
        job_id, job.prompt, from_json(stored_input), tuple(job.tags), job.capability,
        job.provider, job.model, job.effort, job.urgency, job.priority, job.status,
        job.risk_tier, assigned_to, opt_instant(assigned_at), 0, job.max_attempts,
        job.timeout_s, None, None, None, None, job.created_by, moment, moment,
    )
