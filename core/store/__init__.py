"""Storage behind a narrow interface; SQLite (WAL) is the embedded default."""

from __future__ import annotations

from core.store.base import DispatchRepo, Store
from core.store.sqlite import SqliteStore, open_sqlite

__all__ = ["DispatchRepo", "SqliteStore", "Store", "open_sqlite"]
