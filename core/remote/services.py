"""``engine.tasks``, ``engine.tokens`` and ``engine.audit`` of a remote engine, over
``/api/tasks``, ``/api/tokens`` and ``/api/audit``."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime

from core.audit import AuditEntry
from core.auth import PREFIX_LEN, TOKEN_PREFIX, TokenInfo
from core.clock import iso
from core.errors import NotFound, Unavailable
from core.models import Page, WireModel
from core.principal import LOCAL, Principal
from core.remote.wire import Wire, part, poll
from core.tasks.models import Run, Task, TaskPatch, TaskSpec

__all__ = ["RemoteAudit", "RemoteTasks", "RemoteTokens"]


class RemoteTasks:
    """``engine.tasks`` over ``/api/tasks``. Runs are read back by their task, so the task
    of every run this client has seen is remembered for :meth:`wait_run`."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._task_of: dict[str, str] = {}

    def _seen(self, run: Run) -> Run:
        self._task_of[run.run_id] = run.task_id
        return run

    async def create(self, spec: TaskSpec, *, principal: Principal = LOCAL) -> Task:
        data = await self._wire.call("POST", "/api/tasks", body=spec.wire())
        return self._wire.model(Task, data)

    async def list(self) -> builtins.list[Task]:
        return await self._wire.every_page("/api/tasks", Task)

    async def get(self, task_id: str) -> Task:
        return self._wire.model(Task, await self._wire.get(f"/api/tasks/{part(task_id)}"))

    async def update(self, task_id: str, patch: TaskPatch, *,
                     principal: Principal = LOCAL) -> Task:
        body = patch.model_dump(mode="json", by_alias=True, exclude_unset=True)
        data = await self._wire.call("PATCH", f"/api/tasks/{part(task_id)}", body=body)
        return self._wire.model(Task, data)

    async def delete(self, task_id: str, *, principal: Principal = LOCAL) -> None:
        await self._wire.call("DELETE", f"/api/tasks/{part(task_id)}")

    async def set_enabled(self, task_id: str, enabled: bool, *,
                          principal: Principal = LOCAL) -> Task:
        return await self.update(task_id, TaskPatch(enabled=enabled))

    async def run(self, task_id: str, *, principal: Principal = LOCAL) -> Run:
        data = await self._wire.call("POST", f"/api/tasks/{part(task_id)}/run")
        run_id = data.get("runId") if isinstance(data, dict) else None
        if not isinstance(run_id, str):
            raise Unavailable(f"{self._wire.base_url} answered a run without its runId")
        return await self.get_run(task_id, run_id)

    async def _run_by_id(self, run_id: str) -> Run:
        task_id = self._task_of.get(run_id)
        if task_id is None:
            raise NotFound(f"run '{run_id}' is unknown to this client: read it with its "
                           "task (tasks results TASK --run RUN_ID)")
        return await self.get_run(task_id, run_id)

    async def wait_run(self, run_id: str, timeout_s: float) -> Run:
        return await poll(lambda: self._run_by_id(run_id), lambda r: r.finished, timeout_s)

    async def wait_settled(self, run_id: str, timeout_s: float) -> Run:
        def settled(run: Run) -> bool:
            return run.finished and (run.webhook is None or run.webhook.status != "pending")

        return await poll(lambda: self._run_by_id(run_id), settled, timeout_s)

    async def results(self, task_id: str, *, limit: int = 20, offset: int = 0) -> Page[Run]:
        data = await self._wire.get(f"/api/tasks/{part(task_id)}/results", limit=limit,
                                    offset=offset)
        page = self._wire.page(Run, data)
        for run in page.items:
            self._seen(run)
        return page

    async def latest(self, task_id: str) -> Run:
        data = await self._wire.get(f"/api/tasks/{part(task_id)}/results/latest")
        return self._seen(self._wire.model(Run, data))

    async def get_run(self, task_id: str, run_id: str) -> Run:
        path = f"/api/tasks/{part(task_id)}/results/{part(run_id)}"
        data = await self._wire.get(path)
        return self._seen(self._wire.model(Run, data))


class _TokenCreated(WireModel):
    token: TokenInfo
    view_url: str


class RemoteTokens:
    """``engine.tokens`` over ``/api/tokens``. A minted token's raw value is fetched from
    its one-time view (``view_url``), the only place the server shows it."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire

    async def mint(self, name: str, scopes: Iterable[str],
                   providers: Iterable[str] | None = None) -> tuple[TokenInfo, str]:
        body = {"name": name, "scopes": list(scopes),
                "providers": list(providers) if providers is not None else None}
        data = await self._wire.call("POST", "/api/tokens", body=body)
        created = self._wire.model(_TokenCreated, data)
        # The link names the server as it sees itself (publicUrl); fetch it from the server
        # we are talking to, by its path.
        secret = await self._wire.get("/view/" + created.view_url.rsplit("/view/", 1)[-1])
        raw = secret.get("token") if isinstance(secret, dict) else None
        if not isinstance(raw, str):
            raise Unavailable(f"{self._wire.base_url}'s one-time view held no token")
        return created.token, raw

    async def list(self, include_revoked: bool = False) -> builtins.list[TokenInfo]:
        return await self._wire.every_page(
            "/api/tokens", TokenInfo, includeRevoked="true" if include_revoked else None)

    async def get(self, token_id: str) -> TokenInfo:
        for info in await self.list(include_revoked=True):
            if info.id == token_id:
                return info
        shown = token_id[:PREFIX_LEN] + "…" if token_id.startswith(TOKEN_PREFIX) else token_id
        raise NotFound(f"no token '{shown}'")

    async def revoke(self, token_id: str) -> TokenInfo:
        await self._wire.call("DELETE", f"/api/tokens/{part(token_id)}")
        return await self.get(token_id)


class RemoteAudit:
    """``engine.audit`` over ``GET /api/audit`` (entries are written by the server)."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire

    async def query(
        self, *, actor: str | None = None, target: str | None = None,
        action: str | None = None, since: datetime | None = None,
        until: datetime | None = None, limit: int = 50, offset: int = 0,
    ) -> Page[AuditEntry]:
        data = await self._wire.get(
            "/api/audit", actor=actor, target=target, action=action,
            since=iso(since) if since else None, until=iso(until) if until else None,
            limit=limit, offset=offset)
        return self._wire.page(AuditEntry, data)
