"""Choosing remote mode: the environment, then what ``modelreins config set`` saved; the
token file is private from the moment it exists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.connection import (
    TOKEN_FILE,
    Connection,
    connection_settings,
    mask_token,
    save_token,
    save_url,
)
from core.errors import ValidationFailed
from mcp_server.cli import main

TOKEN = "mr_" + "A" * 43
OTHER = "mr_" + "B" * 43


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_nothing_configured_is_local_mode(home: Path) -> None:
    assert connection_settings(home, env={}) is None


def test_the_environment_wins_over_what_is_saved(home: Path) -> None:
    save_url(home, "http://saved:8484")
    save_token(home, TOKEN)
    env = {"MODELREINS_URL": "http://env:9000/", "MODELREINS_TOKEN": OTHER}
    assert connection_settings(home, env) == Connection("http://env:9000", OTHER, "environment")


def test_the_saved_token_never_goes_to_another_server(home: Path) -> None:
    save_url(home, "http://saved:8484")
    save_token(home, TOKEN)
    remote = connection_settings(home, {"MODELREINS_URL": "http://elsewhere"})
    assert remote == Connection("http://elsewhere", None, "environment")


def test_saved_url_and_token_and_a_token_override(home: Path) -> None:
    save_url(home, "https://mr.example.com/base/")
    save_token(home, TOKEN)
    assert connection_settings(home, {}) == Connection(
        "https://mr.example.com/base", TOKEN, "config")
    assert connection_settings(home, {"MODELREINS_TOKEN": OTHER}) == Connection(
        "https://mr.example.com/base", OTHER, "config")


@pytest.mark.parametrize("url", ["localhost:8484", "ftp://x", "http://", "http://h?q=1",
                                 "http://h:99999"])
def test_a_bad_url_names_where_it_came_from(home: Path, url: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        connection_settings(home, {"MODELREINS_URL": url})
    assert isinstance(raised.value.details, list)
    assert raised.value.details[0]["path"] == "MODELREINS_URL"


def test_the_token_is_masked_in_reprs() -> None:
    assert TOKEN not in repr(Connection("http://h", TOKEN, "config"))
    assert mask_token(TOKEN) == TOKEN[:10] + "…"
    assert mask_token(None) == "(none)"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_set_saves_the_token_private(home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "set", "token", TOKEN)
    assert code == 0 and TOKEN not in out and TOKEN[:10] in out
    token_file = home / TOKEN_FILE
    assert _mode(token_file) == 0o600
    assert token_file.read_text() == TOKEN + "\n"


def test_replacing_a_readable_token_file_leaves_a_private_one(
    home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    loose = home / TOKEN_FILE
    loose.write_text(OTHER)
    os.chmod(loose, 0o644)
    assert run(capsys, "config", "set", "token", TOKEN)[0] == 0
    assert _mode(loose) == 0o600 and loose.read_text().strip() == TOKEN
    assert [p.name for p in home.iterdir()] == [TOKEN_FILE], "no temporary file is left"


def test_the_token_can_come_from_stdin(home: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert run(capsys, "config", "set", "token", "-")[0] == 0
    assert (home / TOKEN_FILE).read_text().strip() == TOKEN


def test_a_malformed_token_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "set", "token", "hunter2")
    assert code == 2 and "mr_" in err
    assert not (home / TOKEN_FILE).exists()


def test_config_set_show_and_unset(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "set", "url", "http://127.0.0.1:8484/")
    assert code == 0 and "http://127.0.0.1:8484" in out
    run(capsys, "config", "set", "token", TOKEN)
    code, out, _ = run(capsys, "config", "show")
    assert code == 0
    assert "url: http://127.0.0.1:8484" in out and TOKEN[:10] + "…" in out
    assert TOKEN not in out
    assert "providers" not in out, "a home that only points at a server has no config"

    assert run(capsys, "config", "unset", "token")[0] == 0
    assert not (home / TOKEN_FILE).exists()
    assert connection_settings(home, {}) == Connection("http://127.0.0.1:8484", None, "config")
    code, out, _ = run(capsys, "config", "unset", "url")
    assert code == 0 and "forgotten" in out
    assert connection_settings(home, {}) is None
    assert "no url was saved" in run(capsys, "config", "unset", "url")[1]


def test_config_show_says_when_commands_run_locally(
    home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "config", "init")
    code, out, _ = run(capsys, "config", "show")
    assert code == 0 and "remote: none" in out and "providers:" in out


def test_config_show_json_names_the_remote(home: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("MODELREINS_URL", "http://10.0.0.5:8484")
    monkeypatch.setenv("MODELREINS_TOKEN", TOKEN)
    code, out, _ = run(capsys, "config", "show", "--json")
    assert code == 0
    assert json.loads(out)["remote"] == {"url": "http://10.0.0.5:8484",
                                         "token": TOKEN[:10] + "…",
                                         "source": "MODELREINS_URL"}
