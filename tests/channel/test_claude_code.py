"""The real Claude Code CLI installs and connects the channel exactly as recruited.

``modelreins_recruit`` is called on the main server (with the project as the client's
root); the ``claude mcp add`` line of its text is run verbatim in that project, and
``claude mcp list`` must report the channel Connected. A second entry runs the same
channel command behind a stdio tee (:mod:`tests.channel.wire_tee`), so the test reads what
the real client sent — a classic ``initialize`` — and that the server's answer declared the
experimental ``claude/channel`` capability.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from channel.enrollment import CredentialStore
from channel.recruit import CHANNEL_SERVER_NAME
from core.engine import Engine
from mcp_server.server import build_server
from tests.channel.conftest import roots_callback
from tests.mcp.test_claude_code import claude_bin, claude_env, states  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

TEE = Path(__file__).with_name("wire_tee.py")


async def recruit_text(engine: Engine, project: Path) -> str:
    async with Client(build_server(lambda: engine), mode="legacy",
                      list_roots_callback=roots_callback(project)) as client:
        result = await client.call_tool("modelreins_recruit", {"tags": ["review"]})
    assert not result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def printed_install(text: str) -> list[str]:
    line = next(line.strip() for line in text.splitlines()
                if line.strip().startswith("claude mcp add"))
    return shlex.split(line)


def wire(log: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(entry["dir"], json.loads(entry["line"]))
            for entry in map(json.loads, log.read_text(encoding="utf-8").splitlines())]


async def test_claude_code_connects_the_recruited_channel_and_sees_the_capability(
    claude_bin: Path, engine: Engine, tmp_path: Path,  # noqa: F811 - the fixture
) -> None:
    cc_home = tmp_path / "cchome"
    cc_home.mkdir()
    project = tmp_path / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'shop'\n", encoding="utf-8")

    text = await recruit_text(engine, project)
    install = printed_install(text)
    assert install[:5] == ["claude", "mcp", "add", CHANNEL_SERVER_NAME, "--"]
    channel_argv = install[5:]
    worker = channel_argv[channel_argv.index("--name") + 1]
    assert worker.startswith("shop-")

    async def run_claude(*args: str) -> str:
        """``claude ARGS`` in the project (where local-scope servers are registered)."""
        with anyio.fail_after(120):
            done = await anyio.run_process([str(claude_bin), *args], cwd=project,
                                           env=claude_env(cc_home), check=False)
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, output
        return output

    await run_claude(*install[1:])
    listing = await run_claude("mcp", "list")
    assert states(listing).get(CHANNEL_SERVER_NAME) == "Connected", listing
    details = await run_claude("mcp", "get", CHANNEL_SERVER_NAME)
    assert "Connected" in details, details
    assert engine.settings.home is not None
    credential = CredentialStore(engine.settings.home).load(worker)
    assert credential is not None and credential.token not in text

    log = tmp_path / "wire.jsonl"
    await run_claude("mcp", "add", "channel-wire", "--", sys.executable, str(TEE), str(log),
                     *channel_argv)
    listing = await run_claude("mcp", "list")
    assert states(listing).get("channel-wire") == "Connected", listing

    messages = wire(log)
    first_sent = next(m for d, m in messages if d == "c2s")
    assert first_sent["method"] == "initialize", first_sent
    assert first_sent["params"]["clientInfo"]["name"] == "claude-code"
    answer = next(m for d, m in messages if d == "s2c" and m.get("id") == first_sent["id"])
    assert answer["result"]["capabilities"]["experimental"] == {"claude/channel": {}}
    assert "mr_job_complete" in answer["result"]["instructions"]
    assert credential.token not in log.read_text(encoding="utf-8")
