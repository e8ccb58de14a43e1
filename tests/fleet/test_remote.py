"""The queue and the fleet through :class:`~core.remote.RemoteEngine`: the same typed
interface as the local engine, over the REST routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from core.errors import Conflict, Forbidden, NotFound, NoWorker
from core.principal import LOCAL
from core.queue import JobPatch, JobSpec
from core.remote import RemoteEngine
from tests.fleet.conftest import Fleet


@pytest.fixture
async def remote(fleet: Fleet) -> AsyncIterator[RemoteEngine]:
    async with RemoteEngine.open(fleet.url, fleet.tokens["admin"]) as engine:
        yield engine


async def test_jobs_round_trip(fleet: Fleet, remote: RemoteEngine) -> None:
    worker = await fleet.enroll("w1")
    jobs = remote.queue.jobs
    job = await jobs.submit(JobSpec(prompt="remote", tags=["code"]), actor=LOCAL)
    assert (job.status, job.assigned_to) == ("pending", "w1")
    assert (await jobs.get(job.id)).prompt == "remote"
    page = await jobs.list(tags=["code"], assigned_to="w1")
    assert [j.id for j in page.items] == [job.id]
    patched = await jobs.update(job.id, JobPatch(urgency="high"), actor=LOCAL)
    assert patched.urgency == "high"
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.serve_once)
        with anyio.fail_after(20):
            done = await jobs.wait_for(job.id, 20)
    assert (done.status, done.result) == ("done", "REMOTE")
    with pytest.raises(Conflict):
        await jobs.cancel(job.id, actor=LOCAL)
    second = await jobs.submit(JobSpec(prompt="again"), actor=LOCAL)
    cancelled = await jobs.cancel(second.id, actor=LOCAL, reason="enough")
    assert "enough" in (cancelled.error or "")
    assert (await jobs.retry(second.id, actor=LOCAL)).status == "pending"
    with pytest.raises(NotFound):
        await jobs.get(999)


async def test_fleet_and_explanations(fleet: Fleet, remote: RemoteEngine) -> None:
    registered = await remote.fleet.register("w1", capabilities=["code", {
        "name": "deploy", "risk_tier": "approve"}], tags="code", actor=LOCAL)
    assert registered.token is not None and registered.view_url is None
    linked = await remote.fleet.register("w2", actor=LOCAL, view_base_url="")
    assert linked.token is None and linked.view_url is not None
    assert (await fleet.take_view(linked.view_url)).status_code == 200
    await fleet.engine.queue.workers.heartbeat("w1", "active")
    workers = remote.queue.workers
    assert [w.name for w in await workers.list()] == ["w1", "w2"]
    assert (await workers.pause("w1", actor=LOCAL)).status == "paused"
    assert (await workers.resume("w1", actor=LOCAL)).status == "online"
    explained = await remote.queue.explain("code", capability="code")
    assert explained.chosen == "w1"
    dispatched = await remote.fleet.dispatch(JobSpec(prompt="now", capability="code"),
                                             actor=LOCAL)
    assert dispatched.worker is not None and dispatched.worker.name == "w1"
    assert (await remote.queue.explain_job(dispatched.job.id)).job_tags == []
    held = await remote.queue.jobs.submit(JobSpec(prompt="ship", capability="deploy"),
                                          actor=LOCAL)
    assert (await remote.queue.jobs.reject(held.id, actor=LOCAL, reason="no")).status \
        == "cancelled"
    with pytest.raises(NoWorker):
        await remote.fleet.dispatch(JobSpec(prompt="x", capability="gpu"), actor=LOCAL)
    assert (await remote.fleet.revoke("w2", actor=LOCAL)).status == "revoked"


async def test_the_remote_caller_is_the_token(fleet: Fleet) -> None:
    async with RemoteEngine.open(fleet.url, fleet.tokens["reader"]) as reader:
        with pytest.raises(Forbidden):
            await reader.queue.jobs.submit(JobSpec(prompt="x"), actor=LOCAL)
        with pytest.raises(Forbidden):
            await reader.fleet.register("w9", actor=LOCAL)
