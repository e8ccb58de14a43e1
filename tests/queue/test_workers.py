"""The fleet: registration, heartbeats, pause, resume, revoke."""

from __future__ import annotations

import pytest

from core.clock import FakeClock
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.queue import JobSpec, QueueService
from tests.queue.conftest import ADMIN, RecordingAudit, online


async def test_register_creates_an_offline_worker_with_its_capabilities(queue: QueueService
                                                                        ) -> None:
    worker = await queue.workers.register(
        "coder-1", "writes code",
        [{"name": "Code", "risk_tier": "audit", "requires_secrets": ["GH_TOKEN"]}, "review"],
        tags="Py, GO", actor=ADMIN)
    assert worker.id.startswith("wkr_")
    assert (worker.name, worker.status, worker.tags) == ("coder-1", "offline", ["py", "go"])
    assert [(c.name, c.risk_tier, c.requires_secrets) for c in worker.capabilities] == [
        ("code", "audit", ["GH_TOKEN"]), ("review", "auto", [])]
    assert worker.record.success_rate is None
    assert await queue.workers.get(worker.id) == worker
    assert await queue.workers.get("coder-1") == worker


async def test_a_live_name_cannot_be_registered_twice(queue: QueueService) -> None:
    await queue.workers.register("w1", actor=ADMIN)
    with pytest.raises(Conflict):
        await queue.workers.register("w1", actor=ADMIN)


@pytest.mark.parametrize(("name", "capabilities"), [
    ("Bad Name", ()),
    ("", ()),
    ("x" * 65, ()),
    ("ok", [{"name": "code", "risk_tier": "yolo"}]),
    ("ok", ["code", "code"]),
])
async def test_register_rejects_invalid_input(queue: QueueService, name: str,
                                              capabilities: list[object]) -> None:
    with pytest.raises(ValidationFailed):
        await queue.workers.register(name, capabilities=capabilities,  # type: ignore[arg-type]
                                     actor=ADMIN)


async def test_heartbeat_normalizes_comma_tags_and_brings_the_worker_online(
    queue: QueueService, audit: RecordingAudit,
) -> None:
    registered = await queue.workers.register("w1", actor=ADMIN)
    reply = await queue.workers.heartbeat("w1", "idle", {"note": "hi"}, " Code, REVIEW ,code",
                                          provider="claude", capacity=3)
    assert reply["ok"] is True
    assert reply["tags"] == ["code", "review"]
    worker = await queue.workers.get("w1")
    assert worker.tags == ["code", "review"]
    assert worker.status == "online"
    assert (worker.presence.status, worker.presence.provider, worker.presence.capacity) == (
        "idle", "claude", 3)
    assert worker.presence.details == {"note": "hi"}
    assert audit.find("worker.online", registered.id)


async def test_heartbeat_without_tags_keeps_the_tags(queue: QueueService) -> None:
    await online(queue, "w1", tags="code")
    await queue.workers.heartbeat("w1", "busy", tags=None)
    assert (await queue.workers.get("w1")).tags == ["code"]


async def test_a_worker_goes_offline_when_heartbeats_stop(queue: QueueService,
                                                          clock: FakeClock) -> None:
    await online(queue, "w1")
    clock.advance(31)
    assert (await queue.workers.get("w1")).status == "offline"
    assert [w.name for w in await queue.workers.presence()] == ["w1"]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"name": "ghost"}, NotFound),
    ({"name": "w1", "status": "sleeping"}, ValidationFailed),
    ({"name": "w1", "capacity": -1}, ValidationFailed),
])
async def test_heartbeat_refuses_unknown_workers_and_bad_fields(
    queue: QueueService, kwargs: dict[str, object], error: type[Exception],
) -> None:
    await queue.workers.register("w1", actor=ADMIN)
    with pytest.raises(error):
        await queue.workers.heartbeat(**kwargs)  # type: ignore[arg-type]


async def test_a_paused_worker_gets_nothing_and_hands_back_its_inbox(queue: QueueService
                                                                     ) -> None:
    await online(queue, "w1", capacity=2)
    first = await queue.jobs.submit(JobSpec(prompt="one"), actor=ADMIN)
    assert first.assigned_to == "w1"
    paused = await queue.workers.pause("w1", actor=ADMIN)
    assert paused.status == "paused"
    assert (await queue.jobs.get(first.id)).assigned_to is None
    second = await queue.jobs.submit(JobSpec(prompt="two"), actor=ADMIN)
    assert second.assigned_to is None
    await online(queue, "w2")
    assert (await queue.jobs.get(first.id)).assigned_to == "w2"


async def test_resume_routes_work_again_with_a_cold_penalty(queue: QueueService,
                                                            clock: FakeClock) -> None:
    await online(queue, "w1")
    clock.advance(120)
    await queue.workers.heartbeat("w1")
    await queue.workers.pause("w1", actor=ADMIN)
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    resumed = await queue.workers.resume("w1", actor=ADMIN)
    assert resumed.status == "online"
    assert (await queue.jobs.get(job.id)).assigned_to == "w1"
    exp = await queue.explain()
    assert exp.candidates[0].score.penalties == {"cold": 0.05}


async def test_revoke_keeps_the_row_and_requeues_its_work(queue: QueueService,
                                                          audit: RecordingAudit) -> None:
    await online(queue, "w1")
    job = await queue.jobs.submit(JobSpec(prompt="x"), actor=ADMIN)
    await queue.jobs.claim(job.id, "w1")
    revoked = await queue.workers.revoke("w1", actor=ADMIN)
    assert revoked.status == "revoked"
    assert revoked.revoked_at is not None
    assert (await queue.workers.get(revoked.id)).status == "revoked"
    requeued = await queue.jobs.get(job.id)
    assert (requeued.status, requeued.assigned_to) == ("pending", None)
    assert requeued.history[-1].outcome == "lost"
    with pytest.raises(Forbidden):
        await queue.workers.heartbeat("w1")
    with pytest.raises(Conflict):
        await queue.workers.resume(revoked.id, actor=ADMIN)
    again = await queue.workers.register("w1", actor=ADMIN)
    assert again.id != revoked.id
    assert audit.find("worker.revoke", revoked.id)


async def test_list_shows_every_worker_by_name(queue: QueueService) -> None:
    for name in ("b", "a", "c"):
        await queue.workers.register(name, actor=ADMIN)
    await queue.workers.revoke("c", actor=ADMIN)
    assert [w.name for w in await queue.workers.list()] == ["a", "b", "c"]
    assert [w.name for w in await queue.workers.list(include_revoked=False)] == ["a", "b"]
    with pytest.raises(NotFound):
        await queue.workers.get("nobody")


async def test_heartbeat_tags_that_are_not_strings_are_a_validation_error(
    queue: QueueService,
) -> None:
    await queue.workers.register("w1", actor=ADMIN)
    with pytest.raises(ValidationFailed):
        await queue.workers.heartbeat("w1", tags=[1, 2])  # type: ignore[list-item]
