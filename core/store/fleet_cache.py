"""What routing reads on every pass, kept in memory between passes.

Each submission routes against the fleet: every live worker row, what each worker holds
and the session grants. Read from SQLite that is ~100 µs per job, most of it decoding rows
that have not changed. Here those reads are served from memory while the store is provably
unchanged, and re-read otherwise. Each long-poll asks too: a worker's inbox of jobs to claim
is empty exactly when it holds none assigned, which is what a worker back for more finds.

*Unchanged* is told by one counter row, ``queue_version``, that triggers increment on every
change to the fleet: a worker row added or changed, a job entering, moving within or
leaving a worker's hands, a session grant (migration 5). Triggers count every writer's
changes — other processes', and those of processes still running older code. Before a
cached value is served, the counter is read (one row, ~2 µs): any value but the one the
cache was read at drops the cache.

This process's own changes to the fleet change the counter too. The per-job ones (assign,
claim, close, lease renewal) are applied to the cache instead of dropping it: a writer
declares how many changes it made (:meth:`FleetCache.expect`), and just before its
transaction commits — holding the write lock, once however many writes share the
transaction (:mod:`core.store.group_commit`) — the counter is read back: if it moved by
exactly the changes declared, nobody else changed the fleet since the cache was read, and
the changes are applied once committed. Rarer changes simply drop the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from core.store.codec import instant, opt_instant
from core.store.jobs_sql import HELD
from core.store.queue import InHand, WorkerRow

if TYPE_CHECKING:
    from core.store.sqlite import Database

__all__ = ["FleetCache"]

VERSION = "SELECT n FROM queue_version"
# Per job rather than grouped: the cache keeps each running job's lease, so that closing
# one tells the worker's latest lease without asking the store again.
HELD_JOBS = f"""
SELECT id, assigned_to, status, lease_expires_at FROM jobs INDEXED BY jobs_in_hand
WHERE {HELD} AND assigned_to IS NOT NULL
"""  # noqa: S608


_NOTHING = InHand()


@dataclass
class _Hands:
    """One worker's jobs in hand: how many assigned and unclaimed, the running ones' leases."""

    assigned: int = 0
    leases: dict[int, datetime | None] = field(default_factory=dict)
    shown: InHand | None = None
    """The last :class:`InHand` given out, reused until something changes (callers compare
    snapshots by identity first)."""

    def view(self) -> InHand:
        if self.shown is None:
            leases = [lease for lease in self.leases.values() if lease is not None]
            self.shown = InHand(running=len(self.leases), assigned=self.assigned,
                                lease_until=max(leases, default=None))
        return self.shown


class FleetCache:
    """Live worker rows, jobs in hand per worker and session grants, exact as of the
    ``queue_version`` counter value :attr:`version`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.version: int | None = None
        self.workers: dict[str, WorkerRow] | None = None
        """Live workers by name, in name order."""
        self.grants: dict[str, frozenset[str]] | None = None
        self._hands: dict[str, _Hands] | None = None
        self._shown: dict[str, InHand] | None = None
        """What :meth:`in_hand` last gave out, until one of :attr:`_hands` changes."""
        self._expected: list[tuple[int, Callable[[], None]]] = []
        self._expected_in = -1
        """The transaction (:attr:`Database.transactions`) :attr:`_expected` belongs to."""

    def check(self) -> None:
        """Drop everything if the fleet changed since it was read."""
        n = self.db.conn.execute(VERSION).fetchone()[0]
        if n != self.version:
            self.drop()
            self.version = n

    def drop(self) -> None:
        self.workers = self.grants = self._hands = self._shown = None

    def expect(self, changes: int, apply: Callable[[], None]) -> None:
        """Inside a write transaction that made ``changes`` fleet changes: ``apply`` them
        to the cache once committed, if they are all the counter moved by since the cache
        was read (checked once per transaction, just before it commits; otherwise the
        cache is dropped). If the transaction rolls back nothing is applied, and
        :attr:`version` may be ahead of the counter: the next :meth:`check` drops the
        cache."""
        db = self.db
        if self._expected_in != db.transactions:
            self._expected_in, self._expected = db.transactions, []
            db.before_commit(self._settle)
        self._expected.append((changes, apply))

    def _settle(self) -> None:
        expected, self._expected = self._expected, []
        n = self.db.conn.execute(VERSION).fetchone()[0]
        moved = sum(changes for changes, _ in expected)
        if self.version is not None and n == self.version + moved:
            for _, apply in expected:
                self.db.after_commit(apply)
        else:
            self.drop()
        self.version = n

    def in_hand(self, *, checked: bool = False) -> dict[str, InHand]:
        """Per worker name, what it holds (``checked``: :meth:`check` was just called)."""
        if not checked:
            self.check()
        if self._shown is None:
            self._shown = {name: hands.view() for name, hands in self._held().items()
                           if hands.assigned or hands.leases}
        return dict(self._shown)

    def held_by(self, worker: str) -> InHand:
        """What ``worker`` holds; call right after :meth:`check`."""
        hands = self._held().get(worker)
        return _NOTHING if hands is None else hands.view()

    def _held(self) -> dict[str, _Hands]:
        if self._hands is None:
            self._hands = {}
            for job_id, worker, status, lease in self.db.conn.execute(HELD_JOBS):
                hands = self._hands.setdefault(worker, _Hands())
                if status == "running":
                    hands.leases[job_id] = opt_instant(lease)
                else:
                    hands.assigned += 1
        return self._hands

    def _hands_of(self, worker: str) -> _Hands | None:
        if self._hands is None:
            return None
        hands = self._hands.setdefault(worker, _Hands())
        hands.shown = self._shown = None
        return hands

    def assigned(self, worker: str, at: str) -> None:
        """A job went to ``worker``, and its ``last_assigned_at`` became ``at``."""
        hands = self._hands_of(worker)
        if hands is not None:
            hands.assigned += 1
        row = self.workers.get(worker) if self.workers is not None else None
        if row is not None and self.workers is not None:
            # As dataclasses.replace would, without its introspection (once per job).
            self.workers[worker] = WorkerRow(**{**vars(row), "last_assigned_at": instant(at)})

    def claimed(self, worker: str, job_id: int, lease: str | None) -> None:
        hands = self._hands_of(worker)
        if hands is not None:
            hands.assigned -= 1
            hands.leases[job_id] = opt_instant(lease)

    def renewed(self, worker: str, leases: dict[int, str]) -> None:
        hands = self._hands_of(worker)
        if hands is not None:
            hands.leases.update((job_id, instant(lease)) for job_id, lease in leases.items())

    def closed(self, worker: str, job_id: int) -> None:
        hands = self._hands_of(worker)
        if hands is not None:
            hands.leases.pop(job_id, None)
