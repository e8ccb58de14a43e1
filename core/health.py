"""Provider health: derived from recent outcomes (dispatch attempts and explicit pings)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from core.models import ProviderHealth

__all__ = ["HealthTracker", "Outcome", "derive_status"]

WINDOW = 5
DOWN_AFTER = 3


@dataclass(frozen=True)
class Outcome:
    ok: bool
    at: datetime
    error: str | None = None


def derive_status(recent: Sequence[bool]) -> ProviderHealth:
    """``recent`` oldest first. Unknown with no evidence; down after 3 straight failures;
    degraded while any of the last 5 failed; healthy otherwise."""
    if not recent:
        return "unknown"
    window = list(recent)[-WINDOW:]
    if not any(window[-DOWN_AFTER:]):
        return "down"
    return "healthy" if all(window) else "degraded"


class HealthTracker:
    """In-process memory of the last few outcomes per provider."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._outcomes: dict[str, deque[Outcome]] = {}

    def record(self, provider: str, *, ok: bool, error: str | None = None,
               at: datetime | None = None) -> None:
        ring = self._outcomes.setdefault(provider, deque(maxlen=WINDOW))
        ring.append(Outcome(ok=ok, at=at or self.clock.now(), error=error))

    def status(self, provider: str) -> tuple[ProviderHealth, datetime | None, str | None]:
        ring = self._outcomes.get(provider)
        if not ring:
            return "unknown", None, None
        last_error = next((o.error for o in reversed(ring) if not o.ok), None)
        return derive_status([o.ok for o in ring]), ring[-1].at, last_error
