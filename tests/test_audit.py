from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from core.audit import AuditLog
from core.clock import FakeClock
from core.errors import ValidationFailed
from core.store import SqliteStore, open_sqlite


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    opened = open_sqlite(":memory:")
    yield opened
    opened.db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit(store: SqliteStore, clock: FakeClock) -> AuditLog:
    return AuditLog(store.audit, clock)


async def seed(audit: AuditLog, clock: FakeClock) -> datetime:
    """Five entries one minute apart; returns the time of the first."""
    start = clock.now()
    for actor, action, target in [
        ("local", "token.create", "tok_a"),
        ("ci", "job.submit", "1"),
        ("worker:laptop", "job.claim", "1"),
        ("worker:laptop", "job.close", "1"),
        ("local", "token.revoke", "tok_a"),
    ]:
        await audit.record(actor, action, target)
        clock.advance(60)
    return start


async def test_entries_come_back_newest_first_with_their_fields(
    audit: AuditLog, clock: FakeClock
) -> None:
    await audit.record("local", "token.create", "tok_a", {"name": "ci", "scopes": ["dispatch"]})
    clock.advance(1.5)
    await audit.record("local", "config.reload", None)
    page = await audit.query()
    assert [e.action for e in page.items] == ["config.reload", "token.create"]
    assert (page.total, page.limit, page.offset) == (2, 50, 0)
    assert page.items[1].wire() == {
        "id": page.items[1].id, "at": "2026-01-01T00:00:00.000Z", "actor": "local",
        "action": "token.create", "target": "tok_a",
        "details": {"name": "ci", "scopes": ["dispatch"]},
    }
    assert page.items[0].target is None
    assert page.items[0].details is None


async def test_same_instant_entries_keep_insertion_order(audit: AuditLog) -> None:
    for n in range(3):
        await audit.record("local", f"step.{n}")
    assert [e.action for e in (await audit.query()).items] == ["step.2", "step.1", "step.0"]


@pytest.mark.parametrize(
    ("filters", "actions"),
    [
        ({"actor": "local"}, ["token.revoke", "token.create"]),
        ({"actor": "worker:laptop"}, ["job.close", "job.claim"]),
        ({"target": "1"}, ["job.close", "job.claim", "job.submit"]),
        ({"action": "job.claim"}, ["job.claim"]),
        ({"actor": "worker:laptop", "action": "job.close"}, ["job.close"]),
        ({"actor": "nobody"}, []),
    ],
)
async def test_filters_combine(
    audit: AuditLog, clock: FakeClock, filters: dict[str, str], actions: list[str]
) -> None:
    await seed(audit, clock)
    page = await audit.query(**filters)  # type: ignore[arg-type]
    assert [e.action for e in page.items] == actions
    assert page.total == len(actions)


async def test_since_is_inclusive_and_until_exclusive(audit: AuditLog, clock: FakeClock) -> None:
    start = await seed(audit, clock)
    page = await audit.query(since=start + timedelta(minutes=1),
                             until=start + timedelta(minutes=3))
    assert [e.action for e in page.items] == ["job.claim", "job.submit"]


async def test_paging_walks_the_log_with_a_stable_total(
    audit: AuditLog, clock: FakeClock
) -> None:
    await seed(audit, clock)
    seen: list[str] = []
    for offset in (0, 2, 4):
        page = await audit.query(limit=2, offset=offset)
        assert page.total == 5
        seen += [e.action for e in page.items]
    assert seen == ["token.revoke", "job.close", "job.claim", "job.submit", "token.create"]
    assert (await audit.query(limit=2, offset=10)).items == []


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": datetime(2026, 1, 1)}, "since"),
    ],
)
async def test_bad_query_arguments_are_validation_errors(
    audit: AuditLog, kwargs: dict[str, object], path: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await audit.query(**kwargs)  # type: ignore[arg-type]
    assert caught.value.details == [{"path": path, "problem": caught.value.message
                                     .removeprefix(f"{path}: ")}]


async def test_record_refuses_empty_actor_and_unserialisable_details(audit: AuditLog) -> None:
    with pytest.raises(ValidationFailed, match="actor"):
        await audit.record("", "x")
    with pytest.raises(ValidationFailed, match="details"):
        await audit.record("local", "x", None, {"when": object()})
    assert (await audit.query()).total == 0
