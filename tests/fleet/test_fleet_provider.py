"""The ``fleet`` provider type: a dispatch to it becomes a job, and the dispatch's text is
the result a worker (speaking the §7 protocol over HTTP) closes it with."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from core.errors import NoWorker
from core.models import DispatchRequest, Message
from core.providers import PROVIDER_TYPES, ProviderCall, provider_class
from core.providers.fleet import FleetConfig, FleetProvider
from mcp_server.server import build_server
from tests.fleet.conftest import Fleet
from tests.mcp.conftest import error_of, text


def test_fleet_is_a_registered_provider_type() -> None:
    assert provider_class("fleet") is FleetProvider
    assert "fleet" in PROVIDER_TYPES


async def test_without_a_queue_the_fleet_provider_answers_no_worker() -> None:
    provider = FleetProvider("f", FleetConfig(), http=None)  # type: ignore[arg-type]
    with pytest.raises(NoWorker):
        await provider.complete(ProviderCall(messages=[Message(role="user", content="x")]))


def test_a_call_becomes_a_job_request_with_the_providers_terms() -> None:
    cfg = FleetConfig.model_validate({"tags": "Code, review", "capability": "code",
                                      "timeout": 90_000, "urgency": "high",
                                      "systemPrompt": "be brief"})
    call = ProviderCall(messages=[Message(role="user", content="earlier"),
                                  Message(role="assistant", content="ok"),
                                  Message(role="user", content="now this")],
                        options={"temperature": 0})
    job = FleetProvider("fleet", cfg, http=None).request(call)  # type: ignore[arg-type]
    assert (job.prompt, job.tags, job.capability, job.timeout_s, job.urgency) == (
        "now this", ("Code", "review"), "code", 90.0, "high")
    assert job.input == {"system": "be brief", "options": {"temperature": 0}, "messages": [
        {"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"}]}


async def test_mr_dispatch_to_the_fleet_returns_the_workers_result(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", tags="code")
    served: list[dict[str, Any]] = []

    async def serve() -> None:
        served.append(await worker.serve_once())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, \
                Client(build_server(lambda: fleet.engine)) as client:
            tg.start_soon(serve)
            result = await client.call_tool("mr_dispatch", {"prompt": "hello fleet",
                                                            "provider": "fleet"})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["text"] == "HELLO FLEET"
    assert result.structured_content["provider"] == "fleet"
    assert result.structured_content["model"] == "worker:w1"
    (job,) = served
    assert job["tags"] == ["code"]
    history = await fleet.engine.get_dispatch(result.structured_content["id"])
    assert history.text == "HELLO FLEET"


async def test_rest_dispatch_to_the_fleet_returns_the_workers_result(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", tags="code")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, fleet.client("user") as user:
            tg.start_soon(worker.serve_once, "from the worker")
            response = await user.post("/api/dispatch", json={"prompt": "hi",
                                                              "provider": "fleet"})
    assert response.status_code == 200, response.text
    assert (response.json()["text"], response.json()["provider"]) == ("from the worker",
                                                                      "fleet")


async def test_a_failed_job_is_a_provider_error(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", tags="code")

    async def fail() -> None:
        (job,) = await worker.jobs(wait=20)
        assert (await worker.claim(job["id"])).status_code == 200
        assert (await worker.close(job["id"], "it broke", status="failed")).status_code == 200

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fail)
            with pytest.raises(Exception, match="it broke") as caught:
                await fleet.engine.dispatch(DispatchRequest(prompt="x", provider="fleet"))
    assert getattr(caught.value, "code", None) == "PROVIDER_ERROR"


async def test_mr_dispatch_to_the_fleet_with_nobody_eligible_is_no_worker(
    fleet: Fleet,
) -> None:
    await fleet.enroll("w1", tags="code")
    async with Client(build_server(lambda: fleet.engine)) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x",
                                                        "provider": "gpu-fleet"})
    error = error_of(result)
    assert error["code"] == "NO_WORKER"
    assert error["provider"] == "gpu-fleet"
    (job,) = (await fleet.engine.queue.jobs.list()).items
    assert job.status == "cancelled"


async def test_a_busy_fleet_queues_the_job_instead_of_refusing(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", tags="code")
    blocker = await fleet.submit(tags="code")
    assert blocker["assignedTo"] == "w1"

    async def drain() -> None:
        assert (await worker.claim(blocker["id"])).status_code == 200
        assert (await worker.close(blocker["id"], "first")).status_code == 200
        await worker.serve_once("second")

    queue = fleet.engine.queue
    with anyio.fail_after(20):
        handle = fleet.engine.start_dispatch(DispatchRequest(prompt="x", provider="fleet"))
        while (waiting := await queue.jobs.list(status="pending")).total < 2:
            await anyio.wait_all_tasks_blocked()
        queued = waiting.items[0]
        assert (queued.prompt, queued.assigned_to) == ("x", None)
        await drain()
        await handle.wait(None)
    assert handle.outcome().text == "second"
