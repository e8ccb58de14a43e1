"""``POST /api/dispatch`` (whole answers) and the history: ``GET /api/dispatches[/{id}]``."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from core.errors import ProviderError, RateLimited
from tests.rest.conftest import Api, error_of
from tests.support.scripted import ScriptedProvider, Step


async def test_dispatch_answers_with_the_full_record(admin: httpx2.AsyncClient) -> None:
    response = await admin.post("/api/dispatch", json={"prompt": "hello", "system": "be brief"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["id"].startswith("dsp_")
    assert record["text"] == "ok" and record["provider"] == "main"
    assert record["model"] == "main-model"
    assert record["usage"] == {"input_tokens": 1, "output_tokens": 2}
    assert record["createdAt"].endswith("Z") and isinstance(record["latencyMs"], int)
    assert record["attempts"] == [{"provider": "main", "code": None, "latencyMs": 0}]


async def test_dispatch_takes_messages_model_and_options(
    admin: httpx2.AsyncClient, scripted: dict[str, ScriptedProvider],
) -> None:
    response = await admin.post("/api/dispatch", json={
        "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        "prompt": "c", "provider": "other", "model": "m2", "options": {"temperature": 0.1}})
    assert response.status_code == 200, response.text
    [call] = scripted["other"].calls
    assert [m.content for m in call.messages] == ["a", "b", "c"]
    assert call.model == "m2" and call.options == {"temperature": 0.1}


@pytest.mark.parametrize(("body", "path"), [
    pytest.param({}, "prompt", id="no-prompt"),
    pytest.param({"prompt": 3}, "prompt", id="prompt-not-a-string"),
    pytest.param({"prompt": "x", "messages": [{"role": "robot", "content": "x"}]},
                 "messages.0.role", id="bad-role"),
    pytest.param({"prompt": "x", "stream": "often"}, "stream", id="bad-stream"),
])
async def test_invalid_dispatch_requests_name_the_field(
    admin: httpx2.AsyncClient, body: dict[str, object], path: str,
) -> None:
    error = error_of(await admin.post("/api/dispatch", json=body), 400, "VALIDATION_ERROR")
    assert path in [d["path"] for d in error["details"]]


async def test_unknown_provider_is_404(admin: httpx2.AsyncClient) -> None:
    response = await admin.post("/api/dispatch", json={"prompt": "x", "provider": "nope"})
    assert "unknown provider 'nope'" in error_of(response, 404, "NOT_FOUND")["message"]


async def test_restricted_token_may_only_dispatch_to_its_providers(
    api: Api, scripted: dict[str, ScriptedProvider],
) -> None:
    async with api.client(api.other) as client:
        denied = await client.post("/api/dispatch", json={"prompt": "x"})
        allowed = await client.post("/api/dispatch", json={"prompt": "x", "provider": "other"})
    assert error_of(denied, 403, "FORBIDDEN")["provider"] == "main"
    assert allowed.status_code == 200 and allowed.json()["provider"] == "other"
    assert scripted["main"].calls == []


async def test_rate_limit_answers_429_with_retry_after(
    admin: httpx2.AsyncClient, scripted: dict[str, ScriptedProvider],
) -> None:
    for name in ("main", "backup"):
        scripted[name].steps.append(Step(error=RateLimited("slow down", retry_after=6.5)))
    response = await admin.post("/api/dispatch", json={"prompt": "x"})
    error = error_of(response, 429, "RATE_LIMITED")
    assert response.headers["retry-after"] == "7"
    assert error["retryAfter"] == 6.5 and error["provider"] == "backup"


async def test_provider_failure_is_502_and_recorded(
    admin: httpx2.AsyncClient, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["other"].steps.append(Step(error=ProviderError("upstream 400", retriable=False)))
    response = await admin.post("/api/dispatch", json={"prompt": "x", "provider": "other"})
    assert error_of(response, 502, "PROVIDER_ERROR")["provider"] == "other"
    failed = (await admin.get("/api/dispatches", params={"status": "error"})).json()
    assert failed["total"] == 1 and failed["items"][0]["error"]["code"] == "PROVIDER_ERROR"


async def test_history_pages_newest_first_and_filters(admin: httpx2.AsyncClient) -> None:
    ids = []
    for i, provider in enumerate(["main", "other", "main"]):
        response = await admin.post("/api/dispatch", json={"prompt": f"p{i}",
                                                            "provider": provider})
        ids.append(response.json()["id"])
    page = (await admin.get("/api/dispatches")).json()
    assert [r["id"] for r in page["items"]] == ids[::-1]
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    second = (await admin.get("/api/dispatches", params={"limit": 1, "offset": 1})).json()
    assert [r["id"] for r in second["items"]] == [ids[1]] and second["total"] == 3
    mains = (await admin.get("/api/dispatches", params={"provider": "main"})).json()
    assert [r["id"] for r in mains["items"]] == [ids[2], ids[0]]
    one = await admin.get(f"/api/dispatches/{ids[1]}")
    assert one.status_code == 200 and one.json()["prompt"] == "p1"


async def test_history_shows_a_restricted_token_only_its_providers(api: Api) -> None:
    async with api.client() as admin, api.client(api.other) as restricted:
        main = (await admin.post("/api/dispatch", json={"prompt": "secret"})).json()["id"]
        mine = (await restricted.post("/api/dispatch", json={"prompt": "mine",
                                                             "provider": "other"})).json()["id"]
        seen = (await restricted.get("/api/dispatches")).json()
        assert [r["id"] for r in seen["items"]] == [mine] and seen["total"] == 1
        asked = (await restricted.get("/api/dispatches", params={"provider": "main"})).json()
        assert asked["items"] == [] and asked["total"] == 0
        error_of(await restricted.get(f"/api/dispatches/{main}"), 404, "NOT_FOUND")
        assert (await restricted.get(f"/api/dispatches/{mine}")).status_code == 200
        assert (await admin.get("/api/dispatches")).json()["total"] == 2


@pytest.mark.parametrize(("params", "path"), [
    pytest.param({"status": "maybe"}, "status", id="status"),
    pytest.param({"provider": ""}, "provider", id="empty-provider"),
])
async def test_history_filters_are_validated(admin: httpx2.AsyncClient,
                                             params: dict[str, str], path: str) -> None:
    error = error_of(await admin.get("/api/dispatches", params=params), 400, "VALIDATION_ERROR")
    assert [d["path"] for d in error["details"]] == [path]


async def test_wait_budget_answers_202_running_and_the_dispatch_goes_on(
    api: Api, admin: httpx2.AsyncClient, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["late"], gate=gate))
    response = await admin.post("/api/dispatch", params={"waitS": 0}, json={"prompt": "slow"})
    assert response.status_code == 202, response.text
    running = response.json()
    assert running["status"] == "running" and running["provider"] == "main"
    polled = await admin.get(f"/api/dispatches/{running['id']}")
    assert polled.json()["status"] == "running"
    gate.set()
    with anyio.fail_after(10):
        done = await api.engine.wait_dispatch(running["id"], 10)
    assert done.text == "late"
    assert (await admin.get(f"/api/dispatches/{running['id']}")).json()["status"] == "success"


async def test_quick_dispatch_within_its_wait_budget_is_200(admin: httpx2.AsyncClient) -> None:
    response = await admin.post("/api/dispatch", params={"waitS": 30}, json={"prompt": "x"})
    assert response.status_code == 200 and response.json()["status"] == "success"


@pytest.mark.parametrize(("params", "body"), [
    pytest.param({"waitS": "-1"}, {"prompt": "x"}, id="negative"),
    pytest.param({"waitS": "soon"}, {"prompt": "x"}, id="not-a-number"),
    pytest.param({"waitS": "1"}, {"prompt": "x", "stream": True}, id="with-stream"),
])
async def test_wait_budget_is_validated(admin: httpx2.AsyncClient, params: dict[str, str],
                                        body: dict[str, object]) -> None:
    error = error_of(await admin.post("/api/dispatch", params=params, json=body), 400,
                     "VALIDATION_ERROR")
    assert [d["path"] for d in error["details"]] == ["waitS"]
