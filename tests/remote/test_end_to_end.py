"""Remote mode end to end: ``modelreins serve`` in a subprocess, and against it ``modelreins
mcp`` driven by the official MCP client over stdio and the CLI, each a subprocess with
``MODELREINS_URL``/``MODELREINS_TOKEN`` and an empty home of its own."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from core.models import DispatchRecord
from core.remote import RemoteEngine
from tests.mcp.conftest import error_of, text
from tests.mcp.processes import MODELREINS, Served, make_home, serve_process
from tests.remote.test_errors import closed_port

pytestmark = pytest.mark.slow


@pytest.fixture
def client_home(tmp_path: Path) -> Path:
    path = tmp_path / "client"
    path.mkdir()
    return path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_process(make_home(tmp_path / "server")) as running:
        assert running.token is not None, "\n".join(running.lines)
        yield running


def remote_env(home: Path, url: str, token: str | None) -> dict[str, str]:
    env = {"MODELREINS_HOME": str(home), "MODELREINS_URL": url}
    return env | ({"MODELREINS_TOKEN": token} if token else {})


async def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELREINS_")}
    with anyio.fail_after(60):
        return await anyio.run_process([MODELREINS, *argv], env=base | env, check=False)


def out_of(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@asynccontextmanager
async def stdio_mcp(env: dict[str, str]) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=MODELREINS, args=["mcp"], env=env)
    async with Client(params, mode="legacy") as client:
        yield client


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_stdio_mcp_serves_the_tools_from_the_server(
    served: Served, client_home: Path,
) -> None:
    assert served.token is not None
    env = remote_env(client_home, served.url, served.token)
    with anyio.fail_after(60):
        async with stdio_mcp(env) as client:
            providers = structured(await client.call_tool("mr_providers", {}))
            assert [p["name"] for p in providers["providers"]] == ["echo", "spare"]
            answer = structured(await client.call_tool("mr_dispatch", {"prompt": "over the wire"}))
            assert (answer["status"], answer["text"]) == ("success", "over the wire")
            missing = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "nope"})
            assert error_of(missing)["code"] == "NOT_FOUND"
            task = structured(await client.call_tool("mr_task_create", {
                "name": "e2e", "schedule": "@daily", "prompt": "task prompt"}))
            ran = structured(await client.call_tool("mr_task_run", {"taskId": "e2e",
                                                                    "wait_s": 30}))
            assert (ran["status"], ran["text"], ran["taskId"]) == (
                "success", "task prompt", task["id"])
            result = structured(await client.call_tool("mr_task_result", {
                "taskId": "e2e", "runId": ran["runId"]}))
            assert result["text"] == "task prompt"
            latest = structured(await client.call_tool("mr_task_result", {"taskId": "e2e"}))
            assert latest["runId"] == ran["runId"]
            history = structured(await client.call_tool("mr_history", {"id": answer["id"]}))
            assert history["items"][0]["text"] == "over the wire"

    async with RemoteEngine.open(served.url, served.token) as server:
        recorded = await server.get_dispatch(answer["id"])
        page = await server.history()
    assert isinstance(recorded, DispatchRecord) and recorded.text == "over the wire"
    assert {r.prompt for r in page.items} == {"over the wire", "task prompt"}
    assert not os.listdir(client_home), "the client never opened a local engine"


async def test_the_server_holds_stdio_calls_to_the_token_scopes(
    served: Served, client_home: Path,
) -> None:
    assert served.token is not None
    minted = await cli(remote_env(client_home, served.url, served.token),
                       "token", "create", "reader", "--scope", "tasks:read", "--json")
    reader = json.loads(out_of(minted))["token"]
    with anyio.fail_after(60):
        async with stdio_mcp(remote_env(client_home, served.url, reader)) as client:
            refused = await client.call_tool("mr_dispatch", {"prompt": "x"})
            assert error_of(refused)["code"] == "FORBIDDEN"
            assert structured(await client.call_tool("mr_task_list", {}))["tasks"] == []


async def test_cli_commands_against_the_server(served: Served, client_home: Path) -> None:
    assert served.token is not None
    env = remote_env(client_home, served.url, served.token)
    lines = out_of(await cli(env, "dispatch", "hello from the cli")).splitlines()
    assert lines[0] == "Dispatching to provider: echo (default)"
    assert lines[2] == "hello from the cli"

    created = out_of(await cli(env, "tasks", "create", "nightly", "--schedule", "0 3 * * *",
                               "--prompt", "nightly prompt"))
    assert created.startswith("Created task task_")
    listing = out_of(await cli(env, "tasks", "list"))
    assert "nightly" in listing and "0 3 * * *" in listing
    done = await cli(env, "tasks", "run", "nightly", "--wait", "30")
    assert out_of(done) == "nightly prompt\n"
    results = json.loads(out_of(await cli(env, "tasks", "results", "nightly", "--json")))
    assert (results["total"], results["items"][0]["status"]) == (1, "success")

    history = json.loads(out_of(await cli(env, "history", "--json")))
    assert {r["prompt"] for r in history["items"]} == {"hello from the cli", "nightly prompt"}

    pinged = out_of(await cli(env, "ping")).splitlines()
    assert pinged[0] == f"✓ connected to ModelReins at {served.url}"
    assert pinged[2] == "  providers: 2 active"
    assert not os.listdir(client_home)


async def test_ping_a_closed_port_fails_in_one_line(client_home: Path) -> None:
    with closed_port() as url:
        done = await cli(remote_env(client_home, url, None), "ping")
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode() == f"✗ cannot reach ModelReins at {url}: connection refused\n"
