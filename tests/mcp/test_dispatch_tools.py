"""``mr_dispatch``, ``mr_providers``, ``mr_history`` through the official client, in memory."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from core.engine import Engine
from mcp_server.tools import TOOL_SCOPES
from mcp_server.tools.base import MAX_WAIT_S
from tests.mcp.conftest import error_of, text
from tests.support.scripted import ScriptedProvider, Step

DISPATCH_TOOLS = ("mr_dispatch", "mr_providers", "mr_history")


async def test_every_tool_is_listed_with_a_scope_descriptions_and_an_output_schema(
    client: Client,
) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(DISPATCH_TOOLS) <= set(tools)
    assert set(tools) <= set(TOOL_SCOPES)
    for tool in tools.values():
        assert tool.description, tool.name
        assert tool.output_schema is not None, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_schemas_carry_the_constraints(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    dispatch = tools["mr_dispatch"].input_schema
    assert dispatch["required"] == ["prompt"]
    assert dispatch["properties"]["prompt"]["minLength"] == 1
    wait = dispatch["properties"]["wait_s"]
    assert wait["minimum"] == 0 and wait["maximum"] == MAX_WAIT_S < 60
    history = tools["mr_history"].input_schema["properties"]
    assert (history["limit"]["minimum"], history["limit"]["maximum"]) == (1, 100)
    assert set(history["status"]["anyOf"][0]["enum"]) == {"success", "error"}
    assert tools["mr_providers"].annotations is not None
    assert tools["mr_providers"].annotations.read_only_hint is True


async def test_dispatch_answers_with_text_and_the_structured_record(
    client: Client, engine: Engine,
) -> None:
    result = await client.call_tool("mr_dispatch", {"prompt": "hello"})
    assert not result.is_error
    record = result.structured_content
    assert record is not None
    assert (record["status"], record["text"], record["provider"]) == ("success", "ok", "main")
    assert record["id"].startswith("dsp_") and record["usage"] == {
        "input_tokens": 1, "output_tokens": 2}
    assert text(result).startswith("ok\n")
    assert record["id"] in text(result)
    stored = await engine.get_dispatch(record["id"])
    assert stored.text == "ok"


async def test_dispatch_passes_every_option_through(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    result = await client.call_tool("mr_dispatch", {
        "prompt": "p", "provider": "other", "model": "m-1", "system": "be brief",
        "options": {"temperature": 0.2},
    })
    assert not result.is_error, text(result)
    call = scripted["other"].calls[-1]
    assert (call.model, call.system, dict(call.options)) == ("m-1", "be brief",
                                                             {"temperature": 0.2})
    assert call.messages[-1].content == "p"


async def test_slow_dispatch_returns_running_and_is_polled_by_id(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["late answer"], gate=gate))
    started = await client.call_tool("mr_dispatch", {"prompt": "slow", "wait_s": 0.05})
    assert not started.is_error
    running = started.structured_content
    assert running is not None and running["status"] == "running"
    assert f'mr_history(id="{running["id"]}")' in text(started)

    polled = await client.call_tool("mr_history", {"id": running["id"]})
    assert polled.structured_content is not None
    assert polled.structured_content["items"][0]["status"] == "running"

    gate.set()
    await wait_all_tasks_blocked()
    done = await client.call_tool("mr_history", {"id": running["id"]})
    assert done.structured_content is not None
    item = done.structured_content["items"][0]
    assert (item["status"], item["text"]) == ("success", "late answer")
    assert text(done).startswith("late answer")


async def test_wait_zero_returns_at_once(client: Client) -> None:
    result = await client.call_tool("mr_dispatch", {"prompt": "x", "wait_s": 0})
    assert result.structured_content is not None
    assert result.structured_content["status"] in ("running", "success")


async def test_progress_is_reported_while_waiting(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["done"], gate=gate))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))
        gate.set()

    with anyio.fail_after(10):
        result = await client.call_tool("mr_dispatch", {"prompt": "x", "wait_s": 30},
                                        progress_callback=on_progress)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "success"
    assert seen, "no progress notification arrived"
    progress, total, message = seen[0]
    assert progress > 0 and total == 30 and message and "dispatching" in message


async def test_providers_lists_status_and_roles(client: Client) -> None:
    result = await client.call_tool("mr_providers", {})
    assert result.structured_content is not None
    listed = {p["name"]: p for p in result.structured_content["providers"]}
    assert set(listed) == {"main", "backup", "other"}
    assert listed["main"]["default"] and listed["backup"]["fallback"]
    assert listed["main"]["status"] == "unknown"
    assert "main (echo" in text(result) and "[default]" in text(result)


async def test_history_pages_and_filters(client: Client,
                                         scripted: dict[str, ScriptedProvider]) -> None:
    for i in range(3):
        await client.call_tool("mr_dispatch", {"prompt": f"p{i}"})
    await client.call_tool("mr_dispatch", {"prompt": "o", "provider": "other"})
    page = await client.call_tool("mr_history", {"limit": 2})
    assert page.structured_content is not None
    assert (page.structured_content["total"], len(page.structured_content["items"])) == (4, 2)
    assert page.structured_content["items"][0]["prompt"] == "o"
    rest = await client.call_tool("mr_history", {"limit": 10, "offset": 2})
    assert rest.structured_content is not None
    assert [r["prompt"] for r in rest.structured_content["items"]] == ["p1", "p0"]
    other = await client.call_tool("mr_history", {"provider": "other"})
    assert other.structured_content is not None and other.structured_content["total"] == 1
    assert "4 dispatches" in text(page)


async def test_unknown_dispatch_id_is_not_found(client: Client) -> None:
    result = await client.call_tool("mr_history", {"id": "dsp_NOPE"})
    assert error_of(result)["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        pytest.param({}, "prompt", id="missing-prompt"),
        pytest.param({"prompt": ""}, "prompt", id="empty-prompt"),
        pytest.param({"prompt": "x", "wait_s": 120}, "wait_s", id="wait-over-max"),
        pytest.param({"prompt": "x", "wait_s": -1}, "wait_s", id="negative-wait"),
        pytest.param({"prompt": ["x"]}, "prompt", id="wrong-type"),
        pytest.param({"prompt": "x", "options": "not an object"}, "options", id="bad-options"),
    ],
)
async def test_bad_arguments_are_protocol_errors_and_the_server_keeps_serving(
    client: Client, arguments: dict[str, Any], path: str,
) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool("mr_dispatch", arguments)
    assert raised.value.error.code == INVALID_PARAMS
    data = raised.value.error.data
    assert data["code"] == "VALIDATION_ERROR"
    assert path in [d["path"] for d in data["details"]]
    assert path in raised.value.error.message
    after = await client.call_tool("mr_dispatch", {"prompt": "still here"})
    assert not after.is_error


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 101}, "limit", id="limit-too-big"),
        pytest.param({"offset": -1}, "offset", id="negative-offset"),
        pytest.param({"status": "running"}, "status", id="unknown-status"),
        pytest.param({"id": "not-an-id"}, "id", id="malformed-id"),
    ],
)
async def test_bad_history_arguments_are_protocol_errors(
    client: Client, arguments: dict[str, Any], path: str,
) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool("mr_history", arguments)
    assert raised.value.error.code == INVALID_PARAMS
    assert path in [d["path"] for d in raised.value.error.data["details"]]
