"""``/api/tasks``: create, list, read, change, delete, run, and read results."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.rest.conftest import Api, error_of

SPEC = {"name": "daily-digest", "schedule": "0 9 * * *", "prompt": "Summarize the news",
        "timezone": "Europe/Berlin"}


async def create(client: httpx2.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/tasks", json={**SPEC, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def finished_run(api: Api, client: httpx2.AsyncClient, task_id: str, run_id: str
                       ) -> dict[str, Any]:
    """The run as the API shows it once it has finished."""
    await api.engine.tasks.wait_run(run_id, 10)
    run = (await client.get(f"/api/tasks/{task_id}/results/{run_id}")).json()
    assert run["status"] != "running"
    return dict(run)


async def test_create_then_read_and_list(admin: httpx2.AsyncClient) -> None:
    task = await create(admin)
    assert task["id"].startswith("task_") and task["nextRunAt"].endswith("Z")
    assert task["webhookFormat"] == "json" and task["lastRunAt"] is None
    by_id = (await admin.get(f"/api/tasks/{task['id']}")).json()
    by_name = (await admin.get("/api/tasks/daily-digest")).json()
    assert by_id == by_name == task
    await create(admin, name="another")
    listing = (await admin.get("/api/tasks", params={"limit": 1, "offset": 1})).json()
    assert listing["total"] == 2 and listing["limit"] == 1 and len(listing["items"]) == 1


@pytest.mark.parametrize(("fields", "paths"), [
    pytest.param({"schedule": "61 * * * *"}, ["schedule"], id="bad-cron"),
    pytest.param({"timezone": "Mars/Olympus"}, ["timezone"], id="bad-timezone"),
    pytest.param({"provider": "nope", "webhookFormat": "xml"}, ["webhookFormat"],
                 id="bad-format"),
    pytest.param({"name": None}, ["name"], id="null-name"),
])
async def test_invalid_tasks_list_every_problem(admin: httpx2.AsyncClient,
                                                fields: dict[str, Any], paths: list[str]
                                                ) -> None:
    error = error_of(await admin.post("/api/tasks", json={**SPEC, **fields}), 400,
                     "VALIDATION_ERROR")
    assert [d["path"] for d in error["details"]] == paths


async def test_duplicate_name_is_a_conflict(admin: httpx2.AsyncClient) -> None:
    await create(admin)
    error_of(await admin.post("/api/tasks", json=SPEC), 409, "CONFLICT")


async def test_patch_changes_only_the_given_fields(admin: httpx2.AsyncClient) -> None:
    task = await create(admin, model="m1")
    response = await admin.patch(f"/api/tasks/{task['id']}",
                                 json={"enabled": False, "model": None})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["enabled"] is False and changed["nextRunAt"] is None
    assert changed["model"] is None and changed["prompt"] == SPEC["prompt"]
    error_of(await admin.patch(f"/api/tasks/{task['id']}", json={"schedule": "nope"}), 400,
             "VALIDATION_ERROR")


async def test_delete_answers_204_and_the_task_is_gone(admin: httpx2.AsyncClient) -> None:
    task = await create(admin)
    response = await admin.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 204 and response.content == b""
    error_of(await admin.get(f"/api/tasks/{task['id']}"), 404, "NOT_FOUND")
    error_of(await admin.delete(f"/api/tasks/{task['id']}"), 404, "NOT_FOUND")


async def test_run_answers_202_with_a_run_id_and_results_follow(
    api: Api, admin: httpx2.AsyncClient,
) -> None:
    task = await create(admin)
    error_of(await admin.get(f"/api/tasks/{task['id']}/results/latest"), 404, "NOT_FOUND")
    started = await admin.post(f"/api/tasks/{task['id']}/run")
    assert started.status_code == 202
    assert set(started.json()) == {"runId"}
    run_id = started.json()["runId"]
    run = await finished_run(api, admin, task["id"], run_id)
    assert run["status"] == "success" and run["text"] == "ok" and run["trigger"] == "manual"
    again = (await admin.post(f"/api/tasks/{task['id']}/run")).json()["runId"]
    second = await finished_run(api, admin, task["id"], again)
    results = (await admin.get(f"/api/tasks/{task['id']}/results")).json()
    assert [r["runId"] for r in results["items"]] == [second["runId"], run_id]
    assert results["total"] == 2
    latest = (await admin.get(f"/api/tasks/{task['id']}/results/latest")).json()
    assert latest["runId"] == second["runId"]
    listed = (await admin.get(f"/api/tasks/{task['id']}")).json()
    assert listed["lastStatus"] == "success"


async def test_results_of_another_task_are_not_found(api: Api, admin: httpx2.AsyncClient
                                                       ) -> None:
    one = await create(admin)
    two = await create(admin, name="two")
    run_id = (await admin.post(f"/api/tasks/{one['id']}/run")).json()["runId"]
    await finished_run(api, admin, one["id"], run_id)
    error_of(await admin.get(f"/api/tasks/{two['id']}/results/{run_id}"), 404, "NOT_FOUND")


async def test_reader_reads_but_may_not_write(api: Api) -> None:
    async with api.client() as admin, api.client(api.reader) as reader:
        task = await create(admin)
        assert (await reader.get(f"/api/tasks/{task['id']}")).status_code == 200
        assert (await reader.get(f"/api/tasks/{task['id']}/results")).status_code == 200
        for response in (
            await reader.post("/api/tasks", json={**SPEC, "name": "mine"}),
            await reader.patch(f"/api/tasks/{task['id']}", json={"enabled": False}),
            await reader.post(f"/api/tasks/{task['id']}/run"),
            await reader.delete(f"/api/tasks/{task['id']}"),
        ):
            error_of(response, 403, "FORBIDDEN")


async def test_restricted_token_may_not_schedule_other_providers(api: Api) -> None:
    _, raw = await api.engine.tokens.mint("narrow", ["tasks:write"], ["other"])
    async with api.client(raw) as narrow:
        denied = await narrow.post("/api/tasks", json=SPEC)
        allowed = await narrow.post("/api/tasks", json={**SPEC, "provider": "other"})
    assert error_of(denied, 403, "FORBIDDEN")["provider"] == "main"
    assert allowed.status_code == 201
