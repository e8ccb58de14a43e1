"""A small in-memory server speaking the worker protocol (DESIGN.md §7), for runner tests.

It holds jobs assigned by the test (:meth:`FakeServer.assign`), records every heartbeat,
poll, claim and close in order, and can be switched ``down`` (every request answers 503,
as a proxy in front of a stopped server would). ``long_poll`` makes ``GET /my-jobs``
honour ``wait=S``. Tests wait on it with :meth:`FakeServer.until`, which wakes on every
request — no sleeping.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["TOKEN", "FakeJob", "FakeServer"]

TOKEN = "mr_workertoken"


@dataclass
class FakeJob:
    id: int
    prompt: str
    assigned_to: str
    timeout_s: int = 60
    input: Any = None
    tags: list[str] = field(default_factory=list)
    status: str = "pending"
    result: Any = None
    closes: int = 0

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "input": self.input,
                "assigned_to": self.assigned_to, "status": self.status, "tags": self.tags,
                "timeout_s": self.timeout_s}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class FakeServer:
    """The worker-facing routes over a dict of jobs; ``url`` is set once it serves."""

    def __init__(self, *, token: str = TOKEN, long_poll: bool = True) -> None:
        self.token = token
        self.long_poll = long_poll
        self.down = False
        self.url = ""
        self.jobs: dict[int, FakeJob] = {}
        self.heartbeats: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []
        """The Content-Type of every heartbeat request."""
        self.polls: list[dict[str, str]] = []
        self.log: list[tuple[str, int]] = []
        """``("claim", id)`` and ``("close", id)`` in the order they happened."""
        self.reviews: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.refused: list[tuple[str, int]] = []
        self.contested: set[int] = set()
        """Jobs whose claims are refused (409) as if another worker had won them."""
        self._ids = itertools.count(1)
        self._changed = anyio.Event()
        self.app = Starlette(routes=[
            Route("/presence", self._presence, methods=["PUT"]),
            Route("/my-jobs", self._my_jobs, methods=["GET"]),
            Route("/jobs/{id:int}/claim", self._claim, methods=["POST"]),
            Route("/jobs/{id:int}/close", self._close, methods=["POST"]),
            Route("/review", self._review, methods=["POST"]),
            Route("/artifacts/upload", self._upload, methods=["POST"]),
        ])

    # -- test side ----------------------------------------------------------------------

    def assign(self, prompt: str, worker: str = "w1", **fields: Any) -> FakeJob:
        job = FakeJob(id=next(self._ids), prompt=prompt, assigned_to=worker, **fields)
        self.jobs[job.id] = job
        self.touch()
        return job

    def touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking after every request."""
        with anyio.fail_after(timeout_s):
            while not predicate():
                await self._changed.wait()

    def closed(self, job: FakeJob) -> bool:
        return job.status in ("done", "failed", "escalated")

    def beats_after(self, index: int) -> list[dict[str, Any]]:
        return self.heartbeats[index:]

    # -- routes -------------------------------------------------------------------------

    def _refusal(self, request: Request) -> JSONResponse | None:
        if self.down:
            return _error(503, "UNAVAILABLE", "server is restarting")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "UNAUTHORIZED", "unknown token")
        return None

    async def _presence(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            body = await request.json()
            self.content_types.append(request.headers.get("content-type"))
            self.heartbeats.append(body)
            released = []
            if body.get("status") == "offline":
                released = [j.id for j in self._pending(body.get("instance", ""))]
                for number in released:
                    self.jobs[number].assigned_to = ""
            return JSONResponse({"ok": True, "instance": body.get("instance"),
                                 "released": released})
        finally:
            self.touch()

    async def _my_jobs(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            params = dict(request.query_params)
            self.polls.append(params)
            self.touch()
            worker, wait = params.get("worker", ""), float(params.get("wait", 0) or 0)
            if self.long_poll and wait:
                await self._hold(request, worker, wait)
            return JSONResponse({"jobs": [j.wire() for j in self._pending(worker)]})
        finally:
            self.touch()

    async def _hold(self, request: Request, worker: str, wait: float) -> None:
        """Until a job is assigned to ``worker``, ``wait`` passes or the client hangs up."""
        async with anyio.create_task_group() as tg:

            async def until_disconnected() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnected)
            with anyio.move_on_after(wait):
                while not self._pending(worker):
                    await self._changed.wait()
            tg.cancel_scope.cancel()

    def _pending(self, worker: str) -> list[FakeJob]:
        return [j for j in self.jobs.values() if j.assigned_to == worker and
                j.status == "pending"]

    async def _claim(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            job = self.jobs.get(request.path_params["id"])
            body = await request.json()
            if (job is None or job.status != "pending" or job.id in self.contested
                    or job.assigned_to != body.get("worker")):
                self.refused.append(("claim", request.path_params["id"]))
                return _error(409, "CONFLICT", "not yours to claim")
            job.status = "running"
            self.log.append(("claim", job.id))
            return JSONResponse(job.wire())
        finally:
            self.touch()

    async def _close(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            job = self.jobs.get(request.path_params["id"])
            body = await request.json()
            if job is None or job.status != "running":
                self.refused.append(("close", request.path_params["id"]))
                return _error(409, "CONFLICT", "job is not running")
            job.status, job.result = body["status"], body["result"]
            job.closes += 1
            self.log.append(("close", job.id))
            return JSONResponse(job.wire())
        finally:
            self.touch()

    async def _review(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            self.reviews.append(await request.json())
            return JSONResponse({"id": f"rev_{len(self.reviews)}", "status": "queued"})
        finally:
            self.touch()

    async def _upload(self, request: Request) -> JSONResponse:
        try:
            if refusal := self._refusal(request):
                return refusal
            async with request.form() as form:
                upload = form["file"]
                assert not isinstance(upload, str)
                data = await upload.read()
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
                self.uploads.append({"data": data, "filename": upload.filename,
                                     "content_type": upload.content_type, **fields})
            return JSONResponse({"slug": "abc", "url": "/s/abc",
                                 "content_type": upload.content_type, "size_bytes": len(data)})
        finally:
            self.touch()
