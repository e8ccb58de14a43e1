"""WAL checkpoints off the event loop.

Every commit appends the pages it changed to the WAL; a checkpoint copies them back into the
database file and fsyncs both files. By default SQLite checkpoints on the committing
connection once the WAL passes 1,000 pages — here that is the event loop's connection,
every few dozen queue jobs, and the fsyncs stall the loop for milliseconds each time.

While the store's background work runs, :class:`Checkpointer` runs a PASSIVE checkpoint
every :data:`INTERVAL_S` on a connection of its own, in a worker thread: PASSIVE never
waits for (nor blocks) writers, so the loop goes on committing meanwhile. An interval in
which the store's connections changed nothing is skipped: an idle server (a ``modelreins
mcp`` waiting for its session's next call) does not hop to a thread ten times a second.
The store's own connections keep an automatic checkpoint only as a backstop at
:data:`BACKSTOP_PAGES`: a PASSIVE checkpoint racing a steady stream of commits never reaches
the WAL's last frame, and SQLite restarts the WAL from its beginning only after a checkpoint
that does. The backstop finds nearly every page copied already, so it is short — and, being
rare, so is what its fsyncs cost the loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

__all__ = ["BACKSTOP_PAGES", "DEFAULT_PAGES", "INTERVAL_S", "Checkpointer"]

INTERVAL_S = 0.1
BACKSTOP_PAGES = 10_000
"""About 40 MB of WAL (4 KiB pages) between the checkpoints that restart it."""
DEFAULT_PAGES = 1000
"""SQLite's own ``wal_autocheckpoint``, restored when the checkpointer stops."""


class Checkpointer:
    """Checkpoints through ``conn`` (its own connection) on behalf of ``writers``."""

    def __init__(self, conn: sqlite3.Connection, writers: Sequence[sqlite3.Connection]
                 ) -> None:
        self.conn = conn
        self.writers = writers
        self._running = anyio.Lock()
        self._seen: int | None = None
        """The writers' changes counted at the last checkpoint (None: none yet)."""

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No background checkpoint runs inside the block: a checkpoint that must empty the
        WAL (erasing a secret) would otherwise find this one in its way, for as long as it
        takes to fsync on a busy disk."""
        async with self._running:
            yield

    def _autocheckpoint(self, pages: int) -> None:
        for writer in self.writers:
            writer.execute(f"PRAGMA wal_autocheckpoint={pages}")

    def checkpoint(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    async def step(self) -> bool:
        """Checkpoint (in a worker thread) if the writers changed rows since the last one;
        whether it did."""
        changes = sum(writer.total_changes for writer in self.writers)
        if changes == self._seen:
            return False
        self._seen = changes
        async with self._running:
            await anyio.to_thread.run_sync(self.checkpoint)
        return True

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Checkpoint every :data:`INTERVAL_S` that saw writes, until cancelled."""
        self._autocheckpoint(BACKSTOP_PAGES)
        task_status.started()
        try:
            while True:
                await anyio.sleep(INTERVAL_S)
                await self.step()
        finally:
            self._autocheckpoint(DEFAULT_PAGES)

    def close(self) -> None:
        self.conn.close()
