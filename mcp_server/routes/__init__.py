"""HTTP route modules of the ``serve`` app; each exposes ``contribute(ctx) -> Contribution``."""

from __future__ import annotations

__all__: list[str] = []
