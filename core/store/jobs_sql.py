"""The SQL of the job repository (:mod:`core.store.jobs`), in named blocks."""

from __future__ import annotations

__all__ = [
    "ASSIGN",
    "ATTEMPT_COLUMNS",
    "BUMP_STATS",
    "CLAIM",
    "CLOSE",
    "DECIDE",
    "END_ATTEMPT",
    "EXPIRED",
    "FAILURES_SINCE",
    "GIVE_UP",
    "HAS_ROOM",
    "HELD",
    "HELD_STATUSES",
    "HISTORY_MANY",
    "HISTORY_ONE",
    "HOLD",
    "INBOX",
    "INBOX_HELD",
    "INSERT",
    "JOB_COLUMNS",
    "LEASE_FROM",
    "QUEUED",
    "QUEUED_ANY",
    "RELEASE",
    "RELEASE_IDS",
    "RENEW",
    "REQUEUE",
    "SELECT_ONE",
    "SESSION_GRANTS",
    "START_ATTEMPT",
    "STATS_30D",
    "TOUCH_WORKER",
]

# Rows are read as plain tuples in these columns' order (decoded by position, which is
# several times cheaper than sqlite3.Row's lookups by name).
JOB_COLUMNS = """id, prompt, input, tags, capability, provider, model, effort, urgency, priority,
status, risk_tier, assigned_to, assigned_at, attempts, max_attempts, timeout_s,
lease_expires_at, result, error, approved_by, created_by, created_at, updated_at"""
ATTEMPT_COLUMNS = "job_id, attempt, worker, worker_id, started_at, ended_at, outcome, error"

# Jobs in a worker's hands, as the partial index jobs_in_hand (migration 6) states it:
# SQLite uses a partial index only for a query that carries its WHERE term as written, so
# a query for one of these statuses says this as well (and names the index, so that a
# query that could not use it fails loudly instead of scanning a worker's history).
HELD_STATUSES = ("pending", "running")
HELD = f"status IN ({', '.join(repr(status) for status in HELD_STATUSES)})"
# The worker must be active and below its capacity (jobs it holds, claimed or not).
HAS_ROOM = f"""
(SELECT COUNT(*) FROM jobs AS held INDEXED BY jobs_in_hand
 WHERE held.assigned_to = :worker AND held.{HELD})
< (SELECT capacity FROM workers WHERE name = :worker AND state = 'active')
"""  # noqa: S608
# Inserted already assigned to the worker (parameter 12) when it has room on the terms of
# ASSIGN and no older job is waiting unassigned (that one goes first), else with the 13th
# (set only for a job held for a worker's session approval). Positional parameters: binding
# seventeen named ones from a dict costs more than the insert itself.
INSERT = f"""
INSERT INTO jobs (prompt, input, tags, capability, provider, model, effort, urgency, priority,
                  status, risk_tier, assigned_to, assigned_at, max_attempts, timeout_s,
                  created_by, created_at, updated_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
       CASE WHEN placed THEN ?12 ELSE ?13 END, CASE WHEN placed THEN ?17 END,
       ?14, ?15, ?16, ?17, ?17
FROM (SELECT ?12 IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_queued
                             WHERE status = 'pending' AND assigned_to IS NULL)
             AND {HAS_ROOM.replace(":worker", "?12")} AS placed)
RETURNING id, assigned_to, assigned_at
"""  # noqa: S608
QUEUED_ANY = """
SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_queued
               WHERE status = 'pending' AND assigned_to IS NULL)
"""
SELECT_ONE = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"  # noqa: S608
HISTORY_ONE = f"SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = ? ORDER BY attempt"  # noqa: S608
HISTORY_MANY = (f"SELECT {ATTEMPT_COLUMNS} FROM job_attempts "  # noqa: S608
                "WHERE job_id IN ({marks}) ORDER BY job_id, attempt")
INBOX = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE assigned_to = ? AND status = ? ORDER BY priority DESC, id
"""  # noqa: S608
INBOX_HELD = f"""
SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_in_hand
WHERE assigned_to = ? AND {HELD} AND status = ? ORDER BY priority DESC, id
"""  # noqa: S608
QUEUED = f"""
SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_queued
WHERE status = 'pending' AND assigned_to IS NULL {{filters}}
ORDER BY priority DESC, id LIMIT ?
"""  # noqa: S608
ASSIGN = f"""
UPDATE jobs SET assigned_to = :worker, assigned_at = :now, risk_tier = :tier, updated_at = :now
WHERE id = :id AND status = 'pending' AND assigned_to IS NULL AND {HAS_ROOM}
"""  # noqa: S608
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
RETURNING {JOB_COLUMNS}
"""  # noqa: S608
START_ATTEMPT = f"""
INSERT INTO job_attempts (job_id, attempt, worker, worker_id, started_at)
VALUES (?, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM job_attempts WHERE job_id = ?), ?,
        (SELECT id FROM workers WHERE name = ? AND state != 'revoked'), ?)
RETURNING {ATTEMPT_COLUMNS}
"""  # noqa: S608
CLOSE = f"""
UPDATE jobs SET status = ?, result = ?, error = ?, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND status = 'running' AND assigned_to = ?
RETURNING {JOB_COLUMNS}
"""  # noqa: S608
# A job has at most one open attempt: the one its current claim started.
END_ATTEMPT = f"""
UPDATE job_attempts SET ended_at = ?, outcome = ?, error = ?
WHERE job_id = ? AND outcome IS NULL RETURNING {ATTEMPT_COLUMNS}
"""  # noqa: S608
BUMP_STATS = """
INSERT INTO worker_stats (worker_id, day, done, failed) VALUES (?, ?, ?, ?)
ON CONFLICT (worker_id, day) DO UPDATE SET done = done + excluded.done,
                                           failed = failed + excluded.failed
"""
RENEW = f"""
UPDATE jobs INDEXED BY jobs_in_hand SET lease_expires_at = {LEASE_FROM}
WHERE assigned_to = ? AND {HELD} AND status = 'running'
RETURNING id, lease_expires_at
"""  # noqa: S608
RELEASE_IDS = f"""
SELECT id FROM jobs INDEXED BY jobs_in_hand
WHERE assigned_to = ? AND {HELD} AND status = 'pending'
"""  # noqa: S608
RELEASE = f"""
UPDATE jobs INDEXED BY jobs_in_hand SET assigned_to = NULL, assigned_at = NULL, updated_at = ?
WHERE assigned_to = ? AND {HELD} AND status = 'pending'
"""  # noqa: S608
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
