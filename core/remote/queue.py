"""The queue and the fleet of a remote server: ``engine.queue`` and ``engine.fleet`` of a
:class:`~core.remote.RemoteEngine`, over ``/api/jobs``, ``/api/workers``, ``/dispatch``.

``actor`` arguments are ignored, as ``principal`` ones are elsewhere in the remote client:
the caller is the bearer token. Waiting for a job uses the server's long-poll
(``GET /api/jobs/{id}?wait=S``), so a result arrives as soon as the worker closes the job.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import anyio

from core.errors import Unavailable
from core.fleet import Dispatched, RegisteredWorker, WorkerList, WorkerRegistration
from core.models import Page
from core.principal import Principal
from core.queue import Capability, Job, JobPatch, JobSpec, RouteExplanation, Worker
from core.queue.models import TERMINAL, Urgency
from core.queue.workers import CapabilityInput
from core.remote.wire import Wire, part

__all__ = ["JOB_WAIT_S", "RemoteFleet", "RemoteJobs", "RemoteQueue", "RemoteWorkers"]

JOB_WAIT_S = 30.0
"""The longest wait the server grants one ``GET /api/jobs/{id}?wait=S``."""


def _tags(value: str | Sequence[str] | None) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else ",".join(value)


def _capability(item: CapabilityInput) -> dict[str, Any]:
    if isinstance(item, str):
        return {"name": item}
    if isinstance(item, Capability):
        return item.wire()
    return dict(item)


class RemoteJobs:
    def __init__(self, wire: Wire) -> None:
        self._wire = wire

    def _path(self, job_id: int, action: str = "") -> str:
        return f"/api/jobs/{int(job_id)}" + (f"/{action}" if action else "")

    async def _post(self, job_id: int, action: str, body: Any = None) -> Job:
        data = await self._wire.call("POST", self._path(job_id, action), body=body)
        return self._wire.model(Job, data)

    async def submit(self, spec: JobSpec, *, actor: Principal) -> Job:
        data = await self._wire.call("POST", "/api/jobs", body=spec.wire())
        return self._wire.model(Job, data)

    async def get(self, job_id: int) -> Job:
        return self._wire.model(Job, await self._wire.get(self._path(job_id)))

    async def list(
        self, *, status: str | None = None, tags: str | Sequence[str] | None = None,
        assigned_to: str | None = None, limit: int = 20, offset: int = 0,
    ) -> Page[Job]:
        data = await self._wire.get("/api/jobs", status=status, tags=_tags(tags),
                                    assignedTo=assigned_to, limit=limit, offset=offset)
        return self._wire.page(Job, data)

    async def update(self, job_id: int, patch: JobPatch, *, actor: Principal) -> Job:
        body = patch.model_dump(mode="json", by_alias=True, exclude_none=True)
        data = await self._wire.call("PATCH", self._path(job_id), body=body)
        return self._wire.model(Job, data)

    async def cancel(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job:
        return await self._post(job_id, "cancel", {"reason": reason})

    async def retry(self, job_id: int, *, actor: Principal) -> Job:
        return await self._post(job_id, "retry")

    async def approve(self, job_id: int, *, actor: Principal) -> Job:
        return await self._post(job_id, "approve")

    async def reject(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job:
        return await self._post(job_id, "reject", {"reason": reason})

    async def wait_for(self, job_id: int, timeout_s: float) -> Job:
        deadline = anyio.current_time() + timeout_s
        while True:
            left = deadline - anyio.current_time()
            wait = min(JOB_WAIT_S, max(0.0, left))
            data = await self._wire.call(
                "GET", self._path(job_id), params={"wait": f"{wait:.3f}" if wait else None},
                timeout_s=self._wire.timeout_s + wait)
            job = self._wire.model(Job, data)
            if job.status in TERMINAL or deadline - anyio.current_time() <= 0:
                return job


class RemoteWorkers:
    def __init__(self, wire: Wire) -> None:
        self._wire = wire

    async def list(self, *, include_revoked: bool = True) -> builtins.list[Worker]:
        data = await self._wire.get("/api/workers",
                                    includeRevoked="true" if include_revoked else None)
        return self._wire.model(WorkerList, data).workers

    async def get(self, id_or_name: str) -> Worker:
        return self._wire.model(Worker, await self._wire.get(f"/api/workers/{part(id_or_name)}"))

    async def _post(self, id_or_name: str, action: str) -> Worker:
        data = await self._wire.call("POST", f"/api/workers/{part(id_or_name)}/{action}")
        return self._wire.model(Worker, data)

    async def pause(self, id_or_name: str, *, actor: Principal) -> Worker:
        return await self._post(id_or_name, "pause")

    async def resume(self, id_or_name: str, *, actor: Principal) -> Worker:
        return await self._post(id_or_name, "resume")

    async def revoke(self, id_or_name: str, *, actor: Principal) -> Worker:
        return await self._post(id_or_name, "revoke")


class RemoteQueue:
    """``engine.queue`` of a remote server."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.jobs = RemoteJobs(wire)
        self.workers = RemoteWorkers(wire)

    async def explain(
        self, job_tags: str | Sequence[str] | None = None, urgency: Urgency = "normal",
        capability: str | None = None, provider: str | None = None,
    ) -> RouteExplanation:
        data = await self._wire.get("/dispatch/explain", job_tags=_tags(job_tags),
                                    urgency=urgency, capability=capability, provider=provider)
        return self._wire.model(RouteExplanation, data)

    async def explain_job(self, job_id: int) -> RouteExplanation:
        data = await self._wire.get("/dispatch/explain", job_id=int(job_id))
        return self._wire.model(RouteExplanation, data)


class RemoteFleet:
    """``engine.fleet`` of a remote server."""

    def __init__(self, wire: Wire, workers: RemoteWorkers) -> None:
        self._wire = wire
        self._workers = workers

    async def register(
        self, name: str, description: str = "", capabilities: Sequence[CapabilityInput] = (),
        tags: str | Sequence[str] | None = None, *, actor: Principal,
        view_base_url: str | None = None,
    ) -> RegisteredWorker:
        """Without ``view_base_url`` the one-time view is taken here, so the raw token
        comes back; with it, the server's link is returned untaken."""
        body = {"name": name, "description": description,
                "capabilities": [_capability(c) for c in capabilities],
                "tags": tags if tags is not None else []}
        data = await self._wire.call("POST", "/api/v1/workers/register", body=body)
        made = self._wire.model(WorkerRegistration, data)
        if view_base_url is not None:
            return RegisteredWorker(worker=made.worker, token_info=made.token,
                                    view_url=made.view_url)
        secret = await self._wire.get("/view/" + made.view_url.rsplit("/view/", 1)[-1])
        raw = secret.get("token") if isinstance(secret, dict) else None
        if not isinstance(raw, str):
            raise Unavailable(f"{self._wire.base_url}'s one-time view held no token")
        return RegisteredWorker(worker=made.worker, token_info=made.token, token=raw)

    async def revoke(self, id_or_name: str, *, actor: Principal) -> Worker:
        return await self._workers.revoke(id_or_name, actor=actor)

    async def dispatch(self, spec: JobSpec, *, actor: Principal) -> Dispatched:
        data = await self._wire.call("POST", "/dispatch", body=spec.wire())
        return self._wire.model(Dispatched, data)
