"""The store interface the engine depends on: one small repository per domain."""

from __future__ import annotations

from typing import Protocol

from core.models import DispatchRecord

__all__ = ["DispatchRepo", "Store"]


class DispatchRepo(Protocol):
    async def add(self, record: DispatchRecord) -> None: ...

    async def get(self, dispatch_id: str) -> DispatchRecord | None: ...

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        provider: str | None = None,
        status: str | None = None,
    ) -> tuple[list[DispatchRecord], int]:
        """Newest first, with the total count matching the filters."""
        ...


class Store(Protocol):
    dispatches: DispatchRepo

    async def close(self) -> None: ...
