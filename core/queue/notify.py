"""In-process change notifications, so edges wake promptly instead of polling.

A waiter takes the :class:`Watch` for a key *before* it reads the store, then waits on it; a
change fires and drops the watch, so nothing that happens between the read and the wait is
missed. A notification may carry what changed (a job just assigned): a waiter whose watch
was fired only by such notifications has all it needs, and skips reading the store again.
Other processes sharing the store cannot fire these watches: waiters also re-read the
store at a bounded interval.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel

__all__ = ["Changes", "Watch", "inbox_key", "job_key"]


def inbox_key(worker: str) -> tuple[str, str]:
    return ("inbox", worker)


def job_key(job_id: int) -> tuple[str, int]:
    return ("job", job_id)


class Watch:
    """The next notification of one key, shared by everyone watching it meanwhile."""

    __slots__ = ("_waiters", "complete", "fired", "items")

    def __init__(self) -> None:
        # Made on the first wait only: most watches of a busy inbox end without waiting.
        self._waiters: list[asyncio.Future[None]] | None = None
        self.fired = False
        self.items: list[object] = []
        """What the notifications carried."""
        self.complete = True
        """False once a notification carried nothing: :attr:`items` is not all that changed."""

    def fire(self, item: object | None) -> None:
        if item is None:
            self.complete = False
        else:
            self.items.append(item)
        self.fired = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout_s: float = math.inf) -> bool:
        """Return once the watch has fired (True) or ``timeout_s`` has passed (False)."""
        if self.fired:
            await anyio.lowlevel.checkpoint()
            return True
        # A future and a timer of the loop's own: the cancel scope of anyio.move_on_after
        # and an anyio.Event cost several times more, and every long-poll waits once per
        # job it gets. Cancelling the task (an enclosing cancel scope) ends the wait.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        timer = loop.call_later(timeout_s, _expire, waiter) if timeout_s < math.inf else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.remove(waiter)
        return self.fired


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Changes:
    """Keyed one-shot watches: :meth:`watch` a key, :meth:`notify` it."""

    def __init__(self) -> None:
        self._watches: dict[Hashable, Watch] = {}
        self._watchers: dict[Hashable, int] = {}

    @contextmanager
    def watch(self, key: Hashable) -> Iterator[Watch]:
        """The watch the next :meth:`notify` of ``key`` fires (dropped when unwatched)."""
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = Watch()
        self._watchers[key] = self._watchers.get(key, 0) + 1
        try:
            yield watch
        finally:
            left = self._watchers[key] - 1
            if left:
                self._watchers[key] = left
            else:
                del self._watchers[key]
                if self._watches.get(key) is watch:
                    del self._watches[key]

    def watching(self, key: Hashable) -> int:
        """How many waiters watch ``key`` right now (diagnostics, and tests that must know
        a long-poll is in flight)."""
        return self._watchers.get(key, 0)

    def notify(self, key: Hashable, item: object | None = None) -> None:
        """Fire ``key``'s watch, telling its waiters ``item`` (if given) changed."""
        watch = self._watches.pop(key, None)
        if watch is not None:
            watch.fire(item)

    def notify_all(self) -> None:
        watches, self._watches = self._watches, {}
        for watch in watches.values():
            watch.fire(None)

    async def wait(self, key: Hashable, timeout_s: float) -> bool:
        """Wait for the next notification of ``key``; False on timeout."""
        with self.watch(key) as watch:
            return await watch.wait(timeout_s)
