"""Every engine error becomes one kind of tool result: ``isError`` with the §5 code in the text
and in ``structuredContent.error``; scopes and provider restrictions are enforced per caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.server.mcpserver import Context

from core.engine import Engine
from core.errors import (
    ModelReinsError,
    NoWorker,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Unauthorized,
)
from core.principal import Principal
from mcp_server.server import build_server
from mcp_server.tools import TOOL_SCOPES
from tests.mcp.conftest import as_caller, connect, error_of, open_scripted_engine, text
from tests.support.scripted import ScriptedProvider, Step


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(RateLimited("slow down", retry_after=7),
                     {"code": "RATE_LIMITED", "retryAfter": 7}, id="rate-limited"),
        pytest.param(ProviderError("upstream 500"), {"code": "PROVIDER_ERROR"}, id="provider"),
        pytest.param(ProviderTimeout("no answer in 120 s"), {"code": "PROVIDER_TIMEOUT"},
                     id="timeout"),
        pytest.param(NoWorker("no eligible worker"), {"code": "NO_WORKER"}, id="no-worker"),
    ],
)
async def test_provider_failures_become_error_results(
    engine: Engine, scripted: dict[str, ScriptedProvider], era: str,
    error: ModelReinsError, expected: dict[str, object],
) -> None:
    scripted["backup"].steps.append(Step(error=error))
    async with connect(build_server(lambda: engine), era) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "backup"})
        failed = error_of(result)
        assert failed.items() >= {**expected, "provider": "backup",
                                  "message": error.message}.items()
        if "retryAfter" in expected:
            assert "retry after 7 s" in text(result)
        history = await client.call_tool("mr_history", {"status": "error"})
    assert history.structured_content is not None
    recorded = history.structured_content["items"][0]
    assert (recorded["status"], recorded["error"]["code"]) == ("error", expected["code"])


async def test_unknown_provider_is_not_found(engine: Engine, era: str) -> None:
    async with connect(build_server(lambda: engine), era) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "nope"})
    failed = error_of(result)
    assert failed["code"] == "NOT_FOUND" and "nope" in failed["message"]


async def test_no_default_provider_is_a_validation_error_with_details(
    tmp_path: Path, scripted: dict[str, ScriptedProvider],
) -> None:
    async with open_scripted_engine(tmp_path, scripted, default=False) as engine, \
            connect(build_server(lambda: engine)) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x"})
    failed = error_of(result)
    assert failed["code"] == "VALIDATION_ERROR"
    assert failed["details"][0]["path"] == "provider"
    assert "  - provider: " in text(result)


def caller(*scopes: str, providers: frozenset[str] | None = None) -> Principal:
    return Principal(name="t", kind="user", scopes=frozenset(scopes), providers=providers,
                     token_id="tok_1")


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        pytest.param("mr_dispatch", {"prompt": "x"}, id="dispatch"),
        pytest.param("mr_providers", {}, id="providers"),
        pytest.param("mr_history", {}, id="history"),
    ],
)
async def test_missing_scope_is_forbidden(
    engine: Engine, scripted: dict[str, ScriptedProvider], tool: str, arguments: dict[str, str],
) -> None:
    server = build_server(lambda: engine, principal_of=as_caller(caller("tasks:read")))
    async with connect(server) as client:
        result = await client.call_tool(tool, arguments)
    failed = error_of(result)
    assert failed["code"] == "FORBIDDEN"
    assert TOOL_SCOPES[tool] in failed["message"]
    assert scripted["main"].calls == []


async def test_scope_grants_its_tools(engine: Engine) -> None:
    server = build_server(lambda: engine, principal_of=as_caller(caller("dispatch")))
    async with connect(server) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "x"})
    assert not result.is_error


async def test_provider_restriction_is_enforced_for_the_caller(
    engine: Engine, scripted: dict[str, ScriptedProvider],
) -> None:
    restricted = caller("dispatch", providers=frozenset({"other"}))
    server = build_server(lambda: engine, principal_of=as_caller(restricted))
    async with connect(server) as client:
        denied = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "main"})
        allowed = await client.call_tool("mr_dispatch", {"prompt": "x", "provider": "other"})
    failed = error_of(denied)
    assert (failed["code"], failed["provider"]) == ("FORBIDDEN", "main")
    assert not allowed.is_error
    assert scripted["main"].calls == []


async def test_no_caller_is_unauthorized(engine: Engine) -> None:
    def nobody(_: Context) -> Principal:
        raise Unauthorized("no authenticated caller")

    async with connect(build_server(lambda: engine, principal_of=nobody)) as client:
        result = await client.call_tool("mr_providers", {})
    assert error_of(result)["code"] == "UNAUTHORIZED"


async def test_an_unexpected_crash_is_an_error_result_without_internals(
    engine: Engine, scripted: dict[str, ScriptedProvider],
) -> None:
    def broken() -> Engine:
        raise RuntimeError("secret internals")

    async with connect(build_server(broken)) as client:
        result = await client.call_tool("mr_providers", {})
        assert result.is_error and "secret" not in text(result)
    async with connect(build_server(lambda: engine)) as client:
        assert not (await client.call_tool("mr_providers", {})).is_error
