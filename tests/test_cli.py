from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_config(home: Path, text: str) -> None:
    (home / "config.yaml").write_text(text)


def test_dispatch_streams_with_header(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "dispatch", "hello there")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Dispatching to provider: echo (default)"
    assert lines[1].startswith("────")
    assert lines[2] == "hello there"
    assert "echo" in err and "dsp_" in err


def test_dispatch_no_stream_and_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dispatch", "one two", "--no-stream")
    assert code == 0 and out.splitlines()[2] == "one two"
    code, out, _ = run(capsys, "dispatch", "three", "--json")
    record = json.loads(out)
    assert (record["text"], record["provider"], record["status"]) == ("three", "echo", "success")
    assert record["usage"] == {"input_tokens": 1, "output_tokens": 1}
    assert record["createdAt"].endswith("Z")


def test_unknown_provider_is_one_line_error(home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "dispatch", "x", "--provider", "nope")
    assert code == 1
    assert err.strip() == "error: NOT_FOUND: unknown provider 'nope' (known: echo)"
    assert "Traceback" not in out + err


def test_invalid_config_lists_problems(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(home, "providers:\n  a: {type: antropic}\n  b: {type: echo, modle: x}\n")
    code, _, err = run(capsys, "config", "validate")
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == "error: VALIDATION_ERROR: 2 problems:"
    assert lines[1].startswith(
        "  - providers.a.type: unknown provider type 'antropic'; did you mean 'anthropic'? "
        "(known: anthropic, cli, echo, ")
    assert lines[2] == "  - providers.b.modle: unknown key 'modle'; did you mean 'model'?"
    assert len(lines) == 3


def test_config_init_show_validate(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = home / "new"
    code, out, _ = run(capsys, "config", "init", "--home", str(target))
    assert code == 0 and "created" in out and (target / "config.yaml").exists()
    code, out, _ = run(capsys, "config", "init", "--home", str(target))
    assert "already exists" in out
    write_config(target, "providers:\n  c: {type: anthropic, apiKey: sk-ant-verysecretvalue,"
                         " default: true}\n")
    code, out, _ = run(capsys, "config", "show", "--home", str(target))
    assert code == 0 and "sk-ant-verysecretvalue" not in out and "****alue" in out
    code, out, _ = run(capsys, "config", "validate", "--home", str(target))
    assert code == 0 and "valid: 1 providers (default: c)" in out


def test_providers_and_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "dispatch", "first")
    code, out, _ = run(capsys, "providers", "--ping")
    assert code == 0
    assert out.splitlines()[1].split()[:3] == ["echo", "echo", "healthy"]
    code, out, _ = run(capsys, "history", "--json")
    page = json.loads(out)
    assert page["total"] == 1 and page["items"][0]["prompt"] == "first"
    code, out, _ = run(capsys, "history")
    assert "1 dispatches" in out and "first" in out


def test_ping_of_missing_cli_command_reports_down(home: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_config(home, "providers:\n  e: {type: echo, default: true}\n"
                       "  gone: {type: cli, command: /nonexistent/tool-xyz}\n")
    code, out, _ = run(capsys, "providers", "--ping")
    assert code == 1
    gone = next(line for line in out.splitlines() if line.startswith("gone"))
    assert "down" in gone


def test_console_script_in_subprocess(home: Path) -> None:
    env = {**os.environ, "MODELREINS_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server.cli", "dispatch", "$(touch PWNED) `id`; rm -rf /"],
        env=env, capture_output=True, text=True, timeout=60, cwd=home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2] == "$(touch PWNED) `id`; rm -rf /"
    assert not (home / "PWNED").exists()


def test_cli_start_does_not_load_the_mcp_sdk() -> None:
    # Every command pays for what the parser's modules import; the SDK is only for the
    # commands that serve MCP.
    code = ("import sys, mcp_server.cli; mcp_server.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
