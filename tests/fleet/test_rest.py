"""The queue's REST routes for callers and humans (DESIGN §6): every route's success,
validation, 401, 403 and 404 answers, route-now dispatch and routing explanations."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_server.rest.endpoint import Endpoint
from mcp_server.routes import jobs, workers
from tests.fleet.conftest import Fleet, error_of

ROWS = [*jobs.ENDPOINTS, *workers.ENDPOINTS]

LACKS = {"jobs:read": "nobody", "jobs:write": "reader", "jobs:approve": "user",
         "admin": "user"}
"""For each scope, a caller without it."""

VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/jobs": {"prompt": "p"},
    "/dispatch": {"prompt": "p"},
    "/api/v1/workers/register": {"name": "w9"},
}


def row_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def concrete(endpoint: Endpoint, value: str) -> str:
    return endpoint.path.replace("{id}", value)


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=row_id(e)) for e in ROWS])
async def test_every_queue_route_needs_a_token_and_its_scope(fleet: Fleet,
                                                             endpoint: Endpoint) -> None:
    assert endpoint.scope is not None
    body = VALID_BODIES.get(endpoint.path)
    async with fleet.client(None) as anonymous:
        error_of(await anonymous.request(endpoint.method, concrete(endpoint, "1"), json=body),
                 401, "UNAUTHORIZED")
    async with fleet.client(LACKS[endpoint.scope]) as lacking:
        response = await lacking.request(endpoint.method, concrete(endpoint, "1"), json=body)
    assert f"'{endpoint.scope}'" in error_of(response, 403, "FORBIDDEN")["message"]


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=row_id(e)) for e in ROWS
                                      if "{id}" in e.path])
async def test_every_route_with_an_id_answers_not_found_for_an_unknown_one(
    fleet: Fleet, endpoint: Endpoint,
) -> None:
    unknown = "999" if endpoint.path.startswith("/api/jobs") else "nobody-here"
    async with fleet.client() as admin:
        response = await admin.request(endpoint.method, concrete(endpoint, unknown),
                                       json={} if endpoint.method != "GET" else None)
    error_of(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=row_id(e)) for e in ROWS
                                      if e.path.startswith("/api/jobs/")])
async def test_a_job_id_must_be_an_integer(fleet: Fleet, endpoint: Endpoint) -> None:
    async with fleet.client() as admin:
        response = await admin.request(endpoint.method, concrete(endpoint, "abc"),
                                       json={} if endpoint.method != "GET" else None)
    error_of(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(("method", "path", "body", "problem_path"), [
    ("POST", "/api/jobs", {"prompt": "  "}, "prompt"),
    ("POST", "/api/jobs", {"prompt": "p", "urgency": "now"}, "urgency"),
    ("POST", "/api/jobs", {"prompt": "p", "timeoutS": 0}, "timeoutS"),
    ("POST", "/dispatch", {}, "prompt"),
    ("POST", "/api/v1/workers/register", {"name": "Bad Name"}, "name"),
    ("POST", "/api/v1/workers/register",
     {"name": "w9", "capabilities": [{"name": "x", "riskTier": "yolo"}]},
     "capabilities.0.riskTier"),
])
async def test_bad_bodies_are_validation_errors_naming_the_field(
    fleet: Fleet, method: str, path: str, body: dict[str, Any], problem_path: str,
) -> None:
    async with fleet.client() as admin:
        error = error_of(await admin.request(method, path, json=body), 400, "VALIDATION_ERROR")
    assert problem_path in [d["path"] for d in error["details"]], error


@pytest.mark.parametrize("query", [
    {"status": "sleeping"}, {"limit": "0"}, {"bogus": "1"},
])
async def test_bad_list_queries_are_validation_errors(fleet: Fleet,
                                                      query: dict[str, str]) -> None:
    async with fleet.client("reader") as reader:
        error_of(await reader.get("/api/jobs", params=query), 400, "VALIDATION_ERROR")


async def test_submit_list_get_patch_cancel_retry(fleet: Fleet) -> None:
    job = await fleet.submit(tags="Docs, ops", urgency="low")
    assert (job["status"], job["tags"]) == ("pending", ["docs", "ops"])
    async with fleet.client("user") as user:
        page = (await user.get("/api/jobs", params={"tags": "ops", "status": "pending"})).json()
        assert [j["id"] for j in page["items"]] == [job["id"]]
        assert (page["total"], page["limit"], page["offset"]) == (1, 20, 0)
        assert (await user.get("/api/jobs", params={"assigned_to": "w1"})).json()["total"] == 0
        path = f"/api/jobs/{job['id']}"
        assert (await user.get(path)).json()["prompt"] == "do it"
        patched = await user.patch(path, json={"urgency": "high", "tags": "x"})
        assert (patched.json()["urgency"], patched.json()["tags"]) == ("high", ["x"])
        cancelled = await user.post(f"{path}/cancel", json={"reason": "not needed"})
        assert cancelled.json()["status"] == "cancelled"
        assert "not needed" in cancelled.json()["error"]
        error_of(await user.post(f"{path}/cancel"), 409, "CONFLICT")
        error_of(await user.patch(path, json={"urgency": "low"}), 409, "CONFLICT")
        retried = await user.post(f"{path}/retry")
        assert retried.json()["status"] == "pending"


async def test_get_with_wait_answers_when_the_job_finishes(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    job = await fleet.submit()
    assert (await worker.claim(job["id"])).status_code == 200
    assert (await worker.close(job["id"], "fine")).status_code == 200
    async with fleet.client("reader") as reader:
        waited = await reader.get(f"/api/jobs/{job['id']}", params={"wait": 20})
    assert (waited.json()["status"], waited.json()["result"]) == ("done", "fine")


async def test_dispatch_routes_now_and_names_the_worker(fleet: Fleet) -> None:
    await fleet.enroll("w1")
    async with fleet.client("user") as user:
        response = await user.post("/dispatch", json={"prompt": "now", "tags": "code"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"]["assignedTo"] == "w1"
    assert body["worker"]["name"] == "w1"


async def test_dispatch_without_an_eligible_worker_is_503_and_cancels_the_job(
    fleet: Fleet,
) -> None:
    await fleet.enroll("w1")
    async with fleet.client("user") as user:
        response = await user.post("/dispatch", json={"prompt": "now", "capability": "gpu"})
        error = error_of(response, 503, "NO_WORKER")
        job_id = error["details"]["jobId"]
        assert error["details"]["candidates"] == [
            {"worker": "w1", "reasons": ["lacks capability gpu"]}]
        assert (await user.get(f"/api/jobs/{job_id}")).json()["status"] == "cancelled"


async def test_explain_shows_exactly_what_assignment_then_does(fleet: Fleet) -> None:
    await fleet.enroll("w1", tags="code")
    await fleet.enroll("w2", tags="code,review")
    await fleet.enroll("w3", tags="docs", capabilities=[{"name": "docs"}])
    async with fleet.client("reader") as reader:
        before = (await reader.get("/dispatch/explain", params={
            "job_tags": "code,review", "urgency": "normal"})).json()
    ranked = [(c["worker"], c["eligible"], c["score"]["tagOverlap"]) for c in
              before["candidates"]]
    assert ranked == [("w2", True, 1.0), ("w1", True, 0.5), ("w3", True, 0.0)]
    total = before["candidates"][0]["score"]
    assert total["total"] == pytest.approx(
        0.5 * total["tagOverlap"] + 0.3 * total["trackRecord"] + 0.2 * (1 - total["load"])
        - sum(total["penalties"].values()), abs=1e-3)
    job = await fleet.submit(tags="code,review")
    assert job["assignedTo"] == before["chosen"] == "w2"
    async with fleet.client("reader") as reader:
        gpu = (await reader.get("/dispatch/explain", params={"job_tags": "code",
                                                             "capability": "gpu"})).json()
        error_of(await reader.get("/dispatch/explain", params={"urgency": "asap"}), 400,
                 "VALIDATION_ERROR")
    assert gpu["chosen"] is None
    assert all("lacks capability gpu" in c["reasons"] for c in gpu["candidates"])
    audit = await fleet.engine.audit.query(action="job.assign", target=f"job:{job['id']}")
    (assigned,) = audit.items
    assert assigned.details == {"worker": "w2", "risk_tier": "auto",
                                "score": before["candidates"][0]["score"]["total"]}


async def test_workers_list_show_pause_resume(fleet: Fleet) -> None:
    await fleet.enroll("w1")
    async with fleet.client("reader") as reader:
        (listed,) = (await reader.get("/api/workers")).json()["workers"]
        assert (listed["name"], listed["status"]) == ("w1", "online")
        one = (await reader.get(f"/api/workers/{listed['id']}")).json()
        assert one["record"] == {"done30D": 0, "failed30D": 0, "successRate": None}
        assert one["load"] == {"running": 0, "assigned": 0, "capacity": 1}
    async with fleet.client() as admin:
        paused = await admin.post("/api/workers/w1/pause")
        assert paused.json()["status"] == "paused"
        job = await fleet.submit()
        assert job["assignedTo"] is None
        resumed = await admin.post("/api/workers/w1/resume")
        assert resumed.json()["status"] == "online"
        assert (await admin.get(f"/api/jobs/{job['id']}")).json()["assignedTo"] == "w1"
