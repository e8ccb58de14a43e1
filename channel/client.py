"""The worker side of the wire protocol (DESIGN.md §7), over ``httpx2``.

:class:`WorkerClient` speaks for one worker name with its own token. Errors are the
:mod:`core.errors` tree, translated once here:

- the server cannot be reached (refused, reset, timed out), answers with a 5xx (restarting,
  a gateway in front of it, a passing server bug), or the reply is not JSON from a
  ModelReins server → :class:`~core.errors.Unavailable`, which the runner retries with
  backoff;
- 401 → :class:`~core.errors.Unauthorized` ("token rejected"), which stops a worker;
- any other error status → the §5 error it carries (:func:`~core.errors.error_from_wire`).

:meth:`WorkerClient.claim` is the exception: a claim the server refuses, for whatever reason
(409 when another worker won, or the job moved on), returns ``None`` — "skip it".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import httpx2

from core.errors import ModelReinsError, Unauthorized, Unavailable, error_from_wire

__all__ = ["DEFAULT_TIMEOUT_S", "LONG_POLL_MARGIN_S", "CloseStatus", "Job", "WorkerClient"]

DEFAULT_TIMEOUT_S = 30.0
"""Per request, except long polls (their wait plus :data:`LONG_POLL_MARGIN_S`)."""
LONG_POLL_MARGIN_S = 15.0

CloseStatus = Literal["done", "failed", "escalated"]
Job = dict[str, Any]
"""A job as the worker protocol sends it (snake_case fields, ``id`` an integer)."""


class WorkerClient:
    """One worker's connection to a ModelReins server.

    ``http`` is injectable (tests, shared pools); a client made here is closed by
    :meth:`aclose` or by leaving ``async with``. ``token`` may be ``None`` for a server
    running with ``auth: none``.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        name: str,
        *,
        http: httpx2.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout_s = timeout_s
        self._owns_http = http is None
        self._http = http or httpx2.AsyncClient()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def heartbeat(
        self,
        status: Literal["active", "idle", "busy"] = "active",
        details: Mapping[str, Any] | None = None,
        tags: str | list[str] | None = None,
        provider: str | None = None,
        capacity: int | None = None,
    ) -> dict[str, Any]:
        """``PUT /presence``: say this worker is here (renewing the leases of its jobs)."""
        body: dict[str, Any] = {
            "instance": self.name, "status": status,
            "details": dict(details) if details is not None else None,
            "tags": _tags_text(tags), "worker_type": "silicon",
        }
        if provider is not None:
            body["provider"] = provider
        if capacity is not None:
            body["capacity"] = capacity
        reply = await self._request("PUT", "/presence", json_body=body)
        return reply if isinstance(reply, dict) else {"ok": True}

    async def sign_off(self) -> dict[str, Any]:
        """``PUT /presence`` with ``status: "offline"``: leave cleanly, so the server hands
        the jobs assigned here but not yet claimed to other workers at once (their
        ``released`` ids are in the reply). An extension of §7: a server that refuses it
        takes those jobs back once it stops hearing from this worker."""
        body = {"instance": self.name, "status": "offline", "details": None, "tags": None,
                "worker_type": "silicon"}
        reply = await self._request("PUT", "/presence", json_body=body)
        return reply if isinstance(reply, dict) else {}

    async def inbox(self, wait_s: float | None = None) -> list[Job]:
        """``GET /my-jobs``: jobs assigned to this worker, not yet claimed.

        With ``wait_s`` the request asks the server to hold it until a job is assigned or
        ``wait_s`` passes (``wait=S``); a server without long polls answers at once, which
        is just as correct.
        """
        params = {"worker": self.name, "status": "pending"}
        timeout = self.timeout_s
        if wait_s is not None and wait_s > 0:
            params["wait"] = f"{wait_s:g}"
            timeout = wait_s + LONG_POLL_MARGIN_S
        reply = await self._request("GET", "/my-jobs", params=params, timeout_s=timeout)
        jobs = reply.get("jobs") if isinstance(reply, dict) else None
        if not isinstance(jobs, list) or not all(_is_job(j) for j in jobs):
            raise Unavailable(f"{self.base_url}/my-jobs did not answer with a job list")
        return jobs

    async def claim(self, job_id: int) -> Job | None:
        """``POST /jobs/{id}/claim``: the job, now running under our lease (at least its
        ``id`` when the reply carries no job); ``None`` when the server refuses (skip it).
        Still raises for an unreachable server and a rejected token, which are not about
        this job."""
        try:
            reply = await self._request("POST", f"/jobs/{job_id}/claim",
                                        json_body={"worker": self.name})
        except (Unavailable, Unauthorized):
            raise
        except ModelReinsError:
            return None
        job = reply.get("job", reply) if isinstance(reply, dict) else None
        return job if _is_job(job) else {"id": job_id}

    async def close(self, job_id: int, result: Any, status: CloseStatus = "done"
                    ) -> dict[str, Any]:
        """``POST /jobs/{id}/close`` with the outcome. Closing twice with the same outcome is
        idempotent; CONFLICT means the result was not recorded (the job moved on)."""
        reply = await self._request("POST", f"/jobs/{job_id}/close",
                                    json_body={"result": result, "status": status})
        return reply if isinstance(reply, dict) else {}

    async def review(
        self, *, type: str, title: str, content: str, preview: str | None = None,
        target: str | None = None, job_id: int | None = None,
    ) -> dict[str, Any]:
        """``POST /review``: queue something for a human, attributed to this worker."""
        body = {"type": type, "title": title, "content": content, "preview": preview,
                "target": target, "job_id": job_id, "created_by": f"worker:{self.name}"}
        reply = await self._request("POST", "/review", json_body=body)
        return reply if isinstance(reply, dict) else {}

    async def upload_artifact(
        self, data: bytes, filename: str, *, content_type: str = "application/octet-stream",
        job_id: int | None = None, review_id: str | None = None,
        expires_at: str | None = None,
    ) -> dict[str, Any]:
        """``POST /artifacts/upload`` (multipart) → ``{slug, url, content_type, size_bytes}``."""
        fields = {"job_id": job_id, "review_id": review_id, "filename": filename,
                  "expires_at": expires_at}
        form = {k: str(v) for k, v in fields.items() if v is not None}
        reply = await self._request(
            "POST", "/artifacts/upload", form=form,
            files={"file": (filename, data, content_type)})
        return reply if isinstance(reply, dict) else {}

    async def _request(
        self, method: str, path: str, *, json_body: Any = None,
        params: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        url = self.base_url + path
        headers = dict(self._headers)
        if files is not None:
            # httpx2 writes the multipart Content-Type with its boundary.
            del headers["Content-Type"]
        try:
            response = await self._http.request(
                method, url, json=json_body, params=params, data=form, files=files,
                headers=headers, timeout=timeout_s or self.timeout_s)
        except httpx2.TimeoutException as exc:
            raise Unavailable(f"ModelReins at {self.base_url} did not answer in time "
                              f"({method} {path})") from exc
        except httpx2.TransportError as exc:
            raise Unavailable(f"cannot reach ModelReins at {self.base_url}: "
                              f"{exc or type(exc).__name__}") from exc
        return self._reply(response, f"{method} {path}")

    def _reply(self, response: httpx2.Response, what: str) -> Any:
        status = response.status_code
        try:
            body = response.json() if response.content else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if status == 401:
            message = error.get("message") if isinstance(error, dict) else None
            raise Unauthorized(f"token rejected by {self.base_url} for worker "
                               f"'{self.name}'" + (f": {message}" if message else ""))
        if status >= 500:
            message = error.get("message") if isinstance(error, dict) else None
            raise Unavailable(f"ModelReins at {self.base_url} is unavailable "
                              f"(HTTP {status} on {what}" + (f": {message})" if message else ")"))
        if status >= 400:
            if isinstance(error, dict):
                raise error_from_wire(error)
            raise ModelReinsError(f"HTTP {status} on {what}")
        if body is None:
            raise Unavailable(f"{self.base_url} did not answer {what} with JSON; is it a "
                              "ModelReins server?")
        return body


def _tags_text(tags: str | list[str] | None) -> str | None:
    """Tags travel as ONE comma-separated string (§7); the server normalizes them."""
    if tags is None:
        return None
    return tags if isinstance(tags, str) else ",".join(tags)


def _is_job(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), int) \
        and not isinstance(value.get("id"), bool)
