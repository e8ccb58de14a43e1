"""The task service: create, change and run scheduled tasks; read their results.

Runs are carried out by :class:`~core.tasks.runner.RunExecutor`: ``run`` returns at once
with the run ``running`` while it continues in the engine's task group.

A task is named by its id or its unique name anywhere one is asked for: names are resolved
here, so every edge accepts both. A name may not start with ``task_``, which keeps the two
apart.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from core.clock import Clock, to_ms
from core.config import Settings
from core.errors import NotFound, field_error
from core.ids import new_id
from core.models import Page
from core.principal import LOCAL, Principal
from core.store.schedule import Claimed, TaskRepo
from core.tasks.cron import next_fire
from core.tasks.models import Run, RunTrigger, Task, TaskPatch, TaskSpec
from core.tasks.runner import RunExecutor, RunStart, RunStore, TaskEngine
from core.tasks.targets import Resolver, resolve_host
from core.tasks.validation import Rules, apply_patch, validate
from core.tasks.webhooks import Sleep

if TYPE_CHECKING:
    import httpx2

__all__ = ["MAX_LIMIT", "SCHEDULER", "AuditSink", "TaskEngine", "TaskService", "TaskStore"]

MAX_LIMIT = 500
SCHEDULER = "scheduler"
"""The actor scheduled runs are made by."""


@runtime_checkable
class AuditSink(Protocol):
    """The audit log, when the engine has one."""

    async def record(self, actor: str, action: str, target: str | None = ...,
                     details: dict[str, Any] | None = ...) -> None: ...


class TaskStore(RunStore, Protocol):
    @property
    def tasks(self) -> TaskRepo: ...


def _run_as(claimed: Claimed) -> Principal:
    return Principal(name=SCHEDULER, kind="local", providers=claimed.run_as)


class TaskService:
    """Scheduled tasks and their runs, over the store and the engine's dispatcher."""

    def __init__(
        self,
        store: TaskStore,
        engine: TaskEngine,
        clock: Clock,
        settings: Settings,
        http: httpx2.AsyncClient,
        *,
        sleep: Sleep = anyio.sleep,
        resolver: Resolver = resolve_host,
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.http = http
        self.runner = RunExecutor(store, engine, clock, settings, http, sleep=sleep,
                                  resolver=resolver)
        self._changed: anyio.Event | None = None

    # -- change notification ------------------------------------------------------------

    def changes(self) -> anyio.Event:
        """An event set at the next change to any task (create, update, delete, enable)."""
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- tasks ---------------------------------------------------------------------------

    def _rules(self) -> Rules:
        return Rules(providers=builtins.list(self.engine.providers),
                     default_provider=self.settings.default_provider,
                     read_paths=self.settings.tasks.read_paths, policy=self.runner.policy)

    def _authorize(self, provider: str | None, principal: Principal) -> None:
        chosen = provider or self.settings.default_provider
        if chosen is not None:
            principal.require_provider(chosen)

    async def _audit(self, principal: Principal, action: str, target: str,
                     details: dict[str, Any]) -> None:
        audit = getattr(self.engine, "audit", None)
        if isinstance(audit, AuditSink):
            await audit.record(principal.actor, action, target, details)

    def _next_run(self, spec: TaskSpec) -> datetime | None:
        if not spec.enabled:
            return None
        return next_fire(self.clock.now(), spec.schedule, spec.timezone)

    async def create(self, spec: TaskSpec, *, principal: Principal = LOCAL) -> Task:
        """Store a new task; VALIDATION_ERROR lists every bad field, CONFLICT a taken name."""
        spec = await validate(spec, self._rules())
        self._authorize(spec.provider, principal)
        now = to_ms(self.clock.now())
        task = Task(id=new_id("task"), **dict(spec), created_at=now, updated_at=now,
                    next_run_at=self._next_run(spec))
        await self.store.tasks.add(task, run_as=principal.providers)
        await self._audit(principal, "task.create", task.id, {"name": task.name})
        self._notify()
        return task

    async def list(self) -> builtins.list[Task]:
        """Every task, by name, each with its next and last run."""
        return await self.store.tasks.all()

    async def get(self, task_id: str) -> Task:
        """The task with this id or name; NOT_FOUND if there is none."""
        task = await self.store.tasks.get(task_id) or await self.store.tasks.by_name(task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}'")
        return task

    async def update(self, task_id: str, patch: TaskPatch, *,
                     principal: Principal = LOCAL) -> Task:
        """Change the fields given in ``patch``; the next run uses them. ``nextRunAt`` is
        recomputed when the schedule, timezone or enabled flag changes."""
        current = await self.get(task_id)
        merged, changed = apply_patch(current.spec(), patch)
        if not changed:
            return current
        spec = await validate(merged, self._rules(), changed)
        self._authorize(spec.provider, principal)
        reschedule = bool(changed & {"schedule", "timezone", "enabled"})
        task = current.model_copy(update={**dict(spec), "updated_at": to_ms(self.clock.now()),
                                          "next_run_at": self._next_run(spec)})
        stored = await self.store.tasks.update(task, run_as=principal.providers,
                                               reschedule=reschedule)
        if stored is None:
            raise NotFound(f"no task '{task_id}'")
        await self._audit(principal, "task.update", stored.id,
                          {"name": stored.name, "fields": sorted(changed)})
        self._notify()
        return stored

    async def delete(self, task_id: str, *, principal: Principal = LOCAL) -> None:
        """Remove the task and every run of it."""
        task = await self.get(task_id)
        if not await self.store.tasks.delete(task.id):
            raise NotFound(f"no task '{task_id}'")
        await self._audit(principal, "task.delete", task.id, {"name": task.name})
        self._notify()

    async def set_enabled(self, task_id: str, enabled: bool, *,
                          principal: Principal = LOCAL) -> Task:
        """Enable (next run computed from now) or disable (no next run) a task."""
        task = await self.get(task_id)
        if task.enabled == enabled:
            return task
        next_run = self._next_run(task.spec().model_copy(update={"enabled": enabled}))
        stored = await self.store.tasks.set_enabled(task.id, enabled, next_run,
                                                    to_ms(self.clock.now()))
        if stored is None:
            raise NotFound(f"no task '{task_id}'")
        action = "task.enable" if enabled else "task.disable"
        await self._audit(principal, action, task.id, {"name": task.name})
        self._notify()
        return stored

    # -- runs ----------------------------------------------------------------------------

    async def run(self, task_id: str, *, principal: Principal = LOCAL,
                  trigger: RunTrigger = "manual") -> Run:
        """Start a run now, whatever the schedule or enabled flag say. Returns at once with
        the run ``running`` (or ``skipped``, when a run of the task is still running)."""
        task = await self.get(task_id)
        self._authorize(task.provider, principal)
        run = await self.runner.start(task, principal, trigger)
        await self._audit(principal, "task.run", task.id,
                          {"name": task.name, "runId": run.run_id, "status": run.status})
        return run

    async def fire(self, fires: Sequence[tuple[Claimed, RunTrigger]]
                   ) -> builtins.list[Run | None]:
        """Start runs the scheduler has claimed (in one store transaction), each as whoever
        last set its task up; None for a task deleted meanwhile."""
        starts = [RunStart(claimed.task, _run_as(claimed), trigger) for claimed, trigger in fires]
        return await self.runner.start_many(starts)

    async def wait_run(self, run_id: str, timeout_s: float) -> Run:
        """The run once it has finished (its result stored; the webhook may still be
        under way), or as it is when ``timeout_s`` runs out."""
        return await self.runner.wait(run_id, timeout_s, settled=False)

    async def wait_settled(self, run_id: str, timeout_s: float) -> Run:
        """Like :meth:`wait_run`, but also waits for the webhook delivery to end."""
        return await self.runner.wait(run_id, timeout_s, settled=True)

    async def results(self, task_id: str, *, limit: int = 20, offset: int = 0) -> Page[Run]:
        """The task's runs, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("limit", f"must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise field_error("offset", "must not be negative")
        task = await self.get(task_id)
        items, total = await self.store.runs.page(task.id, limit=limit, offset=offset)
        return Page[Run](items=items, total=total, limit=limit, offset=offset)

    async def latest(self, task_id: str) -> Run:
        """The newest run; NOT_FOUND if the task has not run yet."""
        task = await self.get(task_id)
        items, _ = await self.store.runs.page(task.id, limit=1, offset=0)
        if not items:
            raise NotFound(f"task '{task.name}' has not run yet")
        return items[0]

    async def get_run(self, task_id: str, run_id: str) -> Run:
        """One run of the task; NOT_FOUND if it is not one of this task's runs."""
        task = await self.get(task_id)
        run = await self.store.runs.get(run_id)
        if run is None or run.task_id != task.id:
            raise NotFound(f"no run '{run_id}' of task '{task.name}'")
        return run
