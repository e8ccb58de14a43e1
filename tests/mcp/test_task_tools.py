"""The ``mr_task_*`` tools through the official client, in memory."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from core.engine import Engine
from core.errors import ProviderError
from core.principal import Principal
from mcp_server.server import build_server
from tests.mcp.conftest import as_caller, connect, error_of, text
from tests.support.scripted import ScriptedProvider, Step

NIGHTLY = {"name": "nightly", "schedule": "0 3 * * *", "prompt": "summarise the day"}


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    result = await client.call_tool("mr_task_create", {**NIGHTLY, **overrides})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def test_create_then_list_shows_the_task_with_its_next_run(client: Client) -> None:
    task = await create(client, timezone="Europe/Berlin", webhookFormat="slack",
                        model="m-2")
    assert task["id"].startswith("task_")
    assert (task["name"], task["timezone"], task["webhookFormat"], task["model"]) == (
        "nightly", "Europe/Berlin", "slack", "m-2")
    assert task["enabled"] and task["nextRunAt"]
    listed = await client.call_tool("mr_task_list", {})
    assert listed.structured_content is not None
    assert [t["id"] for t in listed.structured_content["tasks"]] == [task["id"]]
    assert "nightly (task_" in text(listed) and "'0 3 * * *' Europe/Berlin" in text(listed)


async def test_run_waits_for_the_result_and_results_can_be_read_back(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    task = await create(client)
    ran = await client.call_tool("mr_task_run", {"taskId": task["id"]})
    assert ran.structured_content is not None, text(ran)
    run = ran.structured_content
    assert (run["status"], run["text"], run["taskId"]) == ("success", "ok", task["id"])
    assert scripted["main"].calls[-1].messages[-1].content == "summarise the day"
    latest = await client.call_tool("mr_task_result", {"taskId": "nightly"})
    one = await client.call_tool("mr_task_result", {"taskId": task["id"],
                                                    "runId": run["runId"]})
    assert latest.structured_content == one.structured_content == run
    assert text(latest).startswith("ok")


async def test_slow_run_returns_its_id_to_poll(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["eventually"], gate=gate))
    task = await create(client)
    started = await client.call_tool("mr_task_run", {"taskId": task["id"], "wait_s": 0.05})
    run = started.structured_content
    assert run is not None and run["status"] == "running"
    assert f'runId="{run["runId"]}"' in text(started)
    gate.set()
    await wait_all_tasks_blocked()
    done = await client.call_tool("mr_task_result", {"taskId": task["id"],
                                                     "runId": run["runId"]})
    assert done.structured_content is not None
    assert (done.structured_content["status"], done.structured_content["text"]) == (
        "success", "eventually")


async def test_a_failing_run_is_a_result_with_its_error(
    client: Client, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["other"].steps.append(Step(error=ProviderError("boom", retriable=False)))
    task = await create(client, provider="other")
    ran = await client.call_tool("mr_task_run", {"taskId": task["id"]})
    assert not ran.is_error
    assert ran.structured_content is not None
    assert ran.structured_content["status"] == "error"
    assert ran.structured_content["error"]["code"] == "PROVIDER_ERROR"
    assert text(ran).startswith("error: PROVIDER_ERROR: boom")


async def test_update_changes_only_the_given_fields_and_null_clears(client: Client) -> None:
    task = await create(client, model="m-1", webhook="https://hooks.example.com/x")
    updated = await client.call_tool("mr_task_update", {
        "taskId": task["id"], "schedule": "30 4 * * 1-5", "model": None})
    assert updated.structured_content is not None, text(updated)
    after = updated.structured_content
    assert (after["schedule"], after["model"], after["webhook"], after["prompt"]) == (
        "30 4 * * 1-5", None, "https://hooks.example.com/x", "summarise the day")
    disabled = await client.call_tool("mr_task_update", {"taskId": "nightly",
                                                         "enabled": False})
    assert disabled.structured_content is not None
    assert disabled.structured_content["nextRunAt"] is None


async def test_delete_removes_the_task(client: Client) -> None:
    task = await create(client)
    deleted = await client.call_tool("mr_task_delete", {"taskId": "nightly"})
    assert deleted.structured_content == {"taskId": task["id"], "deleted": True}
    listed = await client.call_tool("mr_task_list", {})
    assert listed.structured_content == {"tasks": []}
    assert error_of(await client.call_tool("mr_task_result", {"taskId": task["id"]}))[
        "code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("tool", "arguments", "code", "path"),
    [
        pytest.param("mr_task_create", {**NIGHTLY, "schedule": "61 * * * *"},
                     "VALIDATION_ERROR", "schedule", id="bad-cron"),
        pytest.param("mr_task_create", {**NIGHTLY, "timezone": "Mars/Olympus"},
                     "VALIDATION_ERROR", "timezone", id="bad-timezone"),
        pytest.param("mr_task_create", {**NIGHTLY, "provider": "nope"},
                     "VALIDATION_ERROR", "provider", id="unknown-provider"),
        pytest.param("mr_task_update", {"taskId": "nightly", "name": None},
                     "VALIDATION_ERROR", "name", id="null-name"),
        pytest.param("mr_task_update", {"taskId": "ghost", "prompt": "x"},
                     "NOT_FOUND", None, id="update-missing"),
        pytest.param("mr_task_run", {"taskId": "ghost"}, "NOT_FOUND", None, id="run-missing"),
        pytest.param("mr_task_delete", {"taskId": "ghost"}, "NOT_FOUND", None,
                     id="delete-missing"),
        pytest.param("mr_task_result", {"taskId": "nightly"}, "NOT_FOUND", None,
                     id="never-ran"),
        pytest.param("mr_task_result", {"taskId": "nightly", "runId": "run_NOPE"},
                     "NOT_FOUND", None, id="unknown-run"),
        pytest.param("mr_task_create", NIGHTLY, "CONFLICT", None, id="name-taken"),
    ],
)
async def test_task_errors_are_results_with_their_code(
    client: Client, tool: str, arguments: dict[str, Any], code: str, path: str | None,
) -> None:
    await create(client)
    failed = error_of(await client.call_tool(tool, arguments))
    assert failed["code"] == code, failed
    if path is not None:
        assert path in [d["path"] for d in failed["details"]]


@pytest.mark.parametrize(
    ("tool", "arguments", "path"),
    [
        pytest.param("mr_task_create", {"name": "x", "schedule": "@daily"}, "prompt",
                     id="missing-prompt"),
        pytest.param("mr_task_create", {**NIGHTLY, "webhookFormat": "xml"}, "webhookFormat",
                     id="bad-format"),
        pytest.param("mr_task_run", {"taskId": "nightly", "wait_s": 90}, "wait_s",
                     id="wait-over-max"),
        pytest.param("mr_task_result", {"taskId": "nightly", "runId": "nope"}, "runId",
                     id="malformed-run-id"),
        pytest.param("mr_task_delete", {}, "taskId", id="missing-task-id"),
    ],
)
async def test_bad_task_arguments_are_protocol_errors(
    client: Client, tool: str, arguments: dict[str, Any], path: str,
) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool(tool, arguments)
    assert raised.value.error.code == INVALID_PARAMS
    assert path in [d["path"] for d in raised.value.error.data["details"]]
    assert not (await client.call_tool("mr_task_list", {})).is_error


READS = [("mr_task_list", {}), ("mr_task_result", {"taskId": "nightly"})]
WRITES = [("mr_task_create", {**NIGHTLY, "name": "other"}),
          ("mr_task_update", {"taskId": "nightly", "prompt": "x"}),
          ("mr_task_run", {"taskId": "nightly"}),
          ("mr_task_delete", {"taskId": "nightly"})]


async def test_task_scopes(engine: Engine) -> None:
    async with connect(build_server(lambda: engine)) as owner:
        await create(owner)

    def codes(results: list[Any]) -> list[str | None]:
        return [r.structured_content["error"]["code"] if r.is_error else None
                for r in results]

    async def calls(scopes: set[str], tools: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        principal = Principal(name="t", kind="user", scopes=frozenset(scopes))
        async with connect(build_server(lambda: engine,
                                        principal_of=as_caller(principal))) as client:
            return [await client.call_tool(name, args) for name, args in tools]

    assert codes(await calls({"dispatch"}, READS)) == ["FORBIDDEN"] * 2
    reader_reads = codes(await calls({"tasks:read"}, READS))
    assert "FORBIDDEN" not in reader_reads
    assert codes(await calls({"tasks:read"}, WRITES)) == ["FORBIDDEN"] * 4
    assert "FORBIDDEN" not in codes(await calls({"tasks:write"}, WRITES))
