"""Dual topology through one ``modelreins serve``: one MCP session calls, a recruited
channel session serves.

The caller (official SDK over Streamable HTTP, admin token) recruits; the channel is
started from the printed command (so it enrolls at ``GET /view/{code}`` and works over the
§7 worker protocol) with its own home, as on another machine. The caller then dispatches to
the ``fleet`` provider and submits a queue job; the channel session receives each as a
``notifications/claude/channel`` event, answers with ``mr_job_complete``, and the caller
gets the results.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from channel.enrollment import CredentialStore
from tests.channel.conftest import ChannelEvents
from tests.mcp.clients import over_streamable
from tests.mcp.processes import serve_process

pytestmark = pytest.mark.slow

CONFIG = """\
server: {host: 127.0.0.1, port: 8484, auth: token}
providers:
  echo: {type: echo, default: true}
  fleet: {type: fleet, timeout: 40000}
"""


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def channel_argv(recruit_text: str) -> list[str]:
    line = next(line.strip() for line in recruit_text.splitlines()
                if line.strip().startswith("claude mcp add"))
    argv = shlex.split(line)
    return argv[argv.index("--") + 1:]


async def test_a_caller_session_gets_results_from_a_recruited_channel_session(
    tmp_path: Path,
) -> None:
    server_home = tmp_path / "server-home"
    server_home.mkdir(mode=0o700)
    (server_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    session_home = tmp_path / "session-home"
    events = ChannelEvents()
    try:
        await _caller_and_channel(server_home, session_home, events)
    finally:
        events.close()


async def _caller_and_channel(server_home: Path, session_home: Path,
                              events: ChannelEvents) -> None:
    async with serve_process(server_home) as served, \
            over_streamable(served.url, served.token) as caller:
        recruited = await caller.call_tool("modelreins_recruit", {
            "name": "remote-session", "tags": ["review"]})
        assert not recruited.is_error, text_of(recruited)
        argv = channel_argv(text_of(recruited))
        assert argv[argv.index("--url") + 1] == served.url
        assert "--home" not in argv
        assert served.token is not None and served.token not in text_of(recruited)

        params = StdioServerParameters(command=argv[0], args=argv[1:],
                                       env={"MODELREINS_HOME": str(session_home)})
        async with Client(params, mode="auto", extensions=[events]) as channel:
            credential = CredentialStore(session_home).load("remote-session")
            assert credential is not None and credential.url == served.url

            async def answer(result: str) -> dict[str, str]:
                event = await events.next(timeout_s=30)
                assert event.meta is not None
                done = await channel.call_tool("mr_job_complete", {
                    "job_id": int(event.meta["job_id"]), "result": result})
                assert not done.is_error, text_of(done)
                return event.meta

            dispatched: dict[str, Any] = {}

            async def dispatch() -> None:
                result = await caller.call_tool("mr_dispatch", {
                    "prompt": "Review PR 9", "provider": "fleet", "wait_s": 40})
                assert not result.is_error, text_of(result)
                assert result.structured_content is not None
                dispatched.update(result.structured_content)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(dispatch)
                    await answer("LGTM from the channel")
            assert dispatched["status"] == "success"
            assert dispatched["text"] == "LGTM from the channel"
            assert dispatched["provider"] == "fleet"

            submitted = await caller.call_tool("mr_job_submit", {
                "prompt": "Summarise the changelog", "tags": ["review"]})
            job = submitted.structured_content
            assert job is not None and job["assignedTo"] == "remote-session"
            meta = await answer("Three fixes, one feature.")
            assert meta["job_id"] == str(job["id"]) and meta["tags"] == "review"
            status = await caller.call_tool("mr_job_status", {"job_id": job["id"]})
            assert status.structured_content is not None
            assert status.structured_content["status"] == "done"
            assert status.structured_content["result"] == "Three fixes, one feature."
