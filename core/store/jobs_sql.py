"""The SQL of the job repository (:mod:`core.store.jobs`), in named blocks."""

from __future__ import annotations

__all__ = [
    "ASSIGN",
    "BUMP_STATS",
    "CLAIM",
    "CLOSE",
    "DECIDE",
    "END_ATTEMPT",
    "EXPIRED",
    "FAILURES_SINCE",
    "GIVE_UP",
    "HAS_ROOM",
    "HISTORY_MANY",
    "HISTORY_ONE",
    "HOLD",
    "INBOX",
    "INSERT",
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

# The worker must be active and below its capacity (jobs it holds, claimed or not).
HAS_ROOM = """
(SELECT COUNT(*) FROM jobs AS held
 WHERE held.assigned_to = :worker AND held.status IN ('pending', 'running'))
< (SELECT capacity FROM workers WHERE name = :worker AND state = 'active')
"""
# Inserted already assigned to :worker when it has room (on the terms of ASSIGN), else with
# :assigned_to (set only for a job held for a worker's session approval).
INSERT = f"""
INSERT INTO jobs (prompt, input, tags, capability, provider, model, effort, urgency, priority,
                  status, risk_tier, assigned_to, assigned_at, max_attempts, timeout_s,
                  created_by, created_at, updated_at)
SELECT :prompt, :input, :tags, :capability, :provider, :model, :effort, :urgency, :priority,
       :status, :risk_tier, CASE WHEN room THEN :worker ELSE :assigned_to END,
       CASE WHEN room THEN :now END, :max_attempts, :timeout_s, :created_by, :now, :now
FROM (SELECT {HAS_ROOM} AS room)
RETURNING *
"""  # noqa: S608
QUEUED_ANY = "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'pending' AND assigned_to IS NULL)"
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
RETURNING *
"""  # noqa: S608
START_ATTEMPT = """
INSERT INTO job_attempts (job_id, attempt, worker, worker_id, started_at)
VALUES (?, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM job_attempts WHERE job_id = ?), ?,
        (SELECT id FROM workers WHERE name = ? AND state != 'revoked'), ?)
RETURNING *
"""
CLOSE = """
UPDATE jobs SET status = ?, result = ?, error = ?, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND status = 'running' AND assigned_to = ?
RETURNING *
"""
# A job has at most one open attempt: the one its current claim started.
END_ATTEMPT = """
UPDATE job_attempts SET ended_at = ?, outcome = ?, error = ?
WHERE job_id = ? AND outcome IS NULL RETURNING *
"""
BUMP_STATS = """
INSERT INTO worker_stats (worker_id, day, done, failed) VALUES (?, ?, ?, ?)
ON CONFLICT (worker_id, day) DO UPDATE SET done = done + excluded.done,
                                           failed = failed + excluded.failed
"""
RENEW = f"""
UPDATE jobs SET lease_expires_at = {LEASE_FROM}
WHERE assigned_to = ? AND status = 'running'
RETURNING id, lease_expires_at
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
