"""The fleet: registering workers, their presence, pausing, resuming and revoking them."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from core.clock import iso
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from core.ids import new_id
from core.principal import Principal
from core.queue.allocate import Allocator
from core.queue.context import SYSTEM, QueueContext, worker_actor, worker_model
from core.queue.models import (
    WORKER_NAME,
    Capability,
    Worker,
    WorkerRecord,
    parse_model,
    tags_field,
)
from core.store.queue import CapabilityRow, InHand, StatsRow, WorkerRow

__all__ = ["PRESENCE_STATUSES", "CapabilityInput", "WorkerService", "refuse_unknown"]

PRESENCE_STATUSES = ("active", "idle", "busy")
CapabilityInput = Capability | Mapping[str, Any] | str
"""A capability as callers give it: the model, its dict form, or a bare name (``auto``)."""


def _check_name(name: str, path: str = "name") -> str:
    if not isinstance(name, str) or not WORKER_NAME.fullmatch(name):
        raise field_error(path, "1-64 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def _capabilities(items: Sequence[CapabilityInput]) -> tuple[CapabilityRow, ...]:
    parsed: dict[str, CapabilityRow] = {}
    for i, item in enumerate(items):
        data = {"name": item} if isinstance(item, str) else item
        try:
            cap = data if isinstance(data, Capability) else parse_model(Capability, data)
        except ValidationFailed as exc:
            raise field_error(f"capabilities.{i}", exc.message) from exc
        if cap.name in parsed:
            raise field_error(f"capabilities.{i}", f"duplicate capability '{cap.name}'")
        parsed[cap.name] = CapabilityRow(cap.name, cap.risk_tier, tuple(cap.requires_secrets))
    return tuple(parsed.values())


async def refuse_unknown(ctx: QueueContext, name: str) -> NoReturn:
    """Raise for a name with no live worker: FORBIDDEN if revoked, else NOT_FOUND."""
    latest = await ctx.store.workers.by_name(name, include_revoked=True)
    if latest is not None:
        raise Forbidden(f"worker '{name}' is revoked")
    raise NotFound(f"no worker '{name}'")


def _recency(worker: Worker) -> tuple[bool, float]:
    seen = worker.presence.last_seen
    return (seen is None, -seen.timestamp() if seen else 0.0)


class WorkerService:
    """``queue.workers``: the fleet's identities and presence."""

    def __init__(self, ctx: QueueContext, allocator: Allocator) -> None:
        self.ctx = ctx
        self.allocator = allocator

    async def _row(self, id_or_name: str) -> WorkerRow:
        repo = self.ctx.store.workers
        if id_or_name.startswith("wkr_"):
            row = await repo.get(id_or_name)
        else:
            row = await repo.by_name(id_or_name, include_revoked=True)
        if row is None:
            raise NotFound(f"no worker '{id_or_name}'")
        return row

    async def _model(self, row: WorkerRow) -> Worker:
        return (await self._models([row]))[0]

    async def _models(self, rows: Sequence[WorkerRow]) -> builtins.list[Worker]:
        now = self.ctx.now()
        held = await self.ctx.store.jobs.in_hand()
        stats = await self.ctx.store.jobs.stats(now)
        return [
            worker_model(
                # A revoked worker's name may belong to a live one now: it holds nothing.
                r, InHand() if r.state == "revoked" else held.get(r.name, InHand()),
                stats.get(r.id, StatsRow()), now, self.ctx.presence_window)
            for r in rows
        ]

    async def register(
        self, name: str, description: str = "", capabilities: Sequence[CapabilityInput] = (),
        tags: str | Sequence[str] | None = None, *, actor: Principal,
    ) -> Worker:
        """A new worker identity; CONFLICT if a live worker already has the name."""
        row = WorkerRow(
            id=new_id("wkr"), name=_check_name(name), description=description or "",
            capabilities=_capabilities(capabilities), tags=tuple(tags_field(tags)),
            state="active", created_at=self.ctx.now(),
        )
        if not await self.ctx.store.workers.add(row):
            raise Conflict(f"a worker named '{name}' already exists")
        await self.ctx.audit(actor.actor, "worker.register", row.id, {
            "name": name, "capabilities": [c.name for c in row.capabilities],
            "tags": list(row.tags)})
        return await self._model(row)

    async def list(self, *, include_revoked: bool = True) -> builtins.list[Worker]:
        """Every worker by name (revoked ones too, unless asked not to)."""
        rows = await self.ctx.store.workers.all(include_revoked=include_revoked)
        return await self._models(rows)

    async def get(self, id_or_name: str) -> Worker:
        """By ``wkr_…`` id, or by name (the live worker, else the latest revoked one)."""
        return await self._model(await self._row(id_or_name))

    async def record(self, id_or_name: str) -> WorkerRecord:
        """The worker's 30-day outcomes."""
        return (await self.get(id_or_name)).record

    async def presence(self) -> builtins.list[Worker]:
        """Live workers, most recently heard from first."""
        workers = await self._models(await self.ctx.store.workers.all(include_revoked=False))
        return sorted(workers, key=_recency)

    async def pause(self, id_or_name: str, *, actor: Principal) -> Worker:
        """Stop routing to the worker; its unclaimed jobs go back to the queue, claimed ones
        run on."""
        return await self._set_state(id_or_name, "paused", "worker.pause", actor)

    async def resume(self, id_or_name: str, *, actor: Principal) -> Worker:
        """Route to the worker again (briefly penalised as cold)."""
        return await self._set_state(id_or_name, "active", "worker.resume", actor)

    async def revoke(self, id_or_name: str, *, actor: Principal) -> Worker:
        """Retire the worker for good (the row stays). Its unclaimed jobs go back to the
        queue and the jobs it runs are requeued as lost attempts."""
        return await self._set_state(id_or_name, "revoked", "worker.revoke", actor)

    async def _set_state(self, id_or_name: str, state: str, action: str, actor: Principal
                         ) -> Worker:
        row = await self._row(id_or_name)
        if row.state == "revoked":
            raise Conflict(f"worker '{row.name}' is revoked")
        now = self.ctx.now()
        updated = await self.ctx.store.workers.set_state(row.id, state, now)
        assert updated is not None
        if row.state != state:
            await self.ctx.audit(actor.actor, action, row.id, {"name": row.name})
            await self._after_state_change(row.name, state)
        return await self._model(updated)

    async def _after_state_change(self, name: str, state: str) -> None:
        jobs, now = self.ctx.store.jobs, self.ctx.now()
        if state in ("paused", "revoked"):
            for job_id in await jobs.release(name, now):
                await self.ctx.audit(SYSTEM, "job.release", f"job:{job_id}",
                                     {"worker": name, "reason": state})
        if state == "revoked":
            self.allocator.forget_stats()
            for row in await jobs.inbox(name, "running"):
                _, changed = await jobs.requeue(row.id, now, outcome="lost",
                                                error="worker revoked", only_if_expired=False)
                if changed:
                    await self.ctx.audit(SYSTEM, "job.requeue", f"job:{row.id}",
                                         {"worker": name, "reason": "revoked"})
        await self.allocator.assign_pending()

    async def heartbeat(
        self, name: str, status: str = "active", details: dict[str, Any] | None = None,
        tags: str | Sequence[str] | None = None, provider: str | None = None,
        capacity: int | None = None,
    ) -> dict[str, Any]:
        """``PUT /presence``: record presence, renew the leases of every job the worker
        runs, and route work to it. Returns the worker-protocol reply ``{"ok": true, …}``."""
        _check_name(name, "instance")
        if status not in PRESENCE_STATUSES:
            raise field_error("status", f"must be one of {', '.join(PRESENCE_STATUSES)}")
        if capacity is not None and (
                isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0):
            raise field_error("capacity", "must be a whole number ≥ 0")
        if details is not None and not isinstance(details, dict):
            raise field_error("details", "must be an object or null")
        now = self.ctx.now()
        normalized = tags_field(tags) if tags is not None else None
        row, new_session = await self.ctx.store.workers.heartbeat(
            name, presence=status, details=details, tags=normalized, provider=provider,
            capacity=capacity, now=now, window_start=now - self.ctx.presence_window,
            session_id=new_id("ses"))
        if row is None:
            await refuse_unknown(self.ctx, name)
        renewed = await self.ctx.store.jobs.renew(name, now)
        if new_session:
            await self.ctx.audit(worker_actor(name), "worker.online", row.id,
                                 {"session": row.session_id, "started_at": iso(now)})
        await self.allocator.assign_pending()
        pending = await self.ctx.store.jobs.inbox(name, "pending")
        return {
            "ok": True, "instance": name, "worker_id": row.id, "status": status,
            "tags": list(row.tags), "capacity": row.capacity, "renewed": renewed,
            "pending": len(pending), "new_session": new_session,
        }
