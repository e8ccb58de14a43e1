"""``modelreins_recruit`` on the main server: naming, tags, the three pasteable parts, the
enrollment code instead of a token, re-use by name, and who may recruit."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent

from channel.enrollment import CredentialStore, HttpExchange, enroll
from channel.recruit import CHANNEL_SERVER_NAME, channel_argv
from channel.workspace import host_label
from core.engine import Engine
from core.principal import Principal
from core.remote import RemoteEngine
from mcp_server.server import build_server
from tests.channel.conftest import code_in, roots_callback
from tests.mcp.conftest import as_caller, live_app, serve_app

TOKEN_SHAPE = re.compile(r"mr_[0-9A-Za-z]{20,}")


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def install_argv(text: str) -> list[str]:
    """The ``claude mcp add`` command in the recruit text, as an argument vector."""
    line = next(line.strip() for line in text.splitlines()
                if line.strip().startswith("claude mcp add"))
    return shlex.split(line)


async def recruit_call(engine: Engine, root: Path | None, *, mode: str = "legacy",
                       **arguments: object) -> CallToolResult:
    server = build_server(lambda: engine)
    roots = roots_callback(root) if root is not None else None
    async with Client(server, mode=mode, list_roots_callback=roots) as client:
        return await client.call_tool("modelreins_recruit", dict(arguments))


async def test_recruit_names_and_tags_the_worker_after_the_clients_workspace(
    engine: Engine, workspace: Path,
) -> None:
    result = await recruit_call(engine, workspace, tags=["Review"])
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert data is not None
    assert data["worker"] == f"shop-api-{host_label()}"
    assert data["tags"] == ["review", "code", "python"]
    assert data["workspace"] == str(workspace)
    worker = await engine.queue.workers.get(data["worker"])
    assert worker.tags == ["review", "code", "python"]
    assert worker.status == "offline"


async def test_the_text_holds_the_command_the_restart_line_and_the_vscode_block(
    engine: Engine, workspace: Path,
) -> None:
    result = await recruit_call(engine, workspace, name="Shop Worker", capacity=2)
    text = text_of(result)
    data = result.structured_content
    assert data is not None and data["worker"] == "shop-worker"

    argv = install_argv(text)
    assert argv[:5] == ["claude", "mcp", "add", CHANNEL_SERVER_NAME, "--"]
    channel = argv[5:]
    assert channel[1] == "channel"
    assert channel[2].startswith("--enroll=")
    assert channel == data["command"]
    assert channel[channel.index("--name") + 1] == "shop-worker"
    assert channel[channel.index("--capacity") + 1] == "2"
    assert channel[channel.index("--home") + 1] == str(engine.settings.home)
    assert "--url" not in channel

    assert f"claude --dangerously-load-development-channels server:{CHANNEL_SERVER_NAME}" \
        in text
    block = json.loads(text[text.index("{"):])
    entry = block["servers"][CHANNEL_SERVER_NAME]
    assert entry == {"type": "stdio", "command": channel[0], "args": channel[1:]}


async def test_the_text_carries_a_single_use_code_and_never_the_token(
    engine: Engine, workspace: Path,
) -> None:
    result = await recruit_call(engine, workspace)
    text = text_of(result)
    everything = text + json.dumps(result.structured_content)
    assert not TOKEN_SHAPE.search(everything)
    argv = install_argv(text)
    code = code_in(argv)
    assert not code.startswith("mr_")

    data = result.structured_content
    assert data is not None
    assert engine.settings.home is not None
    credential = await enroll(code, data["worker"], engine.views,
                              CredentialStore(engine.settings.home))
    assert credential.token.startswith("mr_")
    assert credential.token not in everything
    principal = await engine.tokens.authenticate(credential.token)
    assert (principal.kind, principal.name) == ("worker", data["worker"])


async def test_recruiting_again_reuses_the_worker_with_a_fresh_code(
    engine: Engine, workspace: Path,
) -> None:
    first = (await recruit_call(engine, workspace)).structured_content
    second = (await recruit_call(engine, workspace)).structured_content
    assert first is not None and second is not None
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["worker"] == second["worker"]
    assert first["command"] != second["command"]
    workers = [w for w in await engine.queue.workers.list() if w.name == first["worker"]]
    assert len(workers) == 1


async def test_without_roots_the_working_directory_names_the_worker(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "billing"
    project.mkdir()
    (project / "go.mod").write_text("module billing\n", encoding="utf-8")
    monkeypatch.chdir(project)
    for mode in ("legacy", "auto"):
        result = await recruit_call(engine, None, mode=mode, name=f"w-{mode}")
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        assert result.structured_content["tags"] == ["code", "go"]
        assert result.structured_content["workspace"] == str(project)


async def test_only_an_admin_may_recruit(engine: Engine, workspace: Path) -> None:
    reader = Principal(name="reader", kind="user", scopes=frozenset({"jobs:read"}))
    server = build_server(lambda: engine, principal_of=as_caller(reader))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("modelreins_recruit", {})
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("capacity", [0, 33])
async def test_a_capacity_out_of_range_is_an_invalid_params_error(engine: Engine,
                                                                   capacity: int) -> None:
    server = build_server(lambda: engine)
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("modelreins_recruit", {"capacity": capacity})
    assert caught.value.error.code == INVALID_PARAMS


async def test_a_name_with_nothing_usable_is_a_validation_error(engine: Engine) -> None:
    result = await recruit_call(engine, None, name="!!!")
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "VALIDATION_ERROR"


async def test_recruit_through_a_remote_engine_registers_on_the_server(
    engine: Engine, tmp_path: Path,
) -> None:
    _, admin = await engine.tokens.mint("admin", ["admin"])
    async with serve_app(live_app(engine)) as url, \
            RemoteEngine.open(url, admin) as remote, httpx2.AsyncClient() as http:
        server = build_server(lambda: remote)
        async with Client(server, mode="legacy") as client:
            first = await client.call_tool("modelreins_recruit", {"name": "far-away"})
            again = await client.call_tool("modelreins_recruit", {"name": "far-away"})
        assert not first.is_error, text_of(first)
        data = first.structured_content
        assert data is not None and data["url"] == url
        argv = data["command"]
        assert argv[argv.index("--url") + 1] == url and "--home" not in argv
        assert not TOKEN_SHAPE.search(text_of(first))
        code = code_in(argv)
        credential = await enroll(code, "far-away", HttpExchange(url, http),
                                  CredentialStore(tmp_path / "session-home"), url=url)
        assert (await engine.tokens.authenticate(credential.token)).name == "far-away"
        assert again.is_error and "already registered" in text_of(again)


def test_a_code_starting_with_a_dash_still_parses() -> None:
    # URL-safe codes start with "-" one time in 64; "--enroll CODE" would then break.
    from mcp_server.cli import build_parser

    argv = channel_argv("-abc_DEF", "w1", url=None, home=None, tags=(), provider=None,
                        capacity=1)
    args = build_parser().parse_args(argv[1:])
    assert args.enroll == "-abc_DEF"
