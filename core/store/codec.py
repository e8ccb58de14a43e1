"""Fast, memoized encoding of instants and tag lists for the queue's hot paths.

Each job passes through the store several times a second under load and every routing
pass re-reads every worker, so the same stored texts are decoded again and again; they
decode to immutable values, which are memoized. Output matches :func:`core.clock.iso`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from core.clock import from_iso

__all__ = ["instant", "opt_instant", "opt_text", "tags", "tags_text", "text"]

_ZERO = timedelta(0)


_last: tuple[datetime, str] = (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00.000Z")
"""The instant :func:`text` wrote last, and its text."""


def text(moment: datetime) -> str:
    """``2026-11-21T17:07:26.123Z`` — what :func:`core.clock.iso` gives, without strftime.
    A job's transitions within one millisecond store the same instant: the last text
    made is kept for the next."""
    global _last
    last = _last
    if moment == last[0]:
        return last[1]
    given = moment
    if moment.tzinfo is not UTC and moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    made = moment.isoformat(timespec="milliseconds")[:23] + "Z"
    _last = (given, made)
    return made


def opt_text(moment: datetime | None) -> str | None:
    return text(moment) if moment is not None else None


instant = lru_cache(maxsize=16384)(from_iso)


def opt_instant(value: str | None) -> datetime | None:
    return instant(value) if value else None


@lru_cache(maxsize=4096)
def tags(value: str) -> tuple[str, ...]:
    return tuple(json.loads(value))


@lru_cache(maxsize=4096)
def tags_text(value: tuple[str, ...]) -> str:
    """A tag list as stored: the inverse of :func:`tags`."""
    return json.dumps(list(value))
