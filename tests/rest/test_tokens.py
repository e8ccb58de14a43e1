"""Tokens over REST (admin) and their one-time view: the raw value is shown once, through
``/view/{nonce}``, and is never in a response body, the database files or a log line."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn

from core.clock import FakeClock
from core.engine import DB_FILE, Engine
from tests.mcp.conftest import serve_app
from tests.rest.conftest import Api, error_of, mint_callers, open_engine, rest_app, running_api
from tests.support.loopback import bound_socket
from tests.support.scripted import ScriptedProvider

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
TTL_S = 60


async def mint(client: httpx2.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/tokens", json={"name": "ci", **fields})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def view_path(created: dict[str, Any]) -> str:
    match = re.fullmatch(r"http://[^/]+(/view/[A-Za-z0-9_-]{43})", created["viewUrl"])
    assert match, created["viewUrl"]
    return match.group(1)


def stored_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (home / DB_FILE, home / f"{DB_FILE}-wal")
                    if p.exists())


async def test_mint_answers_with_the_record_and_a_view_link_never_the_token(
    api: Api, admin: httpx2.AsyncClient,
) -> None:
    created = await mint(admin, scopes=["dispatch", "tasks:read"], providers=["other"])
    assert set(created) == {"token", "viewUrl"}
    info = created["token"]
    assert info["name"] == "ci" and info["kind"] == "user"
    assert info["scopes"] == ["dispatch", "tasks:read"] and info["providers"] == ["other"]
    assert created["viewUrl"].startswith(api.url + "/view/")
    viewed = (await admin.get(view_path(created), headers=JSON)).json()
    assert viewed == {"token": viewed["token"], "name": "ci", "kind": "user"}
    assert viewed["token"].startswith(info["prefix"])
    assert viewed["token"] not in str(created)
    async with api.client(viewed["token"]) as minted:
        assert (await minted.post("/api/dispatch", json={"prompt": "x",
                                                         "provider": "other"})).status_code == 200
        error_of(await minted.get("/api/tokens"), 403, "FORBIDDEN")


async def test_mint_without_scopes_grants_the_default_user_scopes(admin: httpx2.AsyncClient
                                                                   ) -> None:
    created = await mint(admin)
    assert created["token"]["scopes"] == ["dispatch", "tasks:read", "tasks:write",
                                          "jobs:read", "jobs:write"]


async def test_view_url_uses_the_public_url_when_configured(
    tmp_path: Path, scripted: dict[str, ScriptedProvider],
) -> None:
    public = "https://reins.example.com"
    async with open_engine(tmp_path, scripted) as engine:
        minted = await mint_callers(engine)
        async with serve_app(rest_app(engine, public_url=public)) as url, \
                httpx2.AsyncClient(base_url=url, trust_env=False, headers={
                    "Authorization": f"Bearer {minted['admin']}"}) as admin:
            created = await mint(admin)
    assert created["viewUrl"].startswith(public + "/view/")


@pytest.mark.parametrize(("body", "path"), [
    pytest.param({"name": "x", "scopes": ["root"]}, "scopes[0]", id="unknown-scope"),
    pytest.param({"name": " ", "scopes": ["dispatch"]}, "name", id="blank-name"),
    pytest.param({"scopes": ["dispatch"]}, "name", id="no-name"),
    pytest.param({"name": "x", "scopes": "dispatch"}, "scopes", id="scopes-not-a-list"),
])
async def test_invalid_mint_requests_name_the_field(admin: httpx2.AsyncClient,
                                                    body: dict[str, Any], path: str) -> None:
    error = error_of(await admin.post("/api/tokens", json=body), 400, "VALIDATION_ERROR")
    assert path in [d["path"] for d in error["details"]]


async def test_view_shows_an_html_page_once_then_410(admin: httpx2.AsyncClient) -> None:
    path = view_path(await mint(admin, name="laptop <b>"))
    first = await admin.get(path, headers=BROWSER)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert first.headers["cache-control"] == "no-store"
    assert first.headers["referrer-policy"] == "no-referrer"
    token = re.search(r"<code>(mr_[0-9A-Za-z]{43})</code>", first.text)
    assert token and "laptop &lt;b&gt;" in first.text
    again = await admin.get(path, headers=BROWSER)
    assert again.status_code == 410 and "already viewed" in again.text
    assert again.headers["cache-control"] == "no-store"
    assert token.group(1) not in again.text
    json_again = await admin.get(path, headers=JSON)
    assert error_of(json_again, 410, "GONE")["message"] == "already viewed"
    assert json_again.headers["cache-control"] == "no-store"


async def test_view_json_once_then_410(admin: httpx2.AsyncClient) -> None:
    path = view_path(await mint(admin))
    first = await admin.get(path, headers=JSON)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert set(first.json()) == {"token", "name", "kind"}
    error_of(await admin.get(path, headers=JSON), 410, "GONE")
    assert (await admin.get(path, headers=BROWSER)).status_code == 410


@pytest.mark.parametrize("nonce", ["A" * 43, "short", "x" * 200])
async def test_unknown_view_links_are_gone(admin: httpx2.AsyncClient, nonce: str) -> None:
    error_of(await admin.get(f"/view/{nonce}", headers=JSON), 410, "GONE")
    assert (await admin.get(f"/view/{nonce}")).status_code == 410


async def test_view_needs_no_token_and_head_does_not_burn_it(api: Api,
                                                             admin: httpx2.AsyncClient) -> None:
    path = view_path(await mint(admin))
    async with api.client("") as anonymous:
        head = await anonymous.head(path)
        assert head.status_code == 405 and head.headers["allow"] == "GET"
        assert (await anonymous.get(path, headers=JSON)).status_code == 200


@asynccontextmanager
async def serve_logged(engine: Engine) -> AsyncIterator[str]:
    """The app with uvicorn's access log on, at DEBUG (logger levels restored after)."""
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = [lg.level for lg in loggers]
    sock = bound_socket()
    server = uvicorn.Server(uvicorn.Config(rest_app(engine), log_level="debug", access_log=True,
                                           log_config=None, lifespan="on"))
    host, port = sock.getsockname()[:2]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://{host}:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}"
                     for r in caplog.records)


@pytest.mark.parametrize("accept", [JSON, BROWSER], ids=["json", "html"])
async def test_raw_token_is_never_on_disk_or_in_a_log_line(
    tmp_path: Path, scripted: dict[str, ScriptedProvider], caplog: pytest.LogCaptureFixture,
    accept: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_engine(tmp_path, scripted, on_disk=True) as engine:
        minted = await mint_callers(engine)
        async with serve_logged(engine) as url, httpx2.AsyncClient(
                base_url=url, trust_env=False,
                headers={"Authorization": f"Bearer {minted['admin']}"}) as admin:
            path = view_path(await mint(admin))
            [(secret,)] = engine.store.db.conn.execute(  # type: ignore[attr-defined]
                "SELECT secret FROM views WHERE secret IS NOT NULL").fetchall()
            assert secret.encode() in stored_bytes(tmp_path), "the check can see a secret"
            viewed = await admin.get(path, headers=accept)
            assert secret in viewed.text
            assert secret.encode() not in stored_bytes(tmp_path)
            assert (await admin.get(path, headers=accept)).status_code == 410
            assert (await admin.get("/api/audit")).status_code == 200
    assert secret.encode() not in stored_bytes(tmp_path)
    logs = logged_text(caplog)
    assert path in logs, "the access log was captured (it names the link, fine)"
    assert secret not in logs
    assert secret[:12] not in logs


async def test_expired_view_is_gone_and_erased_from_disk(
    tmp_path: Path, scripted: dict[str, ScriptedProvider],
) -> None:
    clock = FakeClock()
    async with open_engine(tmp_path, scripted, clock=clock, on_disk=True,
                           viewTtlS=TTL_S) as engine, \
            running_api(engine) as api, api.client() as admin:
        path = view_path(await mint(admin))
        [(secret,)] = engine.store.db.conn.execute(  # type: ignore[attr-defined]
            "SELECT secret FROM views WHERE secret IS NOT NULL").fetchall()
        clock.advance(TTL_S + 1)
        assert error_of(await admin.get(path, headers=JSON), 410, "GONE")["message"] \
            == "expired"
        browser = await admin.get(path, headers=BROWSER)
        assert browser.status_code == 410 and "expired" in browser.text
        assert secret.encode() not in stored_bytes(tmp_path)


async def test_list_shows_metadata_and_revoke_takes_effect_at_once(
    api: Api, admin: httpx2.AsyncClient,
) -> None:
    created = await mint(admin, name="short-lived", scopes=["dispatch"])
    raw = (await admin.get(view_path(created), headers=JSON)).json()["token"]
    async with api.client(raw) as minted:
        assert (await minted.get("/api/dispatches")).status_code == 200
        listing = (await admin.get("/api/tokens")).json()
        mine = next(t for t in listing["items"] if t["id"] == created["token"]["id"])
        assert mine["lastUsedAt"] is not None and mine["prefix"] == raw[:10]
        assert "hash" not in mine and raw not in str(listing)
        assert all(t["revokedAt"] is None for t in listing["items"])
        revoked = await admin.delete(f"/api/tokens/{created['token']['id']}")
        assert revoked.status_code == 204 and revoked.content == b""
        error_of(await minted.get("/api/dispatches"), 401, "UNAUTHORIZED")
    assert (await admin.delete(f"/api/tokens/{created['token']['id']}")).status_code == 204
    active = (await admin.get("/api/tokens")).json()
    everything = (await admin.get("/api/tokens", params={"includeRevoked": "true"})).json()
    assert everything["total"] == active["total"] + 2  # this one and the fixture's revoked
    entries = (await admin.get("/api/audit", params={"target": created["token"]["id"]})).json()
    assert [e["action"] for e in entries["items"]] == ["token.revoke", "token.create"]
    assert {e["actor"] for e in entries["items"]} == {"admin"}
    assert raw not in str(entries) and entries["items"][1]["details"]["prefix"] == raw[:10]


async def test_revoking_an_unknown_token_is_404(admin: httpx2.AsyncClient) -> None:
    error_of(await admin.delete("/api/tokens/tok_nope"), 404, "NOT_FOUND")
