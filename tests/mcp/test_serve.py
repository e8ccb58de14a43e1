"""``modelreins serve`` as a subprocess: first-start admin token, MCP and health over HTTP,
clean exit on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.text import TextReceiveStream

from tests.mcp.test_http import over_sse, over_streamable
from tests.mcp.test_stdio import CONFIG, MODELREINS

pytestmark = pytest.mark.slow

READY = re.compile(r"serving (http://\S+)/mcp ")
TOKEN = re.compile(r"export MODELREINS_TOKEN=(mr_[0-9A-Za-z]+)")


@dataclass
class Served:
    process: Process
    url: str
    lines: list[str] = field(default_factory=list)
    """stderr up to the ready line."""

    @property
    def token(self) -> str | None:
        found = TOKEN.search("\n".join(self.lines))
        return found.group(1) if found else None


async def _lines(stream: ByteReceiveStream) -> AsyncIterator[str]:
    buffer = ""
    async for chunk in TextReceiveStream(stream):
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line


@asynccontextmanager
async def serve_process(home: Path, *args: str) -> AsyncIterator[Served]:
    """``modelreins serve --port 0`` on ``home``, once it says it is serving."""
    env = {**os.environ, "MODELREINS_HOME": str(home)}
    async with await anyio.open_process([MODELREINS, "serve", "--port", "0", *args], env=env,
                                        stdout=subprocess.DEVNULL) as process:
        assert process.stderr is not None
        lines: list[str] = []
        url = None
        stderr = _lines(process.stderr)
        with anyio.fail_after(30):
            async for line in stderr:
                lines.append(line)
                if ready := READY.search(line):
                    url = ready.group(1)
                    break
        assert url, "\n".join(lines)
        served = Served(process, url, lines)
        async with anyio.create_task_group() as tg:
            async def drain() -> None:
                async for line in stderr:
                    served.lines.append(line)

            tg.start_soon(drain)
            try:
                yield served
            finally:
                if process.returncode is None:
                    process.terminate()
                with anyio.fail_after(20):
                    await process.wait()


@pytest.fixture
def serve_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return home


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
