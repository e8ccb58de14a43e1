"""Identifiers: ``<prefix>_<ulid>`` strings, sortable by creation time."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _ulid(ms: int, rand: int) -> str:
    """48 bits of milliseconds then 80 random bits, as 26 Crockford base-32 digits."""
    # 26 digits hold 130 bits: the top two are zero. b32encode works in 40-bit groups, so
    # encode 160 bits (32 digits) and drop the first 6, which are zero too: one C call
    # instead of a 26-step loop of big-integer divisions.
    value = (ms << 80) | rand
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_TO_CROCKFORD).decode()


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
    return f"{prefix}_{_ulid(now_ms, rand)}"
