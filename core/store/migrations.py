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
]
