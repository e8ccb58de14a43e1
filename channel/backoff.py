"""Reconnect delays: exponential, capped, jittered — a pure function of the attempt number.

Equal jitter: half of the exponential delay is fixed, the other half random, so a fleet of
workers that lost the same server spreads its reconnects out without any worker waiting
less than half the nominal delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, jitter: float = 0.5
) -> float:
    """Seconds to wait after failure number ``attempt`` (1-based), before jitter is drawn.

    ``jitter`` is the random draw in ``[0, 1]``: the result lies between half and all of
    ``min(cap, base·2^(attempt-1))``.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a draw in [0, 1], got {jitter}")
    try:
        nominal = min(cap, base * 2.0 ** (attempt - 1))
    except OverflowError:
        nominal = cap
    return nominal / 2 + nominal / 2 * jitter


@dataclass(frozen=True)
class Backoff:
    """A reconnect policy: :func:`backoff_delay` with its parameters and a source of jitter."""

    base: float = 0.5
    cap: float = 30.0
    draw: Callable[[], float] = field(default=random.random, compare=False)

    def __call__(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.base, cap=self.cap, jitter=self.draw())
