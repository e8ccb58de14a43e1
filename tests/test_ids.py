from __future__ import annotations

import re

import pytest

from core.ids import _ulid, new_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def digit_by_digit(ms: int, rand: int) -> str:
    value = (ms << 80) | rand
    digits = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        digits.append(CROCKFORD[digit])
    return "".join(reversed(digits))


@pytest.mark.parametrize(("ms", "rand"), [
    (0, 0),
    (0, 1),
    (1, 0),
    (1_469_918_176_385, 0),
    (1_700_000_000_000, 0x1234_5678_9ABC_DEF0_1357),
    (2**48 - 1, 2**80 - 1),
])
def test_ulid_is_26_crockford_digits_of_time_then_randomness(ms: int, rand: int) -> None:
    assert _ulid(ms, rand) == digit_by_digit(ms, rand)


def test_ulid_of_the_spec_example_timestamp() -> None:
    assert _ulid(1_469_918_176_385, 0).startswith("01ARYZ6S41")


def test_new_ids_have_the_prefix_and_sort_in_creation_order() -> None:
    ids = [new_id("dsp") for _ in range(1000)]
    assert all(re.fullmatch(r"dsp_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
