"""Write-behind: rows queued on the event loop, committed in batches on a worker thread.

Dispatch history is written on every request; committing each row on the event loop costs
more than the rest of the engine together (see bench/dispatch_overhead.py). Here a caller
queues its row and goes on; a background task commits everything queued so far in one
transaction on a thread (sqlite3 releases the GIL while it works), through a connection of
its own so it never interleaves with the loop's transactions. Readers stay consistent:
:meth:`drain` waits until everything queued is committed, and :meth:`close` writes what is
left. Without a running background task, :meth:`submit` writes at once.

Once woken, the writer lets rows gather for up to :data:`GATHER_S` before it commits: with
one call at a time (a user's session, stdio MCP) each row would otherwise cost its own
thread hop and transaction, and waking the worker thread competes with the next request for
the CPU (−18 % p50 for ``mr_dispatch`` over stdio, −19 % REST p50 at concurrency 1;
bench/mcp_roundtrip.py, bench/rest_dispatch.py). Only readers wait on a commit, and
:meth:`drain` cuts the gathering short for them.

While rows keep coming, the writer keeps committing every :data:`GATHER_S` on its own clock
and only a gathering that brings nothing sends it back to sleep: a row that wakes the writer
makes it a task step queued ahead of the caller's own response (the dispatch that queued
the row is usually about to answer), so rows arriving at a steady pace should not each wake
it. The gathering is a plain sleep that only a reader cancels: a timeout ending a wait would
instead be delivered as a cancellation, nearly as costly as the thread hop, every batch.

The queue is bounded: :meth:`put` makes its caller wait for a commit once more than
:data:`MAX_QUEUED` rows are waiting. A saturated loop (echo dispatches back to back) used to
starve the writer, queue every row of a burst — 39,000 of 40,000 — and keep the memory they
took (Python does not return its partly used arenas: +57 MB RSS for a 40,000-dispatch burst
through ``modelreins serve``); it also widened what a crash would lose to the whole burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

__all__ = ["Statement", "WriteBehind"]

Row = TypeVar("Row")

log = logging.getLogger("modelreins.store")

GATHER_S = 0.02
"""Longest a woken writer waits for more rows before committing, unless drained."""

MAX_QUEUED = 1000
"""Rows queued at most before :meth:`WriteBehind.put` waits for them to be committed."""


@dataclass(frozen=True)
class Statement:
    """One queued write: a statement and its parameters. Repositories that share a store's
    writer (history, audit) queue these, so one worker and one connection commit them all."""

    sql: str
    params: Any
    """The statement's parameters, or the value ``encode`` makes them of."""
    key: str | None = None
    """What the submitting repository serves from memory until the row is committed."""
    encode: Callable[[Any], tuple[Any, ...]] | None = None
    """Builds the parameters from ``params`` on the writer's thread, off the caller's path
    (a dispatch's history row: its JSON columns and timestamps)."""

    def bound(self) -> tuple[Any, ...]:
        """The parameters to execute the statement with."""
        return self.params if self.encode is None else self.encode(self.params)


class WriteBehind(Generic[Row]):
    def __init__(
        self,
        write: Callable[[Sequence[Row]], None],
        on_written: Callable[[Sequence[Row]], None] = lambda rows: None,
        *,
        gather_s: float = GATHER_S,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._write = write
        self._gather_s = gather_s
        self._max_queued = max_queued
        self._on_written = on_written
        self._queue: list[Row] = []
        self._wake = anyio.Event()
        self._hurry = False
        """A reader is waiting: commit without gathering."""
        self._gathering: anyio.CancelScope | None = None
        self._idle = anyio.Event()
        self._idle.set()
        self._running = False

    @property
    def queued(self) -> int:
        """Rows waiting for a commit."""
        return len(self._queue)

    def submit(self, row: Row) -> None:
        if not self._running:
            self._write_now([row])
            return
        self._queue.append(row)
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    async def put(self, row: Row) -> None:
        """Queue ``row``; past :data:`MAX_QUEUED` queued rows, wait until they are committed
        (backpressure: the writer sets the pace once it falls that far behind)."""
        self.submit(row)
        if len(self._queue) > self._max_queued:
            await self.drain()

    async def drain(self) -> None:
        """Return once every row submitted so far is committed."""
        if not self._idle.is_set():
            self._hurry = True
            if self._gathering is not None:
                self._gathering.cancel()
        await self._idle.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Commit queued rows until cancelled; ``await task_group.start(wb.run)``."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                while self._wake.is_set():  # rows came during the last round: another one
                    self._wake = anyio.Event()
                    await self._gather()
                    await self._commit()
        finally:
            self._running = False

    async def _gather(self) -> None:
        if not self._hurry:
            with anyio.CancelScope() as self._gathering:
                await anyio.sleep(self._gather_s)
            self._gathering = None
        self._hurry = False

    async def _commit(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            # Shielded: once taken off the queue, a batch is written even if we are being
            # cancelled (shutdown), or those rows would be lost.
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(self._write, batch)
                except Exception:
                    # Keep serving: a failed history write must not stop dispatch.
                    log.exception("lost %d rows: the batch write failed", len(batch))
                self._on_written(batch)
        if not self._queue:
            self._idle.set()

    def close(self) -> None:
        """Write whatever is still queued (synchronously); later submits write at once."""
        self._running = False
        batch, self._queue = self._queue, []
        if batch:
            self._write_now(batch)
        self._idle.set()

    def _write_now(self, rows: Sequence[Row]) -> None:
        try:
            self._write(rows)
        finally:
            self._on_written(rows)
