from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest

from core.audit import AuditEntry, AuditLog
from core.auth import TokenService
from core.clock import SystemClock
from core.engine import DB_FILE
from core.errors import Unauthorized
from core.principal import Principal
from core.store import open_sqlite
from mcp_server.cli import main

RAW = re.compile(r"mr_[0-9A-Za-z]{43}")


@pytest.fixture
def cli_home(home: Path) -> Path:
    (home / "config.yaml").write_text("providers:\n  echo: {type: echo, default: true}\n")
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def create(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, object], str]:
    code, out, _ = run(capsys, "token", "create", *argv, "--json")
    assert code == 0
    record = json.loads(out)
    return record, record.pop("token")


def authenticate(home: Path, raw: str) -> Principal:
    async def check() -> Principal:
        store = open_sqlite(home / DB_FILE)
        try:
            return await TokenService(store.tokens, SystemClock()).authenticate(raw)
        finally:
            await store.close()

    return anyio.run(check)


def audit_entries(home: Path) -> list[AuditEntry]:
    async def read() -> list[AuditEntry]:
        store = open_sqlite(home / DB_FILE)
        try:
            return (await AuditLog(store.audit, SystemClock()).query()).items
        finally:
            await store.close()

    return anyio.run(read)


def test_create_shows_the_raw_token_once_and_says_so(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "token", "create", "ci")
    assert code == 0
    assert err == ""
    found = RAW.findall(out)
    assert len(found) == 1
    assert out.count(found[0]) == 1
    assert "will not be shown again" in out
    assert "scopes:    dispatch, tasks:read, tasks:write, jobs:read, jobs:write" in out
    assert "providers: any" in out
    principal = authenticate(cli_home, found[0])
    assert principal.name == "ci"
    assert not principal.has("admin")


def test_create_with_scopes_providers_and_admin(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, raw = create(capsys, "reader", "--scope", "tasks:read,jobs:read",
                         "--scope", "dispatch", "--provider", "echo")
    assert record["scopes"] == ["dispatch", "tasks:read", "jobs:read"]
    assert record["providers"] == ["echo"]
    assert authenticate(cli_home, raw).providers == frozenset({"echo"})

    admin, _ = create(capsys, "root", "--admin")
    assert admin["scopes"] == ["admin"]


def test_unconfigured_provider_is_warned_about(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "token", "create", "x", "--provider", "claude")
    assert code == 0
    assert "provider 'claude' is not configured" in err


def test_unknown_scope_is_a_usage_error_naming_it(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "token", "create", "ci", "--scope", "jobs:nuke")
    assert code == 2
    assert out == ""
    assert err.startswith("error: VALIDATION_ERROR: scopes[0]: unknown scope 'jobs:nuke'")


def test_list_never_shows_raw_values(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, first_raw = create(capsys, "ci", "--provider", "echo")
    second, second_raw = create(capsys, "root", "--admin")
    authenticate(cli_home, first_raw)

    code, out, _ = run(capsys, "token", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PREFIX", "NAME", "SCOPES", "PROVIDERS", "LAST", "USED",
                                "REVOKED"]
    assert [line.split()[0] for line in lines[1:]] == [second["id"], first["id"]]
    assert f"{first['prefix']}…" in out
    assert "never" in lines[1]
    assert "never" not in lines[2]

    code, json_out, _ = run(capsys, "token", "list", "--json")
    listed = json.loads(json_out)
    assert [t["name"] for t in listed] == ["root", "ci"]
    for text in (out, json_out):
        assert not RAW.search(text)
        assert first_raw not in text
        assert second_raw not in text


def test_revoke_is_immediate_idempotent_and_listed(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, raw = create(capsys, "ci")
    token_id = str(record["id"])
    code, out, _ = run(capsys, "token", "revoke", token_id)
    assert (code, out.strip()) == (0, f"revoked token {token_id} 'ci'")
    with pytest.raises(Unauthorized, match="token revoked"):
        authenticate(cli_home, raw)

    code, out, _ = run(capsys, "token", "revoke", token_id)
    assert code == 0
    assert "already revoked" in out

    assert run(capsys, "token", "list")[1].startswith("no tokens")
    code, out, _ = run(capsys, "token", "list", "--all")
    assert token_id in out
    assert out.splitlines()[1].split()[-1].endswith("Z")


def test_revoke_unknown_token_fails(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "token", "revoke", "tok_missing")
    assert code == 1
    assert err.strip() == "error: NOT_FOUND: no token 'tok_missing'"


def test_mutations_are_audited_as_local_without_secrets(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, raw = create(capsys, "ci", "--provider", "echo")
    run(capsys, "token", "revoke", str(record["id"]))
    run(capsys, "token", "revoke", str(record["id"]))
    entries = audit_entries(cli_home)
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("local", "token.revoke", record["id"]),
        ("local", "token.create", record["id"]),
    ]
    assert entries[1].details == {"name": "ci", "kind": "user", "prefix": record["prefix"],
                                  "scopes": record["scopes"], "providers": ["echo"]}
    assert raw not in json.dumps([e.wire() for e in entries])
