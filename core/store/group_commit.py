"""Group commit: concurrent write transactions share one ``COMMIT``.

A commit is the costliest statement of a queue transition (it appends every page the
transaction changed to the WAL, two writes per page: ~85 µs on a plain disk, more than all
the statements of a claim together), and each job makes three: submit, claim, close.
Under load many coroutines write at once, so here a write is a *logical* transaction — a
plain synchronous function of the connection, the body a ``with db.transaction()`` block
would have — queued by its caller, and every write queued in the same turns of the event
loop runs in a single ``BEGIN IMMEDIATE`` … ``COMMIT``. The first write of a batch leads
it: it lets the tasks that are ready to run queue theirs (:data:`TURNS` turns), then
commits them all; no task of its own has to be woken for that. Every caller awaits the
commit, so a write is durable (it survives ``kill -9``) before it returns.

Each write is all-or-nothing on its own: one whose body raises rolls the transaction back
and the others run again without it (cheaper than a ``SAVEPOINT`` around each, two more
statements per write, since failures are rare), so its caller gets the exception and the
others commit. If the ``COMMIT`` itself fails, nothing of the batch is written and every
caller of it gets the error. A caller cancelled before its batch commits withdraws its
write.

The batch runs synchronously on the loop: the transaction is never open across an
``await``, so the loop's readers never see a half-done batch. What a body wants done once
its changes are committed (in-memory caches kept in step with the database) it registers
with :meth:`~core.store.sqlite.Database.after_commit`; those run right after the
``COMMIT``, in order, before any caller resumes — and not at all for a rolled-back body.

Batching needs :meth:`GroupCommit.serve` running (the store's background work); without
it — an in-memory store, a test that never starts the background, a write made inside an
open transaction — a write runs at once in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["GroupCommit"]

T = TypeVar("T")

TURNS = 2
"""Turns of the loop a batch stays open: one lets the tasks already runnable queue their
writes; a second also takes those woken meanwhile (a worker whose job was just submitted),
about doubling the writes per commit in bench/queue_throughput.py."""


class _Write(Generic[T]):
    """One queued logical transaction and, once its batch is committed, its outcome."""

    __slots__ = ("body", "done", "error", "result")

    def __init__(self, body: Callable[[sqlite3.Connection], T]) -> None:
        self.body = body
        self.error: BaseException | None = None
        self.result: T | None = None
        self.done: asyncio.Future[None] | None = None
        """What its caller awaits, unless it leads the batch (and commits it itself)."""

    def wake(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class _Batch:
    """The writes queued while one batch is open."""

    __slots__ = ("writes",)

    def __init__(self, first: _Write[object]) -> None:
        self.writes = [first]


class GroupCommit:
    """Commits the logical write transactions queued on ``db`` in the same turns together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.commits = 0
        """Batches committed (or attempted) so far: what tests and benchmarks observe."""
        self._batch: _Batch | None = None
        self._serving = False

    @property
    def queued(self) -> int:
        """Writes waiting for the next commit."""
        return 0 if self._batch is None else len(self._batch.writes)

    async def write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in a write transaction shared with every other write queued in the
        same turns of the loop; its result (or exception) once the transaction committed.

        A caller cancelled before its batch commits withdraws its write (it never runs);
        one cancelled after the commit has had its write made."""
        if not self._serving or self.db.in_transaction:
            with self.db.transaction() as conn:
                return body(conn)
        write: _Write[T] = _Write(body)
        batch = self._batch
        if batch is None:
            return await self._lead(write)
        batch.writes.append(write)  # type: ignore[arg-type]
        # A future of the loop's own per write, not a shared anyio.Event: every write
        # but a batch's first waits once, and cancelling one waiter must not end the
        # others' wait (as cancelling a shared future would).
        write.done = asyncio.get_running_loop().create_future()
        try:
            await write.done
        except BaseException:
            if self._batch is batch:
                batch.writes.remove(write)  # type: ignore[arg-type]
            raise
        return write.outcome()

    async def _lead(self, write: _Write[T]) -> T:
        # The first write opens the batch, lets the tasks that are ready to run queue
        # theirs, then commits them all.
        batch = self._batch = _Batch(write)  # type: ignore[arg-type]
        try:
            for _ in range(TURNS):
                await asyncio.sleep(0)  # a turn, without anyio's per-call backend lookup
        except BaseException:
            if self._batch is batch:
                batch.writes.remove(write)  # type: ignore[arg-type]
                self.flush()
            raise
        if self._batch is batch:
            self.flush()
        return write.outcome()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                    ) -> None:
        """Commit writes in groups until cancelled (``await task_group.start(gc.serve)``);
        then, and until served again, each write commits at once."""
        self._serving = True
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            self._serving = False
            self.flush()

    def flush(self) -> None:
        """Run and commit every queued write now, then wake their callers."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            if batch.writes:
                self._commit(batch.writes)
        finally:
            for write in batch.writes:
                write.wake()

    def _commit(self, batch: list[_Write[object]]) -> None:
        # No savepoint per write (two more statements each): a write whose body raises
        # rolls the transaction back, and the others run again without it — bodies are
        # plain functions of the database, so running them again is what running them
        # without the failed one would have been.
        db = self.db
        while batch:
            self.commits += 1
            failed: _Write[object] | None = None
            committed = db.committed
            try:
                db.begin()
                try:
                    for write in batch:
                        failed = write
                        write.result = write.body(db.conn)
                    failed = None
                except BaseException:
                    db.rollback()
                    raise
                db.commit()
            except Exception as exc:
                if db.committed != committed:
                    raise  # an after-commit hook failed: the writes are made, not failed
                if failed is None:
                    # BEGIN or COMMIT failed: nothing of the batch was written, and every
                    # caller learns it.
                    for write in batch:
                        write.error = exc
                    return
                failed.error = exc
                batch = [write for write in batch if write is not failed]
                continue
            except BaseException as exc:
                for write in batch:
                    write.error = exc
                raise
            return
