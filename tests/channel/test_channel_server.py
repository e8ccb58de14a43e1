"""The channel server in-process, with the official SDK client: capability, push, pull,
capacity, completion, sign-off, and the protocol-era steering."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.memory import create_client_server_memory_streams
from mcp.types import TextContent

from channel.events import META_KEY
from channel.server import CHANNEL_CAPABILITY
from core.engine import Engine
from core.principal import LOCAL
from tests.channel.conftest import (
    ChannelEvents,
    StreamsTransport,
    in_process_channel,
    submit,
)


def text_of(result: object) -> str:
    content = getattr(result, "content", [])
    assert content and isinstance(content[0], TextContent)
    return content[0].text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_channel_capability_is_declared_in_the_initialize_handshake(
    engine: Engine, mode: str,
) -> None:
    async with in_process_channel(engine, mode=mode) as (client, _):
        assert client.protocol_version == "2025-11-25"
        experimental = client.server_capabilities.experimental or {}
        assert CHANNEL_CAPABILITY in experimental
        assert "<channel" in (client.session.initialize_result.instructions or "")


async def test_the_sdk_default_loop_would_hide_the_capability_from_a_probing_client() -> None:
    """The trap the channel avoids: the SDK's default (dual-era) loop answers the 2026-era
    probe, so a probing client adopts that era and never sees experimental capabilities,
    even when the initialize options declare them."""
    plain = MCPServer("plain")
    lowlevel = plain._lowlevel_server
    options = lowlevel.create_initialization_options(
        experimental_capabilities={CHANNEL_CAPABILITY: {}})
    async with create_client_server_memory_streams() as (client_streams, server_streams), \
            anyio.create_task_group() as tg:
        tg.start_soon(lowlevel.run, *server_streams, options)
        async with Client(StreamsTransport(client_streams), mode="auto") as probing:
            assert probing.protocol_version != "2025-11-25"
            assert not (probing.server_capabilities.experimental or {})
        await client_streams[1].aclose()


async def test_a_probe_of_the_new_era_is_refused_so_the_client_falls_back(
    engine: Engine,
) -> None:
    events = ChannelEvents()
    async with in_process_channel(engine, events=events, mode="auto") as (client, channel):
        assert client.session.initialize_result is not None
        job = await submit(engine, "Summarise the README", tags=["code"])
        event = await events.next()
        assert event.meta is not None and event.meta["job_id"] == str(job.id)
        assert channel.server.pushing and channel.server.mode_chosen.is_set()


async def test_a_pushed_job_completed_with_mr_job_complete_is_done_with_that_result(
    engine: Engine,
) -> None:
    events = ChannelEvents()
    async with in_process_channel(engine, events=events) as (client, channel):
        job = await submit(engine, "Review this diff", tags=["code", "review"], timeout_s=600,
                           input={"diff": "+x"})
        assert job.assigned_to == channel.worker
        event = await events.next()
        assert event.meta == {"job_id": str(job.id), "tags": "code,review",
                              "timeout_s": "600", "effort": "standard",
                              "urgency": "normal"}
        assert all(META_KEY.fullmatch(key) for key in event.meta)
        assert "Review this diff" in event.content
        assert '"diff": "+x"' in event.content
        assert f"mr_job_complete(job_id={job.id}" in event.content
        assert (await engine.queue.jobs.get(job.id)).status == "running"

        result = await client.call_tool("mr_job_complete", {
            "job_id": job.id, "result": "LGTM", "status": "done"})
        assert not result.is_error, text_of(result)
        done = await engine.queue.jobs.get(job.id)
        assert (done.status, done.result) == ("done", "LGTM")
        assert done.history[-1].worker == channel.worker


async def test_capacity_bounds_the_jobs_pushed_and_completing_one_frees_a_slot(
    engine: Engine,
) -> None:
    events = ChannelEvents()
    async with in_process_channel(engine, events=events, capacity=1) as (client, channel):
        first = await submit(engine, "first")
        second = await submit(engine, "second")
        event = await events.next()
        assert event.meta is not None and event.meta["job_id"] == str(first.id)
        held = await engine.queue.jobs.list(assigned_to=channel.worker, status="running")
        assert [j.id for j in held.items] == [first.id]
        assert (await engine.queue.jobs.get(second.id)).status == "pending"
        assert events.pending() == []

        await client.call_tool("mr_job_complete", {"job_id": first.id, "result": "one"})
        event = await events.next()
        assert event.meta is not None and event.meta["job_id"] == str(second.id)
        await client.call_tool("mr_job_complete", {"job_id": second.id, "result": "two"})
        assert (await engine.queue.jobs.get(second.id)).result == "two"


async def test_a_health_check_connection_is_never_pushed_a_job(engine: Engine) -> None:
    """``claude mcp list`` connects, initializes, lists tools and drops the server."""
    events = ChannelEvents()
    async with in_process_channel(engine, events=events, settle_s=30) as (client, channel):
        job = await submit(engine, "must not be lost to a health check")
        assert job.assigned_to == channel.worker
        await client.list_tools()
        with anyio.fail_after(5):
            await channel.server.mode_chosen.wait()
        assert channel.server.pushing
    assert events.received == []
    after = await engine.queue.jobs.get(job.id)
    assert (after.status, after.assigned_to, after.attempts) == ("pending", None, 0)


async def test_a_client_without_channel_support_pulls_with_mr_job_next(engine: Engine) -> None:
    async with in_process_channel(engine, capacity=1) as (client, channel):
        with anyio.fail_after(5):
            await channel.server.mode_chosen.wait()
        assert not channel.server.pushing
        empty = await client.call_tool("mr_job_next", {})
        assert "No job is waiting" in text_of(empty)
        assert empty.structured_content == {"job": None}

        job = await submit(engine, "Write a haiku", tags=["draft"])
        await submit(engine, "Another")
        pulled = await client.call_tool("mr_job_next", {})
        assert "Write a haiku" in text_of(pulled)
        assert pulled.structured_content is not None
        assert pulled.structured_content["job"]["id"] == job.id
        assert (await engine.queue.jobs.get(job.id)).status == "running"

        full = await client.call_tool("mr_job_next", {})
        assert full.is_error and "CONFLICT" in text_of(full), text_of(full)

        await client.call_tool("mr_job_complete", {"job_id": job.id, "result": "leaves fall",
                                                   "status": "done"})
        nxt = await client.call_tool("mr_job_next", {})
        assert "Another" in text_of(nxt)


async def test_never_push_leaves_jobs_unclaimed_for_a_channel_client(engine: Engine) -> None:
    events = ChannelEvents()
    async with in_process_channel(engine, events=events, push="never") as (client, _):
        job = await submit(engine, "pull me")
        pulled = await client.call_tool("mr_job_next", {})
        assert pulled.structured_content is not None
        assert pulled.structured_content["job"]["id"] == job.id
        assert events.received == []


async def test_completing_a_job_the_worker_does_not_hold_is_an_error_result(
    engine: Engine,
) -> None:
    other = await submit(engine, "nobody's")
    async with in_process_channel(engine) as (client, _):
        result = await client.call_tool("mr_job_complete", {"job_id": other.id,
                                                            "result": "x"})
        assert result.is_error
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] in ("FORBIDDEN", "CONFLICT")
        missing = await client.call_tool("mr_job_complete", {"job_id": 999999, "result": "x"})
        assert missing.structured_content is not None
        assert missing.structured_content["error"]["code"] == "NOT_FOUND"
        bad = await client.call_tool("mr_job_complete", {"job_id": other.id, "result": "x",
                                                         "status": "maybe"})
        assert bad.is_error


async def test_ending_the_session_signs_off_and_releases_unclaimed_work(
    engine: Engine,
) -> None:
    async with in_process_channel(engine) as (_, channel):
        job = await submit(engine, "waits in the inbox")
        assert job.assigned_to == channel.worker
        worker = await engine.queue.workers.get(channel.worker)
        assert worker.status == "online"
    released = await engine.queue.jobs.get(job.id)
    assert (released.status, released.assigned_to) == ("pending", None)
    worker = await engine.queue.workers.get(channel.worker)
    assert worker.status == "offline"


async def test_a_revoked_worker_stops_the_channel_with_the_reason(engine: Engine) -> None:
    async with in_process_channel(engine) as (_, channel):
        await engine.queue.workers.revoke(channel.worker, actor=LOCAL)
        with anyio.fail_after(10):
            await channel.server.stopped.wait()
        assert channel.server.failure is not None
        assert channel.server.failure.code in ("FORBIDDEN", "NOT_FOUND")


async def test_a_revoked_token_stops_the_channel_at_its_next_heartbeat(
    engine: Engine,
) -> None:
    async with in_process_channel(engine) as (_, channel):
        info = next(t for t in await engine.tokens.list() if t.name == channel.worker)
        await engine.tokens.revoke(info.id)
        with anyio.fail_after(10):
            await channel.server.stopped.wait()
        assert channel.server.failure is not None
        assert channel.server.failure.code == "UNAUTHORIZED"


async def test_recruit_on_the_channel_server_without_an_engine_says_where_to_go(
    engine: Engine,
) -> None:
    async with in_process_channel(engine) as (client, _):
        result = await client.call_tool("modelreins_recruit", {})
        assert result.is_error
        assert "main ModelReins MCP server" in text_of(result)
