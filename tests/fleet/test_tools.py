"""The queue's MCP tools: ``mr_job_submit``, ``mr_job_status``, ``mr_job_list``,
``mr_job_cancel``, ``mr_job_approve``, ``mr_workers``, ``mr_explain`` — typed inputs, pydantic
outputs, scopes from the one table, errors as tool results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from core.clock import FakeClock
from core.engine import Engine
from core.principal import LOCAL, Principal
from mcp_server.server import build_server
from mcp_server.tools import TOOL_SCOPES
from tests.fleet.conftest import open_fleet_engine
from tests.mcp.conftest import as_caller, error_of, text

QUEUE_TOOLS = ("mr_job_submit", "mr_job_status", "mr_job_list", "mr_job_cancel",
               "mr_job_approve", "mr_workers", "mr_explain")


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    async with open_fleet_engine(tmp_path, clock) as opened:
        for name, caps in (("w1", ["code"]), ("w2", [{"name": "deploy",
                                                       "risk_tier": "approve"}])):
            await opened.fleet.register(name, capabilities=caps, tags="code", actor=LOCAL)
            await opened.queue.workers.heartbeat(name, "active", tags="code")
        yield opened


def client_as(engine: Engine, principal: Principal = LOCAL) -> Client:
    return Client(build_server(lambda: engine, principal_of=as_caller(principal)))


def test_every_queue_tool_has_a_scope() -> None:
    assert {TOOL_SCOPES[t] for t in QUEUE_TOOLS} == {"jobs:read", "jobs:write",
                                                     "jobs:approve"}


async def test_the_tools_are_listed_with_typed_schemas(engine: Engine) -> None:
    async with client_as(engine) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    submit = tools["mr_job_submit"]
    assert submit.input_schema["required"] == ["prompt"]
    assert "description" in submit.input_schema["properties"]["urgency"]
    assert submit.output_schema is not None
    assert tools["mr_job_status"].annotations is not None
    assert tools["mr_job_status"].annotations.read_only_hint is True


async def test_submit_status_list_and_cancel(engine: Engine) -> None:
    async with client_as(engine) as client:
        submitted = await client.call_tool("mr_job_submit", {
            "prompt": "fix the bug", "tags": "Code", "capability": "code"})
        assert not submitted.is_error, text(submitted)
        job = submitted.structured_content
        assert job is not None
        assert (job["status"], job["assignedTo"], job["tags"]) == ("pending", "w1", ["code"])
        assert f"Job {job['id']}: pending → w1" in text(submitted)
        status = await client.call_tool("mr_job_status", {"job_id": job["id"]})
        assert status.structured_content == job
        listed = await client.call_tool("mr_job_list", {"status": "pending"})
        assert listed.structured_content is not None
        assert [j["id"] for j in listed.structured_content["items"]] == [job["id"]]
        cancelled = await client.call_tool("mr_job_cancel", {"job_id": job["id"],
                                                             "reason": "dup"})
        assert cancelled.structured_content is not None
        assert cancelled.structured_content["status"] == "cancelled"
        again = await client.call_tool("mr_job_cancel", {"job_id": job["id"]})
    assert error_of(again)["code"] == "CONFLICT"


async def test_submit_with_wait_returns_the_result(engine: Engine) -> None:
    async def work() -> None:
        (job,) = await engine.queue.wait_inbox("w1", 10)
        await engine.queue.jobs.claim(job.id, "w1")
        await engine.queue.jobs.close(job.id, "w1", "all fixed")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, client_as(engine) as client:
            tg.start_soon(work)
            result = await client.call_tool("mr_job_submit", {
                "prompt": "fix", "capability": "code", "wait_s": 10})
    assert result.structured_content is not None
    assert (result.structured_content["status"], result.structured_content["result"]) == (
        "done", "all fixed")


async def test_approve_and_reject_need_the_approve_scope(engine: Engine) -> None:
    writer = Principal(name="writer", kind="user", scopes=frozenset({"jobs:read",
                                                                     "jobs:write"}))
    approver = Principal(name="boss", kind="user", scopes=frozenset({"jobs:approve"}))
    async with client_as(engine, writer) as client:
        held = (await client.call_tool("mr_job_submit", {
            "prompt": "deploy", "capability": "deploy"})).structured_content
        assert held is not None and held["status"] == "awaiting_approval"
        refused = await client.call_tool("mr_job_approve", {"job_id": held["id"]})
        assert error_of(refused)["code"] == "FORBIDDEN"
        other = (await client.call_tool("mr_job_submit", {
            "prompt": "deploy", "capability": "deploy"})).structured_content
        assert other is not None
    async with client_as(engine, approver) as client:
        approved = await client.call_tool("mr_job_approve", {"job_id": held["id"]})
        rejected = await client.call_tool("mr_job_approve", {
            "job_id": other["id"], "decision": "reject", "reason": "no"})
    assert approved.structured_content is not None
    assert (approved.structured_content["status"], approved.structured_content["assignedTo"],
            approved.structured_content["approvedBy"]) == ("pending", "w2", "boss")
    assert rejected.structured_content is not None
    assert rejected.structured_content["status"] == "cancelled"


async def test_workers_and_explain(engine: Engine) -> None:
    async with client_as(engine) as client:
        fleet = await client.call_tool("mr_workers", {})
        one = await client.call_tool("mr_workers", {"name": "w2"})
        explained = await client.call_tool("mr_explain", {"job_tags": "code",
                                                          "capability": "code"})
    assert fleet.structured_content is not None
    assert [w["name"] for w in fleet.structured_content["workers"]] == ["w1", "w2"]
    assert one.structured_content is not None
    assert one.structured_content["workers"][0]["capabilities"][0]["riskTier"] == "approve"
    assert explained.structured_content is not None
    assert explained.structured_content["chosen"] == "w1"
    assert "w2: not eligible: lacks capability code" in text(explained)
    assert "w1: eligible; total" in text(explained)


async def test_tool_errors_are_results_and_bad_arguments_protocol_errors(
    engine: Engine,
) -> None:
    reader = Principal(name="r", kind="user", scopes=frozenset({"jobs:read"}))
    async with client_as(engine, reader) as client:
        missing = await client.call_tool("mr_job_status", {"job_id": 999})
        forbidden = await client.call_tool("mr_job_submit", {"prompt": "x"})
        unknown = await client.call_tool("mr_workers", {"name": "ghost"})
        with pytest.raises(MCPError, match="invalid arguments for mr_job_status"):
            await client.call_tool("mr_job_status", {"job_id": "seven"})
    assert error_of(missing)["code"] == "NOT_FOUND"
    assert error_of(forbidden)["code"] == "FORBIDDEN"
    assert error_of(unknown)["code"] == "NOT_FOUND"
