"""Group commit: writes queued in one turn of the loop share one transaction and one
COMMIT, each is all-or-nothing on its own, and every caller sees its write committed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from core.store.sqlite import Database, connect


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = connect(tmp_path / "g.db")
    opened.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    opened.conn.execute("CREATE TABLE item (name TEXT NOT NULL, "
                        "parent INTEGER REFERENCES parent (id))")
    yield opened
    opened.close()


def _statements(db: Database) -> list[str]:
    """Every statement the connection runs from now on."""
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    return seen


def _insert(name: str) -> Callable[[sqlite3.Connection], str]:
    def body(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO item (name) VALUES (?)", (name,))
        return name
    return body


def _items(db: Database) -> list[str]:
    return sorted(r[0] for r in db.conn.execute("SELECT name FROM item"))


async def _write_all(db: Database, bodies: list[Callable[[sqlite3.Connection], str]]
                     ) -> list[str | BaseException]:
    """Run every body as a write of its own task, all started in the same turn."""
    outcomes: list[str | BaseException] = [""] * len(bodies)

    async def one(i: int) -> None:
        try:
            outcomes[i] = await db.write(bodies[i])
        except Exception as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        await tg.start(db.group.serve)
        async with anyio.create_task_group() as writers:
            for i in range(len(bodies)):
                writers.start_soon(one, i)
        tg.cancel_scope.cancel()
    return outcomes


async def test_writes_queued_in_the_same_turn_share_one_commit(db: Database) -> None:
    statements = _statements(db)
    outcomes = await _write_all(db, [_insert(f"i{n}") for n in range(5)])
    assert outcomes == ["i0", "i1", "i2", "i3", "i4"]
    assert _items(db) == ["i0", "i1", "i2", "i3", "i4"]
    assert statements.count("COMMIT") == 1
    assert db.group.commits == 1


async def test_a_failing_write_rolls_back_alone_and_the_others_commit(db: Database) -> None:
    committed: list[str] = []

    def with_hook(name: str) -> Callable[[sqlite3.Connection], str]:
        def body(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO item (name) VALUES (?)", (name,))
            db.after_commit(lambda: committed.append(name))
            if name == "bad":
                raise ValueError("refused")
            return name
        return body

    statements = _statements(db)
    outcomes = await _write_all(db, [with_hook("a"), with_hook("bad"), with_hook("c")])
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], ValueError)
    assert _items(db) == ["a", "c"]
    # What a write registers to run once committed runs once, and never for the failed one.
    assert committed == ["a", "c"]
    assert statements.count("COMMIT") == 1


async def test_a_failed_commit_fails_every_write_of_the_batch_and_writes_nothing(
    db: Database,
) -> None:
    committed: list[str] = []

    def orphan(conn: sqlite3.Connection) -> str:
        # A deferred constraint: the statement passes, the COMMIT fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("INSERT INTO item (name, parent) VALUES ('orphan', 42)")
        db.after_commit(lambda: committed.append("orphan"))
        return "orphan"

    outcomes = await _write_all(db, [_insert("a"), orphan, _insert("c")])
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert _items(db) == []
    assert committed == []
    assert not db.conn.in_transaction
    # The connection is usable afterwards.
    assert await _write_all(db, [_insert("d")]) == ["d"]


async def test_without_the_background_a_write_commits_at_once(db: Database) -> None:
    statements = _statements(db)
    assert await db.write(_insert("now")) == "now"
    assert statements == ["BEGIN IMMEDIATE", "INSERT INTO item (name) VALUES ('now')",
                          "COMMIT"]
    assert db.group.commits == 0
    assert _items(db) == ["now"]


async def test_a_write_cancelled_before_its_commit_never_happens(db: Database) -> None:
    ran: list[str] = []

    def body(conn: sqlite3.Connection) -> str:
        ran.append("body")
        return "done"

    async with anyio.create_task_group() as tg:
        await tg.start(db.group.serve)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as writer:
                writer.start_soon(db.write, body)
                while not db.group.queued:
                    await anyio.lowlevel.checkpoint()
                scope.cancel()
        assert db.group.queued == 0
        tg.cancel_scope.cancel()
    assert ran == []


async def test_writes_queued_when_the_background_stops_are_committed(db: Database) -> None:
    outcome: list[str] = []

    async def write() -> None:
        outcome.append(await db.write(_insert("late")))

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as background:
            async with anyio.create_task_group() as serving:
                await serving.start(db.group.serve)
                tg.start_soon(write)
                while not db.group.queued:
                    await anyio.lowlevel.checkpoint()
                background.cancel()
    assert outcome == ["late"]
    assert _items(db) == ["late"]
    # Stopped: writes commit at once again.
    assert await db.write(_insert("after")) == "after"
    assert _items(db) == ["after", "late"]


async def test_cancelling_one_waiting_write_leaves_the_others_of_its_batch_waiting(
    db: Database,
) -> None:
    outcomes: dict[str, str] = {}

    async def write(name: str) -> None:
        outcomes[name] = await db.write(_insert(name))

    async with anyio.create_task_group() as tg:
        await tg.start(db.group.serve)
        async with anyio.create_task_group() as writers:
            writers.start_soon(write, "leader")
            writers.start_soon(write, "other")
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as cancelled:
                    cancelled.start_soon(write, "cancelled")
                    while db.group.queued < 3:
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()
        tg.cancel_scope.cancel()
    # The cancelled write is withdrawn (or, if its batch committed first, made); either
    # way the writes sharing its batch are committed and their callers told so.
    assert outcomes == {"leader": "leader", "other": "other"}
    assert {"leader", "other"} <= set(_items(db))
