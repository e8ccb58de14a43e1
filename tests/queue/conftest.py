"""Fixtures for the queue: an in-memory store, a hand-moved clock, a recording audit sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from core.clock import FakeClock
from core.config import QueueConfig
from core.principal import Principal
from core.queue import QueueService
from core.queue.workers import CapabilityInput
from core.store import SqliteStore, open_sqlite

ADMIN = Principal(name="alice", kind="user", scopes=frozenset({"admin"}))
READER = Principal(name="reader", kind="user", scopes=frozenset({"jobs:read", "jobs:write"}))
WORKER_TOKEN = Principal(name="w1", kind="worker", scopes=frozenset({"admin"}))
CONFIG = QueueConfig(presence_window_s=30, default_timeout_s=600, max_attempts=3)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class RecordingAudit:
    """An audit sink that keeps entries in a list."""

    entries: list[tuple[str, str, str | None, dict[str, Any] | None]] = field(
        default_factory=list)

    async def record(self, actor: str, action: str, target: str | None,
                     details: dict[str, Any] | None = None) -> None:
        self.entries.append((actor, action, target, details))

    def find(self, action: str, target: str | None = None
             ) -> list[tuple[str, str, str | None, dict[str, Any] | None]]:
        return [e for e in self.entries
                if e[1] == action and (target is None or e[2] == target)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    opened = open_sqlite(":memory:")
    yield opened
    await opened.close()


@pytest.fixture
def audit() -> RecordingAudit:
    return RecordingAudit()


@pytest.fixture
def queue(store: SqliteStore, clock: FakeClock, audit: RecordingAudit) -> QueueService:
    return QueueService(store, clock, CONFIG, audit=audit)


async def online(
    queue: QueueService, name: str, *, tags: str | Sequence[str] = "",
    capabilities: Sequence[CapabilityInput] = ("code",), capacity: int = 1,
    provider: str | None = None,
) -> None:
    """Register a worker and bring it online with one heartbeat."""
    await queue.workers.register(name, capabilities=capabilities, tags=tags, actor=ADMIN)
    await queue.workers.heartbeat(name, "active", tags=tags, capacity=capacity,
                                  provider=provider)
