"""Identifiers: ``<prefix>_<ulid>`` strings, sortable by creation time."""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(ms: int, entropy: bytes) -> str:
    value = (ms << 80) | int.from_bytes(entropy, "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


_last = (0, 0)


def new_id(prefix: str) -> str:
    """A new ``prefix_ULID`` identifier, e.g. ``dsp_01JD3M…``.

    Monotonic within this process: ids made in the same millisecond increment the random
    part, so ordering by id is ordering by creation even at sub-millisecond rates."""
    global _last
    now_ms = int(time.time() * 1000)
    last_ms, last_rand = _last
    if now_ms <= last_ms:
        now_ms, rand = last_ms, last_rand + 1
    else:
        rand = int.from_bytes(os.urandom(10), "big") >> 1
    _last = (now_ms, rand)
    return f"{prefix}_{_ulid(now_ms, rand.to_bytes(10, 'big'))}"
