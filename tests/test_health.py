from __future__ import annotations

import pytest

from core.health import derive_status


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], "unknown"),
        ([True], "healthy"),
        ([False], "down"),
        ([True, False], "degraded"),
        ([False, True], "degraded"),
        ([True, False, False, False], "down"),
        ([False, False, False, True], "degraded"),
        ([False, True, True, True, True, True], "healthy"),
        ([True] * 5, "healthy"),
    ],
)
def test_derive_status(outcomes: list[bool], expected: str) -> None:
    assert derive_status(outcomes) == expected
