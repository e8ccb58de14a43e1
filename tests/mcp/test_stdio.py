"""``modelreins mcp`` as a subprocess: the tools over stdio, several processes on one home,
and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from core.clock import FakeClock
from core.engine import Engine
from core.tasks.models import TaskSpec
from mcp_server.cli.mcp_cmd import STOP_GRACE_S
from tests.mcp.conftest import error_of, text
from tests.mcp.processes import MODELREINS, make_home

pytestmark = pytest.mark.slow



@pytest.fixture
def stdio_home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


def server_params(home: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=MODELREINS, args=["mcp"],
                                 env={"MODELREINS_HOME": str(home), **env})


@asynccontextmanager
async def stdio_client(home: Path, **env: str) -> AsyncIterator[Client]:
    async with Client(server_params(home, **env), mode="legacy") as client:
        yield client


async def test_stdio_serves_the_tools_with_logs_kept_off_stdout(stdio_home: Path) -> None:
    async with stdio_client(stdio_home, MODELREINS_LOG="DEBUG") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"mr_dispatch", "mr_providers", "mr_history"} <= names
        providers = await client.call_tool("mr_providers", {})
        assert providers.structured_content is not None
        assert [p["name"] for p in providers.structured_content["providers"]] == ["echo", "spare"]
        answer = await client.call_tool("mr_dispatch", {"prompt": "hello over stdio"})
        assert answer.structured_content is not None
        assert answer.structured_content["text"] == "hello over stdio"
        assert text(answer).startswith("hello over stdio")
        missing = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "nope"})
        assert error_of(missing)["code"] == "NOT_FOUND"
        with pytest.raises(MCPError) as raised:
            await client.call_tool("mr_dispatch", {"wait_s": 500})
        assert raised.value.error.code == INVALID_PARAMS
        history = await client.call_tool("mr_history", {"id": answer.structured_content["id"]})
        assert not history.is_error


async def test_auto_negotiating_client_works_over_stdio(stdio_home: Path) -> None:
    async with Client(server_params(stdio_home)) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "modern era"})
    assert not result.is_error, text(result)


async def test_several_processes_on_one_home_record_every_dispatch(stdio_home: Path) -> None:
    processes, per_process = 3, 8
    ids: list[str] = []

    async def one_process(n: int) -> None:
        async with stdio_client(stdio_home) as client:
            async def one(i: int) -> None:
                result = await client.call_tool("mr_dispatch", {"prompt": f"p{n}-{i}"})
                assert result.structured_content is not None, text(result)
                ids.append(result.structured_content["id"])

            async with anyio.create_task_group() as tg:
                for i in range(per_process):
                    tg.start_soon(one, i)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for n in range(processes):
                tg.start_soon(one_process, n)
    assert len(set(ids)) == processes * per_process
    async with stdio_client(stdio_home) as client:
        page = await client.call_tool("mr_history", {"limit": 100})
    assert page.structured_content is not None
    assert page.structured_content["total"] == processes * per_process
    assert {r["id"] for r in page.structured_content["items"]} == set(ids)


async def _read_line(stream: Any) -> bytes:
    buffer = b""
    while not buffer.endswith(b"\n"):
        buffer += await stream.receive()
    return buffer


@asynccontextmanager
async def initialized_server(home: Path) -> AsyncIterator[Process]:
    """``modelreins mcp`` as a raw process, past the initialize handshake."""
    env = {**os.environ, "MODELREINS_HOME": str(home)}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}}
    async with await anyio.open_process([MODELREINS, "mcp"], env=env,
                                        stderr=subprocess.DEVNULL) as process:
        assert process.stdin is not None and process.stdout is not None
        await process.stdin.send(json.dumps(initialize).encode() + b"\n")
        with anyio.fail_after(30):
            reply = json.loads(await _read_line(process.stdout))
        assert reply["id"] == 1 and "serverInfo" in reply["result"]
        yield process


async def test_closing_stdin_ends_the_server(stdio_home: Path) -> None:
    async with initialized_server(stdio_home) as process:
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(15):
            assert await process.wait() == 0


async def test_sigterm_stops_the_server_even_with_stdin_open(stdio_home: Path) -> None:
    async with initialized_server(stdio_home) as process:
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(STOP_GRACE_S + 10):
            assert await process.wait() == 0


async def test_several_processes_fire_a_due_task_once(stdio_home: Path) -> None:
    due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    async with Engine.open(stdio_home, clock=FakeClock(due - timedelta(minutes=10))) as engine:
        task = await engine.tasks.create(TaskSpec(
            name="daily", schedule=f"{due.minute} {due.hour} * * *", prompt="catch up"))
    assert task.next_run_at == due

    async def runs(client: Client) -> list[dict[str, Any]]:
        result = await client.call_tool("mr_task_result", {"taskId": "daily"})
        return [] if result.is_error else [result.structured_content or {}]

    async with stdio_client(stdio_home) as first, stdio_client(stdio_home), \
            stdio_client(stdio_home):
        with anyio.fail_after(30):
            # Another process fires it: there is no event to wait on here, so poll.
            while not await runs(first):  # noqa: ASYNC110
                await anyio.sleep(0.2)
        # Give the followers several scheduler wakes to (wrongly) fire it again.
        await anyio.sleep(2)
        page = await first.call_tool("mr_task_list", {})
    assert page.structured_content is not None
    (listed,) = page.structured_content["tasks"]
    assert listed["lastStatus"] == "success"
    async with Engine.open(stdio_home) as engine:
        results = await engine.tasks.results("daily")
    assert results.total == 1
    assert results.items[0].trigger in ("catchup", "schedule")
