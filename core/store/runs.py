"""Task runs in SQLite: started atomically (no overlap per task), finished in place."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import from_iso, iso
from core.models import ErrorInfo, Usage
from core.store.schedule import Busy
from core.tasks.models import Run, RunWebhook

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteRuns"]

INSERT = """
INSERT INTO runs (id, task_id, trigger, status, text, provider, model, input_tokens,
                  output_tokens, latency_ms, error, started_at, finished_at, webhook, dispatch_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
TASK_EXISTS = "SELECT 1 FROM tasks WHERE id = ?"
ABANDON = """
UPDATE runs SET status = 'error', error = ?, finished_at = ?
WHERE task_id = ? AND status = 'running' AND started_at < ?
"""
RUNNING = """
SELECT id, started_at FROM runs WHERE task_id = ? AND status = 'running'
ORDER BY started_at DESC LIMIT 1
"""
FINISH = """
UPDATE runs SET status = ?, text = ?, provider = ?, model = ?, input_tokens = ?,
                output_tokens = ?, latency_ms = ?, error = ?, finished_at = ?, webhook = ?,
                dispatch_id = ?
WHERE id = ?
"""
SET_WEBHOOK = "UPDATE runs SET webhook = ? WHERE id = ?"
SELECT_ONE = "SELECT * FROM runs WHERE id = ?"
COUNT = "SELECT COUNT(*) FROM runs WHERE task_id = ?"
PAGE = """
SELECT * FROM runs WHERE task_id = ? ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?
"""


def _json(model: ErrorInfo | RunWebhook | None) -> str | None:
    return json.dumps(model.wire()) if model is not None else None


def _outcome(run: Run) -> tuple[Any, ...]:
    return (
        run.status, run.text, run.provider, run.model, run.usage.input_tokens,
        run.usage.output_tokens, run.latency_ms, _json(run.error),
        iso(run.finished_at) if run.finished_at else None, _json(run.webhook), run.dispatch_id,
    )


def _row(run: Run) -> tuple[Any, ...]:
    status, text, provider, model, tokens_in, tokens_out, latency, error, finished, webhook, \
        dispatch_id = _outcome(run)
    return (run.run_id, run.task_id, run.trigger, status, text, provider, model, tokens_in,
            tokens_out, latency, error, iso(run.started_at), finished, webhook, dispatch_id)


def _run(r: sqlite3.Row) -> Run:
    return Run(
        run_id=r["id"], task_id=r["task_id"], trigger=r["trigger"], status=r["status"],
        text=r["text"], provider=r["provider"], model=r["model"],
        usage=Usage(input_tokens=r["input_tokens"], output_tokens=r["output_tokens"]),
        latency_ms=r["latency_ms"],
        error=ErrorInfo.model_validate(json.loads(r["error"])) if r["error"] else None,
        started_at=from_iso(r["started_at"]),
        finished_at=from_iso(r["finished_at"]) if r["finished_at"] else None,
        webhook=RunWebhook.model_validate(json.loads(r["webhook"])) if r["webhook"] else None,
        dispatch_id=r["dispatch_id"],
    )


class SqliteRuns:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, runs: Sequence[Run], *, stale_before: datetime,
                    abandoned: ErrorInfo) -> list[Run | Busy | None]:
        with self.db.transaction() as conn:
            return [self._start(conn, run, iso(stale_before), _json(abandoned))
                    for run in runs]

    @staticmethod
    def _start(conn: sqlite3.Connection, run: Run, stale_before: str, abandoned: str | None
               ) -> Run | Busy | None:
        if conn.execute(TASK_EXISTS, (run.task_id,)).fetchone() is None:
            return None
        conn.execute(ABANDON, (abandoned, iso(run.started_at), run.task_id, stale_before))
        running = conn.execute(RUNNING, (run.task_id,)).fetchone()
        if running is not None:
            return Busy(running["id"], from_iso(running["started_at"]))
        conn.execute(INSERT, _row(run))
        return run

    async def add(self, run: Run) -> None:
        self.db.conn.execute(INSERT, _row(run))

    async def finish(self, run: Run) -> None:
        self.db.conn.execute(FINISH, (*_outcome(run), run.run_id))

    async def set_webhook(self, run_id: str, webhook: RunWebhook) -> None:
        self.db.conn.execute(SET_WEBHOOK, (_json(webhook), run_id))

    async def get(self, run_id: str) -> Run | None:
        row = self.db.conn.execute(SELECT_ONE, (run_id,)).fetchone()
        return _run(row) if row else None

    async def page(self, task_id: str, *, limit: int, offset: int) -> tuple[list[Run], int]:
        conn = self.db.conn
        total = conn.execute(COUNT, (task_id,)).fetchone()[0]
        rows = conn.execute(PAGE, (task_id, limit, offset)).fetchall()
        return [_run(r) for r in rows], int(total)
