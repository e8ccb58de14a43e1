"""Queue storage details: review and artifact rows, and the engine's wiring of the queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.engine import Engine, open_memory_store
from core.queue import JobSpec
from core.store import SqliteStore
from core.store.queue import ArtifactRow, ReviewRow
from tests.queue.conftest import ADMIN, START, online
from tests.support.scripted import settings_for


async def test_reviews_are_stored_and_paged_newest_first(store: SqliteStore) -> None:
    older = ReviewRow(id="rev_1", type="diff", title="t1", content="c", preview=None,
                      target="repo", job_id=7, created_by="worker:w1", created_at=START)
    newer = ReviewRow(id="rev_2", type="note", title="t2", content="c", preview="p",
                      target=None, job_id=None, created_by="worker:w1",
                      created_at=START + timedelta(seconds=1))
    for row in (older, newer):
        await store.reviews.add(row)
    assert await store.reviews.get("rev_1") == older
    rows, total = await store.reviews.page(limit=10, offset=0, status="open")
    assert (rows, total) == ([newer, older], 2)
    assert await store.reviews.get("missing") is None


async def test_artifacts_are_stored_found_by_job_and_expire(store: SqliteStore) -> None:
    keep = ArtifactRow(slug="abc", path="/a/abc", content_type="text/plain", size=3,
                       created_at=START, filename="a.txt", job_id=7)
    lapse = ArtifactRow(slug="def", path="/a/def", content_type="image/png", size=9,
                        created_at=START, job_id=7, expires_at=START + timedelta(hours=1))
    for row in (keep, lapse):
        await store.artifacts.add(row)
    assert await store.artifacts.get("abc") == keep
    assert [a.slug for a in await store.artifacts.for_job(7)] == ["abc", "def"]
    assert await store.artifacts.expired(START) == []
    assert await store.artifacts.expired(START + timedelta(hours=2)) == [lapse]
    assert await store.artifacts.delete("def")
    assert not await store.artifacts.delete("def")


async def test_the_engine_wires_the_queue_to_its_audit_log(tmp_path: Path) -> None:
    settings = settings_for(main="default")
    async with Engine.open(tmp_path, settings=settings, store=open_memory_store()) as engine:
        await online(engine.queue, "w1")
        job = await engine.queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
        page = await engine.store.audit.page(limit=10, offset=0, target=f"job:{job.id}")
        assert [row.action for row in page[0]] == ["job.assign", "job.submit"]
