"""How the REST edge refuses what it cannot serve: every failure is the §5 body."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest

from tests.rest.conftest import MAX_BODY, Api, error_of
from tests.support.scripted import ScriptedProvider

BODY = b'{"prompt": "hello"}'


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx"])
async def test_a_body_that_is_not_declared_json_is_415(admin: httpx2.AsyncClient,
                                                        content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await admin.post("/api/dispatch", content=BODY, headers=headers)
    error = error_of(response, 415, "VALIDATION_ERROR")
    assert error["details"][0]["path"] == "Content-Type"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "application/vnd.modelreins+json"])
async def test_json_media_types_with_parameters_or_suffixes_are_accepted(
    admin: httpx2.AsyncClient, content_type: str,
) -> None:
    response = await admin.post("/api/dispatch", content=BODY,
                                headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("raw", "problem"), [
    pytest.param(b'{"prompt": ', "malformed JSON", id="truncated"),
    pytest.param(b"{'prompt': 'x'}", "malformed JSON", id="single-quotes"),
    pytest.param(b'["prompt"]', "object", id="not-an-object"),
    pytest.param(b"", "a JSON object is required", id="empty"),
])
async def test_malformed_json_is_a_validation_error(admin: httpx2.AsyncClient, raw: bytes,
                                                    problem: str) -> None:
    response = await admin.post("/api/dispatch", content=raw,
                                headers={"Content-Type": "application/json"})
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert error["details"][0]["path"] == "(body)"
    assert problem in error["details"][0]["problem"]


async def test_unknown_fields_are_named(admin: httpx2.AsyncClient) -> None:
    response = await admin.post("/api/tasks", json={
        "name": "n", "schedule": "@daily", "prompt": "p", "cron": "x", "retries": 3})
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert error["message"] == "invalid body: unknown fields 'cron', 'retries'"


async def test_a_body_declared_too_large_is_refused_before_reading(api: Api) -> None:
    # Only the headers are sent: the answer must come without the server waiting for a
    # body it would refuse anyway (httpx2 will not send a lying Content-Length, so raw).
    host, port = api.url.removeprefix("http://").split(":")
    head = (f"POST /api/dispatch HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {api.admin}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n")
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(head.encode())
            received = b""
            while b"\r\n\r\n" not in received or not received.endswith(b"}}"):
                received += await stream.receive()
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert str(MAX_BODY) in body["error"]["message"]


async def test_a_large_body_is_refused(admin: httpx2.AsyncClient) -> None:
    prompt = "x" * MAX_BODY
    error_of(await admin.post("/api/dispatch", json={"prompt": prompt}), 413,
             "VALIDATION_ERROR")


async def chunked(total: int) -> AsyncIterator[bytes]:
    yield b'{"prompt": "'
    sent = 0
    while sent < total:
        yield b"y" * 1024
        sent += 1024
    yield b'"}'


async def test_a_streamed_body_is_counted_while_read(admin: httpx2.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    small = await admin.post("/api/dispatch", content=chunked(MAX_BODY // 2), headers=headers)
    assert small.status_code == 200, small.text
    assert small.request.headers.get("transfer-encoding") == "chunked"
    large = await admin.post("/api/dispatch", content=chunked(MAX_BODY), headers=headers)
    error_of(large, 413, "VALIDATION_ERROR")


async def test_unknown_routes_are_404(api: Api, admin: httpx2.AsyncClient) -> None:
    error = error_of(await admin.get("/api/nothing/here"), 404, "NOT_FOUND")
    assert error["message"] == "no such endpoint: GET /api/nothing/here"
    async with api.client("") as anonymous:
        error_of(await anonymous.get("/nothing"), 404, "NOT_FOUND")
        error_of(await anonymous.get("/api/nothing"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/api/dispatch", {"POST"}),
    ("DELETE", "/api/tasks", {"GET", "HEAD", "POST"}),
    ("POST", "/api/tasks/x", {"GET", "HEAD", "PATCH", "DELETE"}),
])
async def test_wrong_methods_are_405_with_allow(admin: httpx2.AsyncClient, method: str,
                                                path: str, allowed: set[str]) -> None:
    response = await admin.request(method, path)
    error = error_of(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["allow"].split(", ")) == allowed
    assert method in error["message"]


class Broken(ScriptedProvider):
    async def ping(self) -> None:
        raise RuntimeError("the secret internals of a bug")


async def test_an_unexpected_exception_is_a_generic_500_and_logged(
    api: Api, admin: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture,
) -> None:
    api.engine.providers["other"] = Broken("other")
    with caplog.at_level(logging.ERROR):
        response = await admin.post("/api/providers/other/ping")
    error = error_of(response, 500, "INTERNAL")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert "server log" in error["message"]
    crash = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert crash, "the crash reached the server log"
    assert (await admin.get("/api/health")).status_code == 200


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    async with api.client("") as anonymous:
        assert (await anonymous.get("/api/health")).status_code == 200
        assert (await anonymous.get("/api/openapi.json")).status_code == 200
