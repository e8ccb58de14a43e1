"""The worker wire protocol (DESIGN §7), driven by a client written only from §7."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import httpx2

from core.queue.notify import inbox_key
from tests.fleet.conftest import Fleet, error_of


async def _turn() -> None:
    """Let the server (same loop) make progress. Not anyio.wait_all_tasks_blocked: it
    re-checks every 0.1 s, in step with uvicorn's own 0.1 s tick, and can find that task
    just woken every time, for ever."""
    await anyio.lowlevel.checkpoint()


async def test_heartbeat_normalizes_one_comma_string_of_tags(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    response = await worker.heartbeat(tags=" Code, REVIEW ,code", capacity=2)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["tags"] == ["code", "review"]
    assert body["capacity"] == 2
    listed = await worker.http.get("/presence")
    (entry,) = listed.json()["workers"]
    assert (entry["instance"], entry["tags"], entry["status"]) == ("w1", ["code", "review"],
                                                                   "online")


async def test_an_empty_heartbeat_body_means_an_empty_object(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    response = await worker.http.put("/presence", content=b"",
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["instance"] == "w1"


async def test_inbox_lists_assigned_jobs_with_integer_ids(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1", tags="code")
    submitted = await fleet.submit(tags="Code")
    response = await worker.inbox()
    assert response.status_code == 200
    (job,) = response.json()["jobs"]
    assert type(job["id"]) is int and job["id"] == submitted["id"]
    assert job["prompt"] == "do it"
    assert job["assigned_to"] == "w1"
    assert job["status"] == "pending"
    assert job["tags"] == ["code"]


async def test_claim_then_close_records_the_result_once(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    job = await fleet.submit()
    claimed = await worker.claim(job["id"])
    assert claimed.status_code == 200
    assert claimed.json()["status"] == "running"
    assert claimed.json()["lease_expires_at"] is not None
    closed = await worker.close(job["id"], "the answer")
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["result"]) == ("done", "the answer")
    again = await worker.close(job["id"], "the answer")
    assert again.status_code == 200
    assert again.json()["result"] == "the answer"
    changed = await worker.close(job["id"], "oops", status="failed")
    error_of(changed, 409, "CONFLICT")
    async with fleet.client("reader") as reader:
        stored = (await reader.get(f"/api/jobs/{job['id']}")).json()
    assert (stored["status"], stored["result"]) == ("done", "the answer")


async def test_two_workers_racing_for_one_job_only_one_wins(fleet: Fleet) -> None:
    first = await fleet.enroll("w1")
    second = await fleet.enroll("w2")
    job = await fleet.submit()
    answers: list[httpx2.Response] = []

    async def claim(worker_index: int) -> None:
        worker = (first, second)[worker_index]
        answers.append(await worker.claim(job["id"]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(claim, 0)
        tg.start_soon(claim, 1)
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200
    assert statuses[1] >= 400


async def test_a_worker_token_cannot_touch_another_workers_job(fleet: Fleet) -> None:
    w1 = await fleet.enroll("w1")
    w2 = await fleet.enroll("w2", capabilities=[{"name": "other"}])
    job = await fleet.submit(capability="code")
    assert job["assignedTo"] == "w1"
    error_of(await w2.claim(job["id"]), 403, "FORBIDDEN")
    error_of(await w2.claim(job["id"], worker="w1"), 403, "FORBIDDEN")
    assert (await w1.claim(job["id"])).status_code == 200
    error_of(await w2.close(job["id"], "mine now"), 403, "FORBIDDEN")
    assert (await w1.close(job["id"], "done")).status_code == 200


async def test_a_worker_token_cannot_heartbeat_or_read_as_another(fleet: Fleet) -> None:
    await fleet.enroll("w1")
    w2 = await fleet.enroll("w2")
    error_of(await w2.heartbeat(instance="w1"), 403, "FORBIDDEN")
    error_of(await w2.inbox(worker="w1"), 403, "FORBIDDEN")


async def test_the_losing_holder_of_an_expired_lease_cannot_close(fleet: Fleet) -> None:
    w1 = await fleet.enroll("w1")
    job = await fleet.submit(timeout_s=60)
    assert (await w1.claim(job["id"])).status_code == 200
    fleet.clock.advance(120)
    assert await fleet.engine.queue.expire_leases() == 1
    late = await w1.close(job["id"], "too late")
    assert "no longer holds" in error_of(late, 409, "CONFLICT")["message"]


async def test_a_heartbeat_renews_the_lease_of_a_held_job(fleet: Fleet) -> None:
    w1 = await fleet.enroll("w1")
    job = await fleet.submit(timeout_s=60)
    assert (await w1.claim(job["id"])).status_code == 200
    for _ in range(3):
        fleet.clock.advance(45)
        assert (await w1.heartbeat()).json()["renewed"] == 1
        assert await fleet.engine.queue.expire_leases() == 0
    assert (await w1.close(job["id"], "kept it")).status_code == 200


async def test_long_poll_answers_as_soon_as_a_job_is_assigned(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    answer: list[httpx2.Response] = []

    async def poll() -> None:
        answer.append(await worker.inbox(wait=25))

    with anyio.fail_after(10):  # far below the 25 s the poll would otherwise wait
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            while not fleet.engine.queue.changes.watching(inbox_key("w1")):
                await _turn()
            job = await fleet.submit()
    (response,) = answer
    assert [j["id"] for j in response.json()["jobs"]] == [job["id"]]


async def test_a_long_poll_ends_when_its_client_hangs_up(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    changes = fleet.engine.queue.changes

    async def poll() -> None:
        await worker.inbox(wait=25)

    with anyio.fail_after(10):  # far below the 25 s the poll would otherwise hold
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            while not changes.watching(inbox_key("w1")):
                await _turn()
            tg.cancel_scope.cancel()  # the client gives up: its connection closes
        while changes.watching(inbox_key("w1")):
            await _turn()


async def test_stop_waiting_answers_long_polls_at_once_with_what_there_is(
    fleet: Fleet,
) -> None:
    worker = await fleet.enroll("w1")
    answer: list[httpx2.Response] = []

    async def poll() -> None:
        answer.append(await worker.inbox(wait=25))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            while not fleet.engine.queue.changes.watching(inbox_key("w1")):
                await _turn()
            fleet.engine.queue.stop_waiting()
        assert (await worker.inbox(wait=25)).json() == {"jobs": []}
    (response,) = answer
    assert (response.status_code, response.json()) == (200, {"jobs": []})


async def test_inbox_without_wait_answers_at_once_even_when_empty(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    with anyio.fail_after(10):
        assert await worker.jobs() == []


async def test_a_worker_queues_a_review_for_a_human(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    job = await fleet.submit()
    response = await worker.review(type="draft", title="Release notes", content="v1 …",
                                   preview="v1", target="docs/CHANGES.md", job_id=job["id"])
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    forged = await worker.http.post("/review", json={
        "type": "draft", "title": "x", "content": "y", "created_by": "worker:w2"})
    error_of(forged, 403, "FORBIDDEN")
    async with fleet.client() as admin:
        listed = (await admin.get("/api/reviews")).json()
    (item,) = listed["items"]
    assert (item["title"], item["created_by"], item["job_id"]) == (
        "Release notes", "worker:w1", job["id"])
    async with fleet.client("user") as user:
        error_of(await user.get("/api/reviews"), 403, "FORBIDDEN")


async def test_protocol_routes_need_a_token(fleet: Fleet) -> None:
    async with fleet.client(None) as anonymous:
        for method, path in (("PUT", "/presence"), ("GET", "/presence"),
                             ("GET", "/my-jobs"), ("POST", "/jobs/1/claim"),
                             ("POST", "/jobs/1/close"), ("POST", "/review"),
                             ("POST", "/artifacts/upload"), ("GET", "/s/x")):
            error_of(await anonymous.request(method, path, json={}), 401, "UNAUTHORIZED")


async def test_a_user_token_cannot_act_as_a_worker(fleet: Fleet) -> None:
    await fleet.enroll("w1")
    async with fleet.client("user") as user:
        error_of(await user.put("/presence", json={"instance": "w1"}), 403, "FORBIDDEN")
        error_of(await user.get("/my-jobs", params={"worker": "w1"}), 403, "FORBIDDEN")


async def test_protocol_input_errors_are_validation_errors(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    error_of(await worker.heartbeat(status="sleeping"), 400, "VALIDATION_ERROR")
    error_of(await worker.claim(0), 400, "VALIDATION_ERROR")
    error_of(await worker.http.post("/jobs/abc/claim", json={}), 400, "VALIDATION_ERROR")
    error_of(await worker.claim(999), 404, "NOT_FOUND")
    error_of(await worker.close(999, "x"), 404, "NOT_FOUND")


async def test_the_servers_maintenance_loop_takes_back_a_lapsed_lease(fleet: Fleet) -> None:
    """No test calls the queue here: the app's own maintenance loop notices the lease
    passed, requeues the job and routes it to the worker that is still there."""
    w1 = await fleet.enroll("w1")
    w2 = await fleet.enroll("w2")
    job = await fleet.submit(timeout_s=60)
    holder, other = (w1, w2) if job["assignedTo"] == "w1" else (w2, w1)
    assert (await holder.claim(job["id"])).status_code == 200
    fleet.clock.advance(61)
    assert (await other.heartbeat()).status_code == 200
    with anyio.fail_after(10):
        (moved,) = await other.jobs(wait=25)
    assert moved["id"] == job["id"]
    assert moved["attempts"] == 1
    assert moved["history"][-1]["outcome"] == "lost"
