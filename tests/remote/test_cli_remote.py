"""Every CLI command against a server (in-process CLI, the server on its own thread), and
``modelreins ping``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from core.config import ServerConfig
from core.engine import Engine
from mcp_server.app import build_app
from mcp_server.cli import main
from mcp_server.cli.ping_cmd import format_uptime
from tests.mcp.processes import make_home
from tests.remote.test_errors import closed_port
from tests.support.loopback import serve_in_thread


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    token: str


def _mint(home: Path, name: str, scopes: list[str]) -> str:
    async def mint() -> str:
        async with Engine.open(home) as engine:
            return (await engine.tokens.mint(name, scopes))[1]

    return anyio.run(mint)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``serve``'s app on the home of :func:`make_home` (echo, spare), with an admin token."""
    home = make_home(tmp_path / "server")
    token = _mint(home, "cli-admin", ["admin"])
    app = build_app(lambda: Engine.open(home), ServerConfig())
    with serve_in_thread(app) as url:
        yield Server(url, home, token)


@pytest.fixture
def remote_env(home: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Point the CLI at :func:`server`; ``home`` (the client's) stays empty."""
    monkeypatch.setenv("MODELREINS_URL", server.url)
    monkeypatch.setenv("MODELREINS_TOKEN", server.token)
    return server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dispatch_streams_remotely_with_the_header(
    remote_env: Server, home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "dispatch", "hello remote")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Dispatching to provider: echo (default)"
    assert lines[1].startswith("────")
    assert lines[2] == "hello remote"
    assert "[echo · " in err and "dsp_" in err
    code, out, _ = run(capsys, "dispatch", "to spare", "--provider", "spare", "--no-stream")
    assert code == 0
    assert out.splitlines()[0] == "Dispatching to provider: spare"
    assert out.splitlines()[2] == "to spare"
    code, out, _ = run(capsys, "dispatch", "as json", "--json")
    assert (code, json.loads(out)["text"]) == (0, "as json")
    assert list(home.iterdir()) == [], "the client's home is never touched"


def test_history_lists_what_the_server_served(
    remote_env: Server, capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "dispatch", "first", "--no-stream")
    run(capsys, "dispatch", "second", "--no-stream")
    code, out, _ = run(capsys, "history", "--json")
    page = json.loads(out)
    assert code == 0
    assert (page["total"], [r["prompt"] for r in page["items"]]) == (2, ["second", "first"])
    code, out, _ = run(capsys, "history", "--limit", "1")
    assert code == 0 and out.startswith("2 dispatches (showing 1 from 0)")


def test_errors_are_one_line_with_their_code(
    remote_env: Server, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "dispatch", "x", "--provider", "nope")
    assert code == 1 and out == ""
    assert err == "error: NOT_FOUND: unknown provider 'nope' (known: echo, spare)\n"
    code, _, err = run(capsys, "tasks", "create", "bad", "--schedule", "99 * * * *",
                       "--prompt", "x")
    assert code == 2 and err.startswith("error: VALIDATION_ERROR: ")


def test_providers_and_ping_them(remote_env: Server,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "providers", "--json")
    assert code == 0
    assert [(p["name"], p["status"]) for p in json.loads(out)] == [
        ("echo", "unknown"), ("spare", "unknown")]
    code, out, _ = run(capsys, "providers", "--ping")
    assert code == 0
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["healthy", "healthy"]


def test_tasks_lifecycle_remotely(remote_env: Server,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tasks", "create", "daily", "--schedule", "0 9 * * *",
                         "--prompt", "morning report")
    assert code == 0, err
    assert out.startswith("Created task task_")
    code, out, _ = run(capsys, "tasks", "list")
    assert code == 0 and "daily" in out and "0 9 * * *" in out
    code, out, _ = run(capsys, "tasks", "update", "daily", "--prompt", "evening", "--json")
    assert json.loads(out)["prompt"] == "evening"
    code, out, _ = run(capsys, "tasks", "disable", "daily")
    assert out == "task 'daily' disabled\n"
    code, out, err = run(capsys, "tasks", "run", "daily", "--wait", "10")
    assert code == 0, err
    assert out == "evening\n" and "manual · success · echo" in err
    assert "runs in this process" not in err, "a remote run runs on the server"
    code, out, _ = run(capsys, "tasks", "results", "daily", "--json")
    page = json.loads(out)
    assert (page["total"], page["items"][0]["text"]) == (1, "evening")
    run_id = page["items"][0]["runId"]
    code, out, _ = run(capsys, "tasks", "results", "daily", "--run", run_id)
    assert (code, out) == (0, "evening\n")
    code, out, _ = run(capsys, "tasks", "results", "daily", "--latest", "--json")
    assert json.loads(out)["runId"] == run_id
    code, out, _ = run(capsys, "tasks", "delete", "daily")
    assert code == 0 and out.startswith("deleted task task_")
    code, _, err = run(capsys, "tasks", "show", "daily")
    assert code == 1 and err == "error: NOT_FOUND: no task 'daily'\n"


def test_a_run_without_waiting_prints_its_id_and_returns(
    remote_env: Server, capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "tasks", "create", "later", "--schedule", "@daily", "--prompt", "x")
    code, out, err = run(capsys, "tasks", "run", "later")
    assert code == 0 and out.startswith("run_") and err == ""


def test_tokens_remotely(remote_env: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "token", "create", "ci", "--scope", "dispatch", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["token"].startswith("mr_") and created["scopes"] == ["dispatch"]
    code, out, _ = run(capsys, "token", "list")
    assert code == 0 and "ci" in out and created["prefix"] in out
    code, out, _ = run(capsys, "token", "revoke", created["id"])
    assert (code, out) == (0, f"revoked token {created['id']} 'ci'\n")
    code, out, _ = run(capsys, "token", "revoke", created["id"])
    assert "already revoked" in out


def test_ping_prints_the_server(remote_env: Server, capsys: pytest.CaptureFixture[str]) -> None:
    from core import __version__

    code, out, err = run(capsys, "ping")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"✓ connected to ModelReins at {remote_env.url}"
    assert lines[1] == f"  version  : {__version__}"
    assert lines[2] == "  providers: 2 active"
    assert lines[3].startswith("  uptime   : ") and lines[3].endswith("s")


def test_ping_with_a_rejected_token_is_one_line(
    remote_env: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELREINS_TOKEN", "mr_" + "x" * 43)
    code, out, err = run(capsys, "ping")
    assert (code, out) == (1, "")
    assert err == "✗ the server rejected the token (invalid token)\n"


def test_ping_with_a_token_that_cannot_list_providers_still_connects(
    remote_env: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELREINS_TOKEN", _mint(remote_env.home, "reader", ["tasks:read"]))
    code, out, _ = run(capsys, "ping")
    assert code == 0 and "  providers: 0 active" in out


def test_ping_a_closed_port_is_one_line(home: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with closed_port() as url:
        monkeypatch.setenv("MODELREINS_URL", url)
        code, out, err = run(capsys, "ping")
    assert (code, out) == (1, "")
    assert err == f"✗ cannot reach ModelReins at {url}: connection refused\n"


def test_ping_without_a_remote_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ping")
    assert (code, out) == (1, "")
    assert err.startswith("✗ no remote ModelReins configured") and err.count("\n") == 1


def test_a_saved_url_and_token_are_used(
    server: Server, home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "config", "set", "url", server.url)
    run(capsys, "config", "set", "token", server.token)
    code, out, _ = run(capsys, "dispatch", "saved", "--no-stream")
    assert code == 0 and out.splitlines()[2] == "saved"


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (42.9, "42s"), (60, "1m"), (3600 + 120, "1h 2m"),
    (4 * 86400 + 12 * 3600 + 7 * 60 + 5, "4d 12h 7m"), (86400, "1d 0h 0m"),
])
def test_uptime_format(seconds: float, shown: str) -> None:
    assert format_uptime(seconds) == shown
