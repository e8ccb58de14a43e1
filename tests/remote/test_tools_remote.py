"""The MCP tools over a :class:`RemoteEngine` (in-memory MCP client, real REST app)."""

from __future__ import annotations

import anyio
from mcp import Client

from core.remote import RemoteEngine
from mcp_server.server import build_server
from tests.mcp.conftest import error_of, text
from tests.remote.test_errors import closed_port
from tests.support.scripted import ScriptedProvider, Step


async def test_a_slow_dispatch_reports_progress_then_returns_running(
    remote: RemoteEngine, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["late"], gate=gate))
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with Client(build_server(lambda: remote), mode="legacy") as client:
        with anyio.fail_after(20):
            result = await client.call_tool("mr_dispatch", {"prompt": "x", "wait_s": 1.5},
                                            progress_callback=on_progress)
        assert result.structured_content is not None
        running = result.structured_content
        assert running["status"] == "running", text(result)
        assert seen and "dispatching" in (seen[0] or "")
        gate.set()
        with anyio.fail_after(20):
            await remote.wait_dispatch(running["id"], 20)
        polled = await client.call_tool("mr_history", {"id": running["id"]})
    assert polled.structured_content is not None
    item = polled.structured_content["items"][0]
    assert (item["id"], item["status"], item["text"]) == (running["id"], "success", "late")


async def test_an_unreachable_server_is_a_tool_error() -> None:
    with closed_port() as url:
        async with RemoteEngine.open(url, "mr_x") as remote, \
                Client(build_server(lambda: remote), mode="legacy") as client:
            result = await client.call_tool("mr_providers", {})
    error = error_of(result)
    assert error["code"] == "UNAVAILABLE"
    assert error["message"] == f"cannot reach ModelReins at {url}: connection refused"
