"""ModelReins engine: config, providers, dispatch, tasks, queue, auth and storage."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
