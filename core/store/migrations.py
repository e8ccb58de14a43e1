"""Versioned schema migrations, applied in order on open. Never edit a released entry."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "dispatch history", """
        CREATE TABLE dispatches (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            prompt TEXT NOT NULL,
            text TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            latency_ms INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            attempts TEXT NOT NULL,
            error TEXT,
            truncated INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX dispatches_created ON dispatches (created_at DESC, id DESC);
        CREATE INDEX dispatches_provider ON dispatches (provider, created_at DESC);
        CREATE INDEX dispatches_status ON dispatches (status, created_at DESC);
    """),
    (2, "scheduled tasks, their runs, the scheduler lease", """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            schedule TEXT NOT NULL,
            prompt TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            enabled INTEGER NOT NULL,
            webhook TEXT,
            webhook_format TEXT NOT NULL,
            timezone TEXT NOT NULL,
            context TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            next_run_at TEXT,
            run_as TEXT
        );
        CREATE INDEX tasks_due ON tasks (enabled, next_run_at);
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            trigger TEXT NOT NULL,
            status TEXT NOT NULL,
            text TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            latency_ms INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            webhook TEXT,
            dispatch_id TEXT
        );
        CREATE INDEX runs_task ON runs (task_id, started_at DESC, id DESC);
        CREATE INDEX runs_running ON runs (task_id) WHERE status = 'running';
        CREATE TABLE scheduler_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
    """),
    (3, "tokens, one-time views, audit log", """
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            prefix TEXT NOT NULL,
            name TEXT NOT NULL,
            scopes TEXT NOT NULL,
            providers TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('user', 'worker')),
            worker_id TEXT,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
        CREATE INDEX tokens_created ON tokens (created_at DESC, id DESC);
        CREATE INDEX tokens_worker ON tokens (worker_id) WHERE worker_id IS NOT NULL;
        CREATE TABLE views (
            nonce_hash TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            secret TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            viewed_at TEXT
        );
        CREATE INDEX views_expires ON views (expires_at);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT,
            details TEXT
        );
        CREATE INDEX audit_at ON audit (at DESC, id DESC);
        CREATE INDEX audit_actor ON audit (actor, at DESC, id DESC);
        CREATE INDEX audit_target ON audit (target, at DESC, id DESC);
    """),
    (4, "job queue, workers, approvals, reviews, artifacts", """
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            capabilities TEXT NOT NULL,
            tags TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('active', 'paused', 'revoked')),
            presence TEXT,
            details TEXT,
            provider TEXT,
            capacity INTEGER NOT NULL DEFAULT 1,
            last_seen TEXT,
            session_id TEXT,
            session_started_at TEXT,
            resumed_at TEXT,
            last_assigned_at TEXT,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE UNIQUE INDEX workers_live_name ON workers (name) WHERE state != 'revoked';
        CREATE INDEX workers_name ON workers (name, created_at DESC);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prompt TEXT NOT NULL,
            input TEXT,
            tags TEXT NOT NULL,
            capability TEXT,
            provider TEXT,
            model TEXT,
            effort TEXT NOT NULL,
            urgency TEXT NOT NULL,
            priority INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('awaiting_approval', 'pending', 'running',
                'done', 'failed', 'escalated', 'cancelled')),
            risk_tier TEXT NOT NULL,
            assigned_to TEXT,
            assigned_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            timeout_s INTEGER NOT NULL,
            lease_expires_at TEXT,
            result TEXT,
            error TEXT,
            approved_by TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_inbox ON jobs (assigned_to, status, priority DESC, id);
        CREATE INDEX jobs_pending ON jobs (status, created_at);
        CREATE INDEX jobs_leases ON jobs (status, lease_expires_at);
        CREATE INDEX jobs_in_hand ON jobs (assigned_to, status)
            WHERE status IN ('pending', 'running') AND assigned_to IS NOT NULL;
        CREATE TABLE job_attempts (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            worker TEXT NOT NULL,
            worker_id TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            outcome TEXT,
            error TEXT,
            PRIMARY KEY (job_id, attempt)
        );
        CREATE INDEX job_attempts_failures ON job_attempts (worker_id, ended_at)
            WHERE outcome IN ('failed', 'lost');
        CREATE TABLE worker_stats (
            worker_id TEXT NOT NULL,
            day TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (worker_id, day)
        );
        CREATE TABLE approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            worker_id TEXT,
            capability TEXT,
            session_id TEXT
        );
        CREATE INDEX approvals_job ON approvals (job_id);
        CREATE INDEX approvals_session ON approvals (session_id) WHERE session_id IS NOT NULL;
        CREATE TABLE reviews (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            title TEXT NOT NULL,
            content TEXT NOT NULL,
            preview TEXT,
            target TEXT,
            job_id INTEGER,
            status TEXT NOT NULL DEFAULT 'open',
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX reviews_created ON reviews (created_at DESC, id DESC);
        CREATE INDEX reviews_status ON reviews (status, created_at DESC);
        CREATE TABLE artifacts (
            slug TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            filename TEXT,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            job_id INTEGER,
            review_id TEXT,
            created_by TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT
        );
        CREATE INDEX artifacts_job ON artifacts (job_id) WHERE job_id IS NOT NULL;
        CREATE INDEX artifacts_expires ON artifacts (expires_at) WHERE expires_at IS NOT NULL;
    """),
    # queue_version counts changes to the fleet — worker rows, jobs entering, moving within
    # or leaving a worker's hands, session grants — so a process can keep what routing reads
    # in memory and notice other processes' changes (core.store.fleet_cache). Triggers do
    # the counting, so every writer counts, whatever version of the code it runs.
    # jobs_pending: no query uses it (the queue is read through jobs_inbox), yet every
    # insert, claim and close paid to keep it.
    (5, "fleet change counter; drop the unused jobs_pending index", """
        CREATE TABLE queue_version (n INTEGER NOT NULL);
        INSERT INTO queue_version (n) VALUES (0);
        CREATE TRIGGER fleet_worker_added AFTER INSERT ON workers
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_worker_changed AFTER UPDATE ON workers
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_worker_removed AFTER DELETE ON workers
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_job_added AFTER INSERT ON jobs
        WHEN NEW.assigned_to IS NOT NULL AND NEW.status IN ('pending', 'running')
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_job_moved AFTER UPDATE OF status, assigned_to, lease_expires_at
        ON jobs
        WHEN (OLD.assigned_to IS NOT NULL AND OLD.status IN ('pending', 'running'))
          OR (NEW.assigned_to IS NOT NULL AND NEW.status IN ('pending', 'running'))
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_job_removed AFTER DELETE ON jobs
        WHEN OLD.assigned_to IS NOT NULL AND OLD.status IN ('pending', 'running')
        BEGIN UPDATE queue_version SET n = n + 1; END;
        CREATE TRIGGER fleet_grant_added AFTER INSERT ON approvals
        WHEN NEW.session_id IS NOT NULL
        BEGIN UPDATE queue_version SET n = n + 1; END;
        DROP INDEX jobs_pending;
    """),
    # Every job's commits (submit, claim, close) append each page they dirty to the WAL,
    # ~5 µs a page. A full (assigned_to, status, …) index spreads a worker's jobs over its
    # pending, running and done regions, so a close dirtied leaves in two of them; jobs in
    # hand now have a partial index of their own (a few dozen entries, one leaf) and a
    # worker's history an index that a job enters once, when assigned. Unassigned pending
    # jobs (empty while jobs are routed as they arrive) get a partial index for the
    # routing pass. Attempts, keyed by (job_id, attempt), become WITHOUT ROWID: one B-tree
    # instead of a table plus its key's index. Measured: a replay of the queue's statements
    # writes 12.5 → 9.6 WAL frames per commit; bench/queue_throughput.py part (a), one
    # producer, 26.2 → 20.9 pwrite calls per job.
    (6, "queue indexes a job's commits touch less; attempts without rowid", """
        DROP INDEX jobs_inbox;
        DROP INDEX jobs_in_hand;
        CREATE INDEX jobs_in_hand ON jobs (assigned_to, status, priority DESC, id)
            WHERE status IN ('pending', 'running') AND assigned_to IS NOT NULL;
        CREATE INDEX jobs_worker ON jobs (assigned_to, id);
        CREATE INDEX jobs_queued ON jobs (priority DESC, id)
            WHERE status = 'pending' AND assigned_to IS NULL;
        CREATE TABLE job_attempts_keyed (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            worker TEXT NOT NULL,
            worker_id TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            outcome TEXT,
            error TEXT,
            PRIMARY KEY (job_id, attempt)
        ) WITHOUT ROWID;
        INSERT INTO job_attempts_keyed
            (job_id, attempt, worker, worker_id, started_at, ended_at, outcome, error)
        SELECT job_id, attempt, worker, worker_id, started_at, ended_at, outcome, error
        FROM job_attempts;
        DROP TABLE job_attempts;
        ALTER TABLE job_attempts_keyed RENAME TO job_attempts;
        CREATE INDEX job_attempts_failures ON job_attempts (worker_id, ended_at)
            WHERE outcome IN ('failed', 'lost');
    """),
]
