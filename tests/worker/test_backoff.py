"""Reconnect delays: exponential, capped, jittered between half and all of the nominal."""

from __future__ import annotations

import pytest

from channel.backoff import Backoff, backoff_delay


@pytest.mark.parametrize(("attempt", "jitter", "expected"), [
    (1, 0.0, 0.25),
    (1, 1.0, 0.5),
    (2, 1.0, 1.0),
    (3, 0.5, 1.5),
    (7, 1.0, 30.0),  # 0.5 · 2^6 = 32, capped
    (7, 0.0, 15.0),
    (10_000, 1.0, 30.0),  # no overflow
])
def test_backoff_delay(attempt: int, jitter: float, expected: float) -> None:
    assert backoff_delay(attempt, base=0.5, cap=30.0, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.5), (1, -0.1), (1, 1.5)])
def test_backoff_delay_refuses_nonsense(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError, match=r"attempt|jitter"):
        backoff_delay(attempt, jitter=jitter)


def test_the_policy_draws_its_jitter_from_the_source_it_is_given() -> None:
    draws = iter([0.0, 1.0, 0.5])
    policy = Backoff(base=1.0, cap=10.0, draw=lambda: next(draws))
    assert [policy(n) for n in (1, 2, 3)] == [0.5, 2.0, 3.0]
