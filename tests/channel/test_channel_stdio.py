"""``modelreins channel`` as a process, driven by the official SDK client over stdio, on the
same home as the test's engine (in-process backend, cross-process store)."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from channel.enrollment import CredentialStore
from channel.server import CHANNEL_CAPABILITY
from core.engine import Engine
from tests.channel.conftest import ChannelEvents, code_of, recruited, submit, wait_status

pytestmark = pytest.mark.slow


def params(argv: list[str], **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=argv[0], args=argv[1:], env=env)


async def test_a_pushed_job_is_completed_over_stdio(engine: Engine, mrhome: Path) -> None:
    recruitment = await recruited(engine, name="stdio-worker", tags=["review"])
    assert recruitment.command[recruitment.command.index("--home") + 1] == str(mrhome)
    events = ChannelEvents()
    try:
        async with Client(params(recruitment.command), mode="auto",
                          extensions=[events]) as client:
            assert client.protocol_version == "2025-11-25"
            assert CHANNEL_CAPABILITY in (client.server_capabilities.experimental or {})
            token_file = CredentialStore(mrhome).path("stdio-worker")
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

            job = await submit(engine, "Review PR 7", tags=["review"])
            event = await events.next(timeout_s=30)
            assert event.meta is not None and event.meta["job_id"] == str(job.id)
            assert "Review PR 7" in event.content
            result = await client.call_tool("mr_job_complete", {
                "job_id": job.id, "result": "Approved with nits", "status": "done"})
            assert not result.is_error
    finally:
        events.close()
    done = await engine.queue.jobs.get(job.id)
    assert (done.status, done.result) == ("done", "Approved with nits")


async def test_closing_the_session_releases_unclaimed_work_and_goes_offline(
    engine: Engine,
) -> None:
    recruitment = await recruited(engine, name="puller")
    async with Client(params(recruitment.command), mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"mr_job_complete", "mr_job_next", "modelreins_recruit"} <= tools
        job = await submit(engine, "left in the inbox")
        assert job.assigned_to == "puller"
        assert (await engine.queue.workers.get("puller")).status == "online"
    released = await wait_status(engine, job.id, "pending")
    with anyio.fail_after(10):
        while released.assigned_to is not None:
            released = await engine.queue.jobs.wait_for(job.id, 0.1)
    assert (await engine.queue.workers.get("puller")).status == "offline"


async def test_a_restart_reuses_the_stored_token_and_ignores_the_spent_code(
    engine: Engine,
) -> None:
    recruitment = await recruited(engine, name="restarts")
    for _ in range(2):
        async with Client(params(recruitment.command), mode="legacy") as client:
            pulled = await client.call_tool("mr_job_next", {})
            block = pulled.content[0]
            assert isinstance(block, TextContent)
            assert "No job is waiting" in block.text


async def test_a_spent_code_without_a_stored_token_fails_loudly(
    engine: Engine, mrhome: Path,
) -> None:
    recruitment = await recruited(engine, name="late")
    code = code_of(recruitment)
    await engine.views.take(code)
    argv = [*recruitment.command]
    result = await anyio.run_process(argv, check=False, stdin=subprocess.DEVNULL)
    stderr = result.stderr.decode()
    assert result.returncode != 0
    assert "GONE" in stderr and "already used or has expired" in stderr
    assert "modelreins_recruit" in stderr
    assert not CredentialStore(mrhome).path("late").exists()


async def test_sigterm_signs_off_and_exits_cleanly(engine: Engine) -> None:
    recruitment = await recruited(engine, name="terminated")
    hello = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "plain-client", "version": "1"}}}
    async with await anyio.open_process(recruitment.command) as process:
        assert process.stdin is not None and process.stdout is not None
        await process.stdin.send((json.dumps(hello) + "\n").encode())
        with anyio.fail_after(30):
            reply = json.loads(await _line(process.stdout))
        assert CHANNEL_CAPABILITY in reply["result"]["capabilities"]["experimental"]
        job = await submit(engine, "assigned, never claimed")
        assert job.assigned_to == "terminated"
        process.terminate()
        with anyio.fail_after(20):
            code = await process.wait()
    assert code == 0
    released = await engine.queue.jobs.get(job.id)
    assert (released.status, released.assigned_to) == ("pending", None)
    assert (await engine.queue.workers.get("terminated")).status == "offline"


async def _line(stream: ByteReceiveStream) -> str:
    buffer = b""
    while not buffer.endswith(b"\n"):
        buffer += await stream.receive()
    return buffer.decode()


async def test_the_channel_recruits_other_sessions_on_its_home(engine: Engine) -> None:
    recruitment = await recruited(engine, name="recruiter")
    async with Client(params(recruitment.command), mode="legacy") as client:
        result = await client.call_tool("modelreins_recruit", {"name": "second-session"})
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert not result.is_error, block.text
    assert "claude mcp add modelreins-channel -- " in block.text
    assert (await engine.queue.workers.get("second-session")).status == "offline"
