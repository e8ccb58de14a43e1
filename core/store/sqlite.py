"""SQLite store: one connection in WAL mode, migrations on open, a repository per domain.

Statements run synchronously on the event loop thread: each is a short indexed query or a
single-row write (tens of microseconds in WAL mode), which is cheaper than a thread hop.
Writers that read-then-write take ``BEGIN IMMEDIATE`` so several processes sharing one file
serialize on SQLite's lock (``busy_timeout``) rather than fail. Connections of one process
first take a shared in-process lock (the *write gate*): SQLite's busy handler polls, sleeping
1, 2, 5, 10… ms between tries, so the loop waiting on the history writer's brief commit
would sleep for milliseconds; the gate hands over the moment it is released.

Repositories write through :meth:`Database.write`: while the store's background work runs,
writes made at the same time share one transaction and one commit
(:mod:`core.store.group_commit`).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import anyio
from anyio.abc import TaskStatus

from core.store.audit import SqliteAudit
from core.store.checkpoint import Checkpointer
from core.store.dispatches import SqliteDispatches
from core.store.fleet_cache import FleetCache
from core.store.group_commit import GroupCommit
from core.store.jobs import SqliteJobs
from core.store.lease import SqliteLeases
from core.store.migrations import MIGRATIONS
from core.store.reviews import SqliteArtifacts, SqliteReviews
from core.store.runs import SqliteRuns
from core.store.tasks import SqliteTasks
from core.store.tokens import SqliteTokens
from core.store.views import SqliteViews
from core.store.workers import SqliteWorkers
from core.store.write_behind import Statement, WriteBehind

__all__ = ["Database", "SqliteStore", "commit_statements", "open_sqlite"]

T = TypeVar("T")


class Database:
    """A thin wrapper over one ``sqlite3.Connection`` (autocommit; explicit transactions).
    Databases of one file in one process share a ``gate`` (see the module docstring).
    Writes made through :meth:`write` share commits (:mod:`core.store.group_commit`)."""

    def __init__(self, conn: sqlite3.Connection, gate: threading.Lock | None = None) -> None:
        self.conn = conn
        self.gate = gate or threading.Lock()
        self.group = GroupCommit(self)
        self.transactions = 0
        """Write transactions begun so far: tells one transaction from the next."""
        self.committed = 0
        """Write transactions committed so far."""
        self._depth = 0
        self._before: list[Callable[[], object]] = []
        self._after: list[Callable[[], object]] = []

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    async def write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in a write transaction (shared with concurrent writes when the
        group commit is served); its result once committed. ``body`` may run more than
        once (:mod:`core.store.group_commit`): it must change nothing but the database,
        and what it registers with :meth:`before_commit` and :meth:`after_commit`."""
        return await self.group.write(body)

    def before_commit(self, hook: Callable[[], object]) -> None:
        """Inside a transaction: call ``hook`` (still inside it) just before it commits."""
        if not self._depth:
            raise RuntimeError("before_commit outside a transaction")
        self._before.append(hook)

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Inside a transaction: call ``hook`` once it has committed (never if it rolls
        back)."""
        if not self._depth:
            raise RuntimeError("after_commit outside a transaction")
        self._after.append(hook)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error); nests as a no-op."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.begin()
        try:
            yield self.conn
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> None:
        """Start a write transaction (the gate, then ``BEGIN IMMEDIATE``)."""
        self.gate.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.gate.release()
            raise
        self._depth = 1
        self.transactions += 1

    def commit(self) -> None:
        """Run the before-commit hooks, ``COMMIT``, then the after-commit hooks. If
        anything fails the transaction is rolled back."""
        try:
            for hook in self._before:
                hook()
            self.conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a deferred constraint, a busy database) leaves the
            # transaction open: it is rolled back like any other failure.
            self.rollback()
            raise
        self.committed += 1
        self._end()
        hooks, self._after = self._after, []
        for hook in hooks:
            hook()

    def rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._after.clear()
            self._end()

    def _end(self) -> None:
        self._before.clear()
        self._depth = 0
        self.gate.release()

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            # By membership, not by MAX: a lower version that lands after a higher one
            # (built in parallel) must still run on databases that already have the higher.
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
            for version, _name, sql in sorted(MIGRATIONS):
                if version not in applied:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    applied.add(version)
        return int(max(applied, default=0))

    def close(self) -> None:
        self.conn.close()


def _statements(script: str) -> list[str]:
    # Split on ";", except inside a trigger's BEGIN … END: a statement ends where SQLite
    # says it is complete.
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";"))
            pending = ""
    return statements


def connect(path: Path | str, gate: threading.Lock | None = None) -> Database:
    if str(path) != ":memory:":
        # The file holds unviewed one-time secrets; SQLite gives -wal/-shm the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=10.0
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    # Freed space is zeroed, so an erased secret (a viewed one-time token) leaves no bytes
    # behind in the database file; the WAL side is handled by a checkpoint after erasing.
    conn.execute("PRAGMA secure_delete=ON")
    return Database(conn, gate)


def commit_statements(db: Database, batch: Sequence[Statement]) -> None:
    """Run ``batch`` in one transaction, in order (runs of one statement as ``executemany``)."""
    with db.transaction() as conn:
        for sql, run in itertools.groupby(batch, key=lambda s: s.sql):
            conn.executemany(sql, [s.bound() for s in run])


class SqliteStore:
    """The embedded store. ``":memory:"`` gives a private in-memory one for tests.

    While :meth:`background` runs, concurrent writes share commits
    (:mod:`core.store.group_commit`). With a ``writer`` (a second connection on the same
    file), history and audit rows are committed in batches on a worker thread; without
    one, at once.
    With a ``checkpointer`` too, WAL checkpoints also leave the event loop while
    :meth:`background` runs (:mod:`core.store.checkpoint`).
    """

    def __init__(self, db: Database, writer: Database | None = None,
                 checkpointer: Database | None = None) -> None:
        self.db = db
        self._writer = writer
        self._checkpointer = None if checkpointer is None else Checkpointer(
            checkpointer.conn, [d.conn for d in (db, writer) if d is not None])
        self.writes: WriteBehind[Statement] = WriteBehind(
            lambda batch: commit_statements(writer or db, batch), self._written)
        self.dispatches = SqliteDispatches(db, self.writes)
        self.tokens = SqliteTokens(db)
        self.views = SqliteViews(
            db, pause_checkpoints=None if self._checkpointer is None else self._checkpointer.paused)
        self.audit = SqliteAudit(db, self.writes)
        self.tasks = SqliteTasks(db)
        self.runs = SqliteRuns(db)
        self.leases = SqliteLeases(db)
        fleet = FleetCache(db)
        self.jobs = SqliteJobs(db, fleet)
        self.workers = SqliteWorkers(db, fleet)
        self.reviews = SqliteReviews(db)
        self.artifacts = SqliteArtifacts(db)

    def _written(self, batch: Sequence[Statement]) -> None:
        self.dispatches.written(batch)

    async def background(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                         ) -> None:
        """Background work until cancelled: committing queue writes in groups
        (:mod:`core.store.group_commit`), queued history and audit rows, checkpoints."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.db.group.serve)
            if self._writer is not None:
                # With one connection a worker thread's transaction would interleave with
                # the loop's on it, so history and audit rows are written at once instead.
                await tg.start(self.writes.run)
            if self._checkpointer is not None:
                await tg.start(self._checkpointer.run)
            task_status.started()

    async def close(self) -> None:
        self.db.group.flush()
        self.writes.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._writer is not None:
            self._writer.close()
        self.db.close()


def open_sqlite(path: Path | str) -> SqliteStore:
    db = connect(path)
    db.migrate()
    if str(path) == ":memory:":
        return SqliteStore(db)
    # A second connection commits history and audit rows off the event loop
    # (core.store.write_behind), a third checkpoints (core.store.checkpoint). Neither holds
    # one-time secrets, so they skip secure_delete's zeroing work.
    writer, checkpointer = connect(path, db.gate), connect(path, db.gate)
    for helper in (writer, checkpointer):
        helper.conn.execute("PRAGMA secure_delete=OFF")
    return SqliteStore(db, writer, checkpointer)
