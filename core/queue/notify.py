"""In-process change notifications, so edges wake promptly instead of polling.

A waiter takes the event for a key *before* it reads the store, then waits on it; a change
sets and drops the event, so nothing that happens between the read and the wait is missed.
Other processes sharing the store cannot set these events: waiters also re-read the store
at a bounded interval.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import anyio

__all__ = ["Changes", "inbox_key", "job_key"]


def inbox_key(worker: str) -> tuple[str, str]:
    return ("inbox", worker)


def job_key(job_id: int) -> tuple[str, int]:
    return ("job", job_id)


class Changes:
    """Keyed one-shot events: :meth:`watch` a key, :meth:`notify` it."""

    def __init__(self) -> None:
        self._events: dict[Hashable, anyio.Event] = {}
        self._watchers: dict[Hashable, int] = {}

    @contextmanager
    def watch(self, key: Hashable) -> Iterator[anyio.Event]:
        """The event the next :meth:`notify` of ``key`` sets (dropped when unwatched)."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = anyio.Event()
        self._watchers[key] = self._watchers.get(key, 0) + 1
        try:
            yield event
        finally:
            left = self._watchers[key] - 1
            if left:
                self._watchers[key] = left
            else:
                del self._watchers[key]
                if self._events.get(key) is event:
                    del self._events[key]

    def watching(self, key: Hashable) -> int:
        """How many waiters watch ``key`` right now (diagnostics, and tests that must know
        a long-poll is in flight)."""
        return self._watchers.get(key, 0)

    def notify(self, key: Hashable) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    async def wait(self, key: Hashable, timeout_s: float) -> bool:
        """Wait for the next notification of ``key``; False on timeout."""
        with self.watch(key) as event, anyio.move_on_after(timeout_s):
            await event.wait()
            return True
        return False
