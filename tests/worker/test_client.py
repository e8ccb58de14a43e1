"""The worker client speaks §7 exactly and translates failures into the error tree."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channel.client import WorkerClient
from channel.worker import resolve_server
from core.connection import save_token, save_url
from core.errors import (
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from tests.worker.conftest import serve, unserved_socket
from tests.worker.fake_server import TOKEN, FakeServer


async def test_heartbeat_sends_the_presence_body_with_tags_as_one_string(
        fake: FakeServer) -> None:
    async with WorkerClient(fake.url, TOKEN, "w1") as client:
        reply = await client.heartbeat("busy", {"running": [3]}, ["code", "Review"],
                                       provider="claude", capacity=2)
    assert reply["ok"] is True
    assert fake.heartbeats == [{
        "instance": "w1", "status": "busy", "details": {"running": [3]},
        "tags": "code,Review", "worker_type": "silicon", "provider": "claude", "capacity": 2,
    }]
    assert fake.content_types == ["application/json"]


async def test_inbox_long_polls_and_returns_as_soon_as_a_job_is_assigned(
        fake: FakeServer) -> None:
    async with WorkerClient(fake.url, TOKEN, "w1") as client, anyio.create_task_group() as tg:
        got: list[list[dict[str, object]]] = []
        answered = anyio.Event()

        async def poll() -> None:
            got.append(await client.inbox(wait_s=30))
            answered.set()

        tg.start_soon(poll)
        await fake.until(lambda: len(fake.polls) == 1)
        job = fake.assign("new")
        with anyio.fail_after(5):
            await answered.wait()
    assert fake.polls == [{"worker": "w1", "status": "pending", "wait": "30"}]
    assert [j["id"] for j in got[0]] == [job.id]


async def test_inbox_without_a_wait_does_not_ask_for_a_long_poll(fake: FakeServer) -> None:
    async with WorkerClient(fake.url, TOKEN, "w1") as client:
        assert await client.inbox() == []
    assert fake.polls == [{"worker": "w1", "status": "pending"}]


async def test_claim_returns_the_job_or_none_when_refused(fake: FakeServer) -> None:
    mine, other = fake.assign("mine"), fake.assign("other", worker="w2")
    async with WorkerClient(fake.url, TOKEN, "w1") as client:
        claimed = await client.claim(mine.id)
        assert claimed is not None and claimed["status"] == "running"
        assert await client.claim(mine.id) is None  # 409: already claimed
        assert await client.claim(other.id) is None
        assert await client.claim(999) is None
        await client.close(mine.id, "answer", "done")
    assert (mine.status, mine.result) == ("done", "answer")


async def test_review_and_artifact_upload(fake: FakeServer) -> None:
    async with WorkerClient(fake.url, TOKEN, "w1") as client:
        await client.review(type="draft", title="Reply", content="Dear…", preview="Dear",
                            target="ticket:7", job_id=4)
        stored = await client.upload_artifact(b"\x00\x01data", "out.bin", job_id=4,
                                              content_type="application/x-test")
    assert fake.reviews == [{"type": "draft", "title": "Reply", "content": "Dear…",
                             "preview": "Dear", "target": "ticket:7", "job_id": 4,
                             "created_by": "worker:w1"}]
    assert fake.uploads == [{"data": b"\x00\x01data", "filename": "out.bin",
                             "content_type": "application/x-test", "job_id": "4"}]
    assert stored == {"slug": "abc", "url": "/s/abc", "content_type": "application/x-test",
                      "size_bytes": 6}


async def test_a_refused_connection_is_unavailable() -> None:
    sock = unserved_socket()
    url = "http://{}:{}".format(*sock.getsockname())
    async with WorkerClient(url, TOKEN, "w1") as client:
        with pytest.raises(Unavailable, match="cannot reach ModelReins"):
            await client.heartbeat()
        with pytest.raises(Unavailable):
            await client.claim(1)
    sock.close()


def _app(status: int, body: object | None = None, text: str | None = None) -> Starlette:
    async def answer(_: Request) -> Response:
        if text is not None:
            return PlainTextResponse(text, status_code=status)
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "PUT", "POST"])])


def _error(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(("status", "body", "text", "error", "match"), [
    (401, _error("UNAUTHORIZED", "revoked"), None, Unauthorized, "token rejected.*revoked"),
    (403, _error("FORBIDDEN", "not your name"), None, Forbidden, "not your name"),
    (404, _error("NOT_FOUND", "no worker 'w1'"), None, NotFound, "no worker"),
    (503, None, "Service Unavailable", Unavailable, "HTTP 503"),
    (502, _error("PROVIDER_ERROR", "bad gateway"), None, Unavailable, "HTTP 502.*bad gate"),
    (500, _error("INTERNAL", "a bug"), None, Unavailable, "HTTP 500 on PUT /presence: a bug"),
    (429, {"error": {"code": "RATE_LIMITED", "message": "easy", "retryAfter": 3}}, None,
     RateLimited, "easy"),
    (200, None, "<html>hello</html>", Unavailable, "is it a ModelReins server"),
])
async def test_error_replies_become_the_error_tree(
        status: int, body: object, text: str | None, error: type[Exception], match: str
) -> None:
    async with serve(_app(status, body, text)) as url, WorkerClient(url, TOKEN, "w1") as client:
        with pytest.raises(error, match=match):
            await client.heartbeat()


async def test_a_claim_answered_401_still_raises(fake: FakeServer) -> None:
    job = fake.assign("x")
    async with WorkerClient(fake.url, "mr_wrong", "w1") as client:
        with pytest.raises(Unauthorized):
            await client.claim(job.id)


def test_server_settings_come_from_flags_then_environment_then_saved(home: Path) -> None:
    with pytest.raises(ValidationFailed, match="no server to work for"):
        resolve_server(None, None, home, env={})
    assert resolve_server(None, None, home, env={"MODELREINS_URL": "http://a:1/",
                                                 "MODELREINS_TOKEN": "mr_env"}
                          ) == ("http://a:1", "mr_env")
    save_url(home, "http://saved:8484")
    save_token(home, "mr_saved")
    assert resolve_server(None, None, home, env={}) == ("http://saved:8484", "mr_saved")
    assert resolve_server(None, "mr_flag", home, env={}) == ("http://saved:8484", "mr_flag")
    assert resolve_server("http://saved:8484/", None, home, env={}) == (
        "http://saved:8484", "mr_saved")
    # The saved token never goes to another server.
    assert resolve_server("http://other:1", None, home, env={}) == ("http://other:1", None)
    assert resolve_server("http://other:1", None, home, env={"MODELREINS_TOKEN": "mr_env"}
                          ) == ("http://other:1", "mr_env")
