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
]
