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


def new_id(prefix: str, *, ms: int | None = None) -> str:
    """A new ``prefix_ULID`` identifier, e.g. ``dsp_01JD3M…``."""
    now_ms = int(time.time() * 1000) if ms is None else ms
    return f"{prefix}_{_ulid(now_ms, os.urandom(10))}"
