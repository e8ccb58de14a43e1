"""Scheduled tasks in SQLite.

``next_run_at`` is an ISO string of fixed width, so text order is time order and the
``(enabled, next_run_at)`` index answers "what is due next" with one seek. A task's last
run is read from ``runs`` when the task is, never copied onto it, so it cannot drift.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import from_iso, iso
from core.errors import Conflict
from core.store.schedule import Claimed, DueTask, Fire
from core.tasks.models import Task, TaskContext

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["SqliteTasks"]

INSERT = """
INSERT INTO tasks (id, name, schedule, prompt, provider, model, enabled, webhook, webhook_format,
                   timezone, context, created_at, updated_at, next_run_at, run_as)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT = """
SELECT t.*, r.started_at AS last_run_at, r.status AS last_status
FROM tasks t
LEFT JOIN runs r ON r.id = (
    SELECT id FROM runs WHERE task_id = t.id ORDER BY started_at DESC, id DESC LIMIT 1
)
"""
SELECT_ONE = SELECT + "WHERE t.id = ?"
SELECT_BY_NAME = SELECT + "WHERE t.name = ?"
SELECT_ALL = SELECT + "ORDER BY t.name, t.id"
# A claimed task is a snapshot for its run: its last run does not matter there.
SELECT_CLAIMED = "SELECT *, NULL AS last_run_at, NULL AS last_status FROM tasks WHERE id = ?"
UPDATE = """
UPDATE tasks SET name = ?, schedule = ?, prompt = ?, provider = ?, model = ?, enabled = ?,
                 webhook = ?, webhook_format = ?, timezone = ?, context = ?, updated_at = ?,
                 run_as = ?, next_run_at = CASE WHEN ? THEN ? ELSE next_run_at END
WHERE id = ?
"""
SET_ENABLED = "UPDATE tasks SET enabled = ?, next_run_at = ?, updated_at = ? WHERE id = ?"
DELETE_RUNS = "DELETE FROM runs WHERE task_id = ?"
DELETE = "DELETE FROM tasks WHERE id = ?"
NEXT_DUE = """
SELECT next_run_at FROM tasks
WHERE enabled = 1 AND next_run_at IS NOT NULL
ORDER BY next_run_at LIMIT 1
"""
DUE = """
SELECT id, schedule, timezone, next_run_at FROM tasks
WHERE enabled = 1 AND next_run_at <= ?
ORDER BY next_run_at LIMIT ?
"""
CLAIM = "UPDATE tasks SET next_run_at = ? WHERE id = ? AND enabled = 1 AND next_run_at = ?"


def _opt_iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _opt_time(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _run_as_text(run_as: frozenset[str] | None) -> str | None:
    return json.dumps(sorted(run_as)) if run_as is not None else None


def _run_as(text: str | None) -> frozenset[str] | None:
    return frozenset(json.loads(text)) if text is not None else None


def _fields(task: Task) -> tuple[Any, ...]:
    return (
        task.name, task.schedule, task.prompt, task.provider, task.model, int(task.enabled),
        task.webhook, task.webhook_format, task.timezone,
        json.dumps(task.context.wire()) if task.context else None,
    )


def _task(r: sqlite3.Row) -> Task:
    return Task(
        id=r["id"], name=r["name"], schedule=r["schedule"], prompt=r["prompt"],
        provider=r["provider"], model=r["model"], enabled=bool(r["enabled"]),
        webhook=r["webhook"], webhook_format=r["webhook_format"], timezone=r["timezone"],
        context=TaskContext.model_validate(json.loads(r["context"])) if r["context"] else None,
        created_at=from_iso(r["created_at"]), updated_at=from_iso(r["updated_at"]),
        next_run_at=_opt_time(r["next_run_at"]), last_run_at=_opt_time(r["last_run_at"]),
        last_status=r["last_status"],
    )


def _name_taken(name: str) -> Conflict:
    problem = f"a task named '{name}' already exists"
    return Conflict(f"name: {problem}", details=[{"path": "name", "problem": problem}])


class SqliteTasks:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _one(self, query: str, arg: str) -> Task | None:
        row = self.db.conn.execute(query, (arg,)).fetchone()
        return _task(row) if row else None

    async def add(self, task: Task, *, run_as: frozenset[str] | None) -> None:
        try:
            self.db.conn.execute(INSERT, (
                task.id, *_fields(task), iso(task.created_at), iso(task.updated_at),
                _opt_iso(task.next_run_at), _run_as_text(run_as),
            ))
        except sqlite3.IntegrityError as exc:
            if "tasks.name" not in str(exc):
                raise
            raise _name_taken(task.name) from exc

    async def get(self, task_id: str) -> Task | None:
        return self._one(SELECT_ONE, task_id)

    async def by_name(self, name: str) -> Task | None:
        return self._one(SELECT_BY_NAME, name)

    async def all(self) -> list[Task]:
        return [_task(r) for r in self.db.conn.execute(SELECT_ALL).fetchall()]

    async def update(
        self, task: Task, *, run_as: frozenset[str] | None, reschedule: bool
    ) -> Task | None:
        params = (*_fields(task), iso(task.updated_at), _run_as_text(run_as), int(reschedule),
                  _opt_iso(task.next_run_at), task.id)
        try:
            with self.db.transaction() as conn:
                conn.execute(UPDATE, params)
                return self._one(SELECT_ONE, task.id)
        except sqlite3.IntegrityError as exc:
            if "tasks.name" not in str(exc):
                raise
            raise _name_taken(task.name) from exc

    async def set_enabled(
        self, task_id: str, enabled: bool, next_run_at: datetime | None, at: datetime
    ) -> Task | None:
        with self.db.transaction() as conn:
            conn.execute(SET_ENABLED, (int(enabled), _opt_iso(next_run_at), iso(at), task_id))
            return self._one(SELECT_ONE, task_id)

    async def delete(self, task_id: str) -> bool:
        with self.db.transaction() as conn:
            conn.execute(DELETE_RUNS, (task_id,))
            return conn.execute(DELETE, (task_id,)).rowcount > 0

    async def next_due(self) -> datetime | None:
        row = self.db.conn.execute(NEXT_DUE).fetchone()
        return from_iso(row[0]) if row else None

    async def due(self, now: datetime, limit: int) -> list[DueTask]:
        rows = self.db.conn.execute(DUE, (iso(now), limit)).fetchall()
        return [DueTask(r["id"], r["schedule"], r["timezone"], from_iso(r["next_run_at"]))
                for r in rows]

    async def claim(self, fires: Sequence[Fire]) -> list[Claimed]:
        won: list[Claimed] = []
        with self.db.transaction() as conn:
            for fire in fires:
                params = (_opt_iso(fire.next_run_at), fire.task_id, iso(fire.due))
                if conn.execute(CLAIM, params).rowcount:
                    row = conn.execute(SELECT_CLAIMED, (fire.task_id,)).fetchone()
                    won.append(Claimed(_task(row), _run_as(row["run_as"])))
        return won
