"""``GET /api/audit``, and the audit trail itself: every mutating call, through REST and
MCP alike, is recorded by the engine — dispatches without a synchronous write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from core.errors import ProviderError
from core.models import DispatchRequest
from core.principal import Principal
from mcp_server.server import build_server
from tests.mcp.conftest import as_caller
from tests.rest.conftest import Api, error_of, open_engine
from tests.support.scripted import ScriptedProvider, Step

TASK = {"name": "nightly", "schedule": "@daily", "prompt": "p"}


async def actions(admin: httpx2.AsyncClient, **params: str) -> list[tuple[str, str, Any]]:
    page = (await admin.get("/api/audit", params=params)).json()
    return [(e["actor"], e["action"], e["details"]) for e in page["items"]]


async def test_rest_mutations_are_audited_with_the_caller(api: Api) -> None:
    async with api.client(api.user) as user, api.client() as admin:
        dispatched = (await user.post("/api/dispatch", json={"prompt": "x"})).json()
        task = (await user.post("/api/tasks", json=TASK)).json()
        await user.patch(f"/api/tasks/{task['id']}", json={"prompt": "q"})
        run_id = (await user.post(f"/api/tasks/{task['id']}/run")).json()["runId"]
        await api.engine.tasks.wait_run(run_id, 10)
        assert (await user.delete(f"/api/tasks/{task['id']}")).status_code == 204
        assert await actions(admin, target=dispatched["id"]) == [
            ("user", "dispatch", {"provider": "main", "status": "success"})]
        assert [a for _, a, _ in await actions(admin, target=task["id"])] == [
            "task.delete", "task.run", "task.update", "task.create"]
        assert {actor for actor, *_ in await actions(admin, target=task["id"])} == {"user"}
        run_dispatches = await actions(admin, action="dispatch", actor="user")
        assert len(run_dispatches) == 2, "the task's run dispatched as its caller"


async def test_failed_dispatches_are_audited_too(api: Api, admin: httpx2.AsyncClient) -> None:
    async with api.client(api.other) as other:
        error_of(await other.post("/api/dispatch", json={"prompt": "x"}), 403, "FORBIDDEN")
    await admin.post("/api/dispatch", json={"prompt": "x", "provider": "nope"})
    assert await actions(admin, action="dispatch") == [], "refused before reaching a provider"
    provider = api.engine.providers["other"]
    assert isinstance(provider, ScriptedProvider)
    provider.steps.append(Step(error=ProviderError("bad", retriable=False)))
    await admin.post("/api/dispatch", json={"prompt": "x", "provider": "other"})
    assert await actions(admin, action="dispatch") == [
        ("admin", "dispatch", {"provider": "other", "status": "error"})]


async def test_mcp_calls_are_audited_like_rest_ones(api: Api, admin: httpx2.AsyncClient) -> None:
    caller = Principal(name="claude-session", kind="user", scopes=frozenset({"admin"}))
    server = build_server(lambda: api.engine, principal_of=as_caller(caller))
    async with Client(server) as client:
        result = await client.call_tool("mr_dispatch", {"prompt": "via mcp"})
        assert not result.is_error
        created = await client.call_tool("mr_task_create", TASK)
        assert not created.is_error
    assert [(a, d) for _, a, d in await actions(admin, actor="claude-session")][-1:] == [
        ("dispatch", {"provider": "main", "status": "success"})]
    assert [a for _, a, _ in await actions(admin, actor="claude-session")] == [
        "task.create", "dispatch"]


async def test_mcp_history_shows_a_restricted_caller_only_its_providers(api: Api) -> None:
    await api.engine.dispatch(DispatchRequest(prompt="main's"))
    mine = await api.engine.dispatch(DispatchRequest(prompt="mine", provider="other"))
    caller = Principal(name="narrow", kind="user", scopes=frozenset({"dispatch"}),
                       providers=frozenset({"other"}))
    async with Client(build_server(lambda: api.engine, principal_of=as_caller(caller))) as c:
        listed = await c.call_tool("mr_history", {})
        assert listed.structured_content is not None
        assert [r["id"] for r in listed.structured_content["items"]] == [mine.id]
        hidden = (await api.engine.history()).items[-1].id
        one = await c.call_tool("mr_history", {"id": hidden})
        assert one.is_error and one.structured_content is not None
        assert one.structured_content["error"]["code"] == "NOT_FOUND"


async def test_audit_filters_combine_and_page(api: Api, admin: httpx2.AsyncClient) -> None:
    for i in range(3):
        await admin.post("/api/dispatch", json={"prompt": f"p{i}"})
    page = (await admin.get("/api/audit", params={"action": "dispatch", "limit": 2})).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    newest = page["items"][0]
    assert newest["at"].endswith("Z") and newest["target"].startswith("dsp_")
    since = (await admin.get("/api/audit", params={"since": newest["at"]})).json()
    assert newest["id"] in [e["id"] for e in since["items"]]
    until = (await admin.get("/api/audit", params={"until": "2000-01-01T00:00:00Z"})).json()
    assert until["total"] == 0


@pytest.mark.parametrize(("params", "path"), [
    pytest.param({"since": "yesterday"}, "since", id="not-a-time"),
    pytest.param({"until": "2026-01-01T00:00:00"}, "until", id="no-timezone"),
])
async def test_audit_filters_are_validated(admin: httpx2.AsyncClient, params: dict[str, str],
                                           path: str) -> None:
    error = error_of(await admin.get("/api/audit", params=params), 400, "VALIDATION_ERROR")
    assert [d["path"] for d in error["details"]] == [path]


async def test_dispatch_audit_adds_no_write_on_the_request_path(
    tmp_path: Path, scripted: dict[str, ScriptedProvider],
) -> None:
    async with open_engine(tmp_path, scripted, on_disk=True) as engine:
        loop_conn = engine.store.db.conn  # type: ignore[attr-defined]
        before = loop_conn.total_changes
        record = await engine.dispatch(DispatchRequest(prompt="hot path"))
        assert loop_conn.total_changes == before, "history and audit wait for the writer"
        page = await engine.audit.query(target=record.id)
        assert [e.action for e in page.items] == ["dispatch"]
        assert loop_conn.total_changes == before
