"""The ``serve`` app over real HTTP (uvicorn on loopback): Streamable HTTP at ``/mcp``, legacy
SSE at ``/mcp/sse``, bearer tokens, Host protection and ``/api/health``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core.engine import Engine
from tests.mcp.clients import over_sse, over_streamable
from tests.mcp.conftest import error_of, live_app, open_scripted_engine, serve_app, text
from tests.support.scripted import ScriptedProvider, Step


@dataclass
class Live:
    url: str
    engine: Engine
    full: str
    """A token with the default user scopes."""
    tasks_only: str
    only_other: str
    """May dispatch, but only to provider ``other``."""


@pytest.fixture
async def live(tmp_path: Path, scripted: dict[str, ScriptedProvider]) -> AsyncIterator[Live]:
    async with open_scripted_engine(tmp_path, scripted) as engine:
        _, full = await engine.tokens.mint("full", ["dispatch", "tasks:read", "tasks:write"])
        _, tasks_only = await engine.tokens.mint("reader", ["tasks:read"])
        _, only_other = await engine.tokens.mint("other", ["dispatch"], providers=["other"])
        async with serve_app(live_app(engine)) as url:
            yield Live(url, engine, full, tasks_only, only_other)


Connect = Callable[[str, str | None], AbstractAsyncContextManager[Client]]


TRANSPORTS = [pytest.param(over_streamable, id="streamable-http"),
              pytest.param(over_sse, id="sse")]


@pytest.mark.parametrize("connect", TRANSPORTS)
async def test_tools_work_with_a_valid_token(live: Live, connect: Connect) -> None:
    async with connect(live.url, live.full) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"mr_dispatch", "mr_providers", "mr_history"} <= names
        result = await client.call_tool("mr_dispatch", {"prompt": "over http"})
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        dispatch_id = result.structured_content["id"]
        polled = await client.call_tool("mr_history", {"id": dispatch_id})
        assert not polled.is_error
    assert (await live.engine.get_dispatch(dispatch_id)).prompt == "over http"


async def test_streamable_http_serves_the_classic_handshake_too(live: Live) -> None:
    headers = {"Authorization": f"Bearer {live.full}"}
    async with httpx2.AsyncClient(headers=headers, trust_env=False) as http, \
            Client(streamable_http_client(f"{live.url}/mcp", http_client=http),
                   mode="legacy") as client:
        result = await client.call_tool("mr_providers", {})
    assert not result.is_error


@pytest.mark.parametrize("connect", TRANSPORTS)
async def test_token_without_the_scope_gets_forbidden_results(live: Live,
                                                              connect: Connect) -> None:
    async with connect(live.url, live.tasks_only) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x"})
        failed = error_of(result)
        assert failed["code"] == "FORBIDDEN" and "'dispatch'" in failed["message"]
        assert error_of(await client.call_tool("mr_history", {}))["code"] == "FORBIDDEN"


@pytest.mark.parametrize("connect", TRANSPORTS)
async def test_provider_restricted_token_reaches_only_its_providers(
    live: Live, connect: Connect, scripted: dict[str, ScriptedProvider],
) -> None:
    async with connect(live.url, live.only_other) as client:
        denied = await client.call_tool("mr_dispatch", {"prompt": "x"})
        allowed = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "other"})
    assert error_of(denied)["code"] == "FORBIDDEN"
    assert not allowed.is_error
    assert scripted["main"].calls == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/mcp", id="streamable-http"),
        pytest.param("GET", "/mcp/sse", id="sse-stream"),
        pytest.param("POST", "/mcp/messages/?session_id=00000000000000000000000000000000",
                     id="sse-messages"),
    ],
)
@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(None, "missing bearer token", id="missing"),
        pytest.param("mr_" + "x" * 43, "invalid token", id="unknown"),
        pytest.param("not-a-token", "malformed token", id="malformed"),
    ],
)
async def test_requests_without_a_valid_token_get_401(
    live: Live, method: str, path: str, token: str | None, message: str,
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.request(method, live.url + path, headers=headers,
                                      json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "UNAUTHORIZED", "message": message}}
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_revoked_token_is_refused_at_once_even_mid_session(live: Live) -> None:
    info, raw = await live.engine.tokens.mint("soon-revoked", ["dispatch"])
    async with over_streamable(live.url, raw) as client:
        assert not (await client.call_tool("mr_providers", {})).is_error
        await live.engine.tokens.revoke(info.id)
        with pytest.raises(MCPError):
            await client.call_tool("mr_providers", {})
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{live.url}/mcp", headers={"Authorization": f"Bearer {raw}"},
                                   json={})
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "UNAUTHORIZED", "message": "token revoked"}


async def test_connecting_without_a_token_fails(live: Live) -> None:
    with pytest.raises(httpx2.HTTPStatusError) as raised:
        async with over_sse(live.url, None) as client:
            await client.call_tool("mr_providers", {})
    assert raised.value.response.status_code == 401


async def _first_sse_event(response: httpx2.Response) -> tuple[str, str]:
    event = data = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif not line and event:
            break
    return event, data


async def test_sse_endpoint_event_points_at_the_message_path_under_mcp(live: Live) -> None:
    headers = {"Authorization": f"Bearer {live.full}"}
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http, \
            http.stream("GET", f"{live.url}/mcp/sse", headers=headers) as response:
        assert response.status_code == 200
        with anyio.fail_after(10):
            event, data = await _first_sse_event(response)
    assert event == "endpoint"
    assert data.startswith("/mcp/messages/?session_id=")


async def test_sse_session_only_answers_the_token_that_opened_it(live: Live) -> None:
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http, \
            http.stream("GET", f"{live.url}/mcp/sse",
                        headers={"Authorization": f"Bearer {live.full}"}) as stream:
        with anyio.fail_after(10):
            _, endpoint = await _first_sse_event(stream)
        hijack = await http.post(
            live.url + endpoint, headers={"Authorization": f"Bearer {live.tasks_only}"},
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert hijack.status_code == 404


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        pytest.param("127.0.0.1:8484", True, id="ipv4-loopback"),
        pytest.param("localhost:9999", True, id="localhost"),
        pytest.param("[::1]:8484", True, id="ipv6-loopback"),
        pytest.param("localhost", True, id="no-port"),
        pytest.param("evil.example:8484", False, id="rebound-name"),
        pytest.param("127.0.0.1.evil.example", False, id="lookalike"),
    ],
)
async def test_host_header_protection(live: Live, host: str, allowed: bool) -> None:
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{live.url}/api/health", headers={"Host": host})
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "FORBIDDEN" and "Host header" in error["message"]


async def test_foreign_origin_is_refused(live: Live) -> None:
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{live.url}/mcp", json={}, headers={
            "Origin": "https://evil.example", "Authorization": f"Bearer {live.full}"})
    assert response.status_code == 403
    assert "Origin" in response.json()["error"]["message"]


async def test_health_needs_no_token(live: Live) -> None:
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{live.url}/api/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["version"] and body["uptime"] >= 0
    assert set(body["providers"]) == {"healthy", "degraded", "down"}


async def test_auth_none_serves_the_local_owner_without_a_token(
    tmp_path: Path, scripted: dict[str, ScriptedProvider],
) -> None:
    async with open_scripted_engine(tmp_path, scripted) as engine, \
            serve_app(live_app(engine, auth="none")) as url:
        for connect in (over_streamable, over_sse):
            async with connect(url, None) as client:
                result = await client.call_tool("mr_dispatch", {"prompt": "no auth"})
                assert not result.is_error, text(result)


async def test_progress_notifications_reach_an_http_client(
    live: Live, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["slow"], gate=gate))
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)
        gate.set()

    async with over_streamable(live.url, live.full) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("mr_dispatch", {"prompt": "x", "wait_s": 20},
                                            progress_callback=on_progress)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "success"
    assert seen and "dispatching" in (seen[0] or "")

