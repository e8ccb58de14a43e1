"""``modelreins serve`` as a subprocess: first-start admin token, MCP and health over HTTP,
clean exit on a signal."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.mcp.clients import over_sse, over_streamable
from tests.mcp.processes import CONFIG, MODELREINS, make_home, serve_process

pytestmark = pytest.mark.slow


@pytest.fixture
def serve_home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


async def test_first_start_prints_an_admin_token_once_and_it_works(serve_home: Path) -> None:
    async with serve_process(serve_home) as served:
        token = served.token
        assert token is not None, "\n".join(served.lines)
        shown = "\n".join(served.lines)
        assert (f"claude mcp add --transport http modelreins {served.url}/mcp "
                f'--header "Authorization: Bearer {token}"') in shown
        assert f"{served.url}/mcp/sse" in shown
        for connect in (over_streamable, over_sse):
            async with connect(served.url, token) as client:
                result = await client.call_tool("mr_dispatch", {"prompt": "admin"})
                assert not result.is_error
        async with httpx2.AsyncClient(trust_env=False) as http:
            health = await http.get(f"{served.url}/api/health")
        assert health.json()["providers"] == {"healthy": 1, "degraded": 0, "down": 0}

    async with serve_process(serve_home) as again:
        assert again.token is None
        async with over_streamable(again.url, token) as client:
            assert not (await client.call_tool("mr_providers", {})).is_error


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_shuts_down_cleanly(serve_home: Path, sig: signal.Signals) -> None:
    async with serve_process(serve_home) as served:
        async with over_streamable(served.url, served.token) as client:
            assert not (await client.call_tool("mr_dispatch", {"prompt": "x"})).is_error
        served.process.send_signal(sig)
        with anyio.fail_after(20):
            code = await served.process.wait()
    assert code == 0
    assert "modelreins stopped" in served.lines
    assert not (serve_home / "modelreins.db-wal").exists(), "the store was not closed"


async def test_auth_none_is_refused_off_loopback(serve_home: Path) -> None:
    (serve_home / "config.yaml").write_text(
        CONFIG.replace("auth: token", "auth: none"), encoding="utf-8")
    env = {**os.environ, "MODELREINS_HOME": str(serve_home)}
    result = await anyio.run_process([MODELREINS, "serve", "--host", "0.0.0.0", "--port", "0"],
                                     env=env, check=False)
    assert result.returncode == 2
    assert b"server.auth" in result.stderr and b"loopback" in result.stderr
