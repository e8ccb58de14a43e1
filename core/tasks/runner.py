"""Executing one task run: context, dispatch, storage, webhook — in the engine's task group.

:meth:`RunExecutor.start` records the run ``running`` (or ``skipped``, if a run of the same
task is still running — across every process sharing the store) and returns at once. The
run then continues in the engine's task group: the prompt, with ``context.readFile``'s tail
appended, goes through the engine's dispatcher — so fallback, history and the caller's
provider restrictions apply — the outcome is stored, and then the webhook, if any, is
delivered and its outcome stored on the run. A run's status never depends on its webhook.
A run cut short by shutdown is closed as an error rather than left ``running``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from core.clock import Clock, iso, to_ms
from core.config import Settings
from core.errors import ModelReinsError, NotFound
from core.ids import new_id
from core.models import DispatchRecord, DispatchRequest, ErrorInfo
from core.principal import Principal
from core.store.schedule import Busy, RunRepo
from core.tasks.context import read_context, with_context
from core.tasks.models import Run, RunTrigger, RunWebhook, Task
from core.tasks.targets import Resolver, WebhookPolicy, resolve_host
from core.tasks.webhooks import Sleep, build_payload, deliver

if TYPE_CHECKING:
    import httpx2

    from core.store.base import DispatchRepo

__all__ = ["RunExecutor", "RunStart", "RunStore", "TaskEngine"]

log = logging.getLogger("modelreins.tasks")

# A run still "running" after every provider's timeout in turn (plus slack) belongs to a
# process that died; it no longer blocks new runs of its task.
_STALE_SLACK_S = 600.0
_STALE_FLOOR_S = 3600.0
_POLL_S = 0.25
_ABANDONED = ErrorInfo(code="INTERNAL",
                       message="abandoned: the process running it stopped before it finished")
_INTERRUPTED = "interrupted: the engine shut down before the run finished"


class TaskEngine(Protocol):
    """What the service needs from the engine."""

    @property
    def providers(self) -> Mapping[str, object]: ...

    @property
    def task_group(self) -> TaskGroup: ...

    async def dispatch(
        self, req: DispatchRequest, *, wait_s: float | None = ..., principal: Principal = ...,
        dispatch_id: str | None = ...,
    ) -> DispatchRecord: ...


class RunStart(NamedTuple):
    """A run to start: of which task, as whom, and why."""

    task: Task
    principal: Principal
    trigger: RunTrigger


class RunStore(Protocol):
    @property
    def runs(self) -> RunRepo: ...

    @property
    def dispatches(self) -> DispatchRepo: ...


@dataclass
class _Handle:
    """A run executing in this process: ``finished`` when its result is stored,
    ``settled`` when its webhook is done too."""

    finished: anyio.Event = field(default_factory=anyio.Event)
    settled: anyio.Event = field(default_factory=anyio.Event)


def _stale_after(settings: Settings) -> timedelta:
    budget = sum(p.timeout_s for p in settings.providers.values()) + _STALE_SLACK_S
    return timedelta(seconds=max(_STALE_FLOOR_S, budget))


def _error_info(exc: ModelReinsError) -> ErrorInfo:
    return ErrorInfo(code=exc.code, message=exc.message, provider=exc.provider,
                     retry_after=exc.retry_after)


class RunExecutor:
    """Starts runs, carries them through, and lets callers wait for them."""

    def __init__(
        self,
        store: RunStore,
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
        self.policy = WebhookPolicy(allow_private=settings.webhooks.allow_private,
                                    allow=tuple(settings.webhooks.allow))
        self._sleep = sleep
        self._resolver = resolver
        self._stale_after = _stale_after(settings)
        self._inflight: dict[str, _Handle] = {}

    async def start(self, task: Task, principal: Principal, trigger: RunTrigger) -> Run:
        """Record a run of ``task`` and set it going; ``skipped`` if one is still running."""
        [run] = await self.start_many([RunStart(task, principal, trigger)])
        if run is None:
            raise NotFound(f"no task '{task.id}'")
        return run

    async def start_many(self, starts: Sequence[RunStart]) -> list[Run | None]:
        """:meth:`start` for several runs, recorded in one store transaction (how the
        scheduler fires a batch of due tasks); None where the task is gone."""
        group = self.engine.task_group
        now = to_ms(self.clock.now())
        runs = [Run(run_id=new_id("run"), task_id=s.task.id, trigger=s.trigger, status="running",
                    provider=s.task.provider, model=s.task.model, started_at=now)
                for s in starts]
        outcomes = await self.store.runs.start(runs, stale_before=now - self._stale_after,
                                               abandoned=_ABANDONED)
        started: list[Run | None] = []
        for start, run, outcome in zip(starts, runs, outcomes, strict=True):
            if isinstance(outcome, Busy):
                started.append(await self._skip(run, outcome))
            elif outcome is None:
                started.append(None)
            else:
                handle = self._inflight[run.run_id] = _Handle()
                group.start_soon(self._execute, start.task, run, start.principal, handle)
                started.append(run)
        return started

    async def _skip(self, run: Run, busy: Busy) -> Run:
        reason = (f"skipped: run {busy.run_id} of this task is still running "
                  f"(started {iso(busy.started_at)})")
        skipped = run.model_copy(update={
            "status": "skipped", "finished_at": run.started_at,
            "error": ErrorInfo(code="CONFLICT", message=reason)})
        await self.store.runs.add(skipped)
        return skipped

    async def _execute(self, task: Task, run: Run, principal: Principal,
                       handle: _Handle) -> None:
        done: Run | None = None
        try:
            done = await self._produce(task, run, principal)
            await self.store.runs.finish(done)
            handle.finished.set()
            if done.webhook is not None:
                webhook = await self._deliver(task, done)
                await self.store.runs.set_webhook(run.run_id, webhook)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._abort(run, done, exc)
            if not isinstance(exc, Exception):
                raise
            # Never let one run take the engine's task group (and every other run) down.
            log.exception("task run %s failed unexpectedly", run.run_id)
        finally:
            self._inflight.pop(run.run_id, None)
            handle.finished.set()
            handle.settled.set()

    async def _abort(self, run: Run, done: Run | None, exc: BaseException) -> None:
        """Close a run whose execution was cut short (shutdown or a bug), so it does not
        stay ``running`` or ``pending`` forever."""
        why = (_INTERRUPTED if not isinstance(exc, Exception)
               else f"internal error: {type(exc).__name__}")
        try:
            if done is None:
                await self.store.runs.finish(self._closed(
                    run, status="error", error=ErrorInfo(code="INTERNAL", message=why)))
            elif done.webhook is not None:
                webhook = RunWebhook(status="failed", attempts=done.webhook.attempts,
                                     last_error=why)
                await self.store.runs.set_webhook(run.run_id, webhook)
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)

    def _closed(self, run: Run, **outcome: Any) -> Run:
        return run.model_copy(update={"finished_at": to_ms(self.clock.now()), **outcome})

    async def _prompt(self, task: Task) -> str:
        if task.context is None:
            return task.prompt
        path, cfg = task.context.read_file, self.settings.tasks
        tail = await anyio.to_thread.run_sync(read_context, path, cfg.read_paths,
                                              cfg.read_max_bytes)
        return with_context(task.prompt, path, tail)

    async def _produce(self, task: Task, run: Run, principal: Principal) -> Run:
        """The finished run: dispatched, or an error; never raises a ModelReinsError."""
        webhook = RunWebhook(status="pending") if task.webhook else None
        dispatch_id = new_id("dsp")
        try:
            prompt = await self._prompt(task)
            record = await self.engine.dispatch(
                DispatchRequest(prompt=prompt, provider=task.provider, model=task.model),
                principal=principal, dispatch_id=dispatch_id)
        except ModelReinsError as exc:
            recorded = await self.store.dispatches.get(dispatch_id)
            return self._closed(
                run, status="error", error=_error_info(exc), webhook=webhook,
                provider=exc.provider or run.provider,
                latency_ms=recorded.latency_ms if recorded else 0,
                dispatch_id=recorded.id if recorded else None)
        return self._closed(
            run, status="success", text=record.text, provider=record.provider,
            model=record.model, usage=record.usage, latency_ms=record.latency_ms,
            dispatch_id=record.id, webhook=webhook)

    async def _deliver(self, task: Task, run: Run) -> RunWebhook:
        assert task.webhook is not None
        summary = run.wire()
        summary.pop("webhook")
        text = summary.pop("text")
        if run.error is not None:
            text = f"error: {run.error.code}: {run.error.message}"
        payload = build_payload(task.id, task.name, summary, text, task.webhook_format)
        outcome = await deliver(self.http, task.webhook, payload, self.policy,
                                timeout_s=self.settings.webhooks.timeout_s,
                                sleep=self._sleep, resolver=self._resolver)
        return RunWebhook.of(outcome)

    async def _stored_run(self, run_id: str) -> Run:
        run = await self.store.runs.get(run_id)
        if run is None:
            raise NotFound(f"no run '{run_id}'")
        return run

    async def wait(self, run_id: str, timeout_s: float, *, settled: bool) -> Run:
        """The run once finished (``settled``: and its webhook done), or as it is when
        ``timeout_s`` runs out."""
        run = await self._stored_run(run_id)
        with anyio.move_on_after(timeout_s):
            handle = self._inflight.get(run_id)
            if handle is not None:
                await (handle.settled if settled else handle.finished).wait()
                return await self._stored_run(run_id)
            # Running in another process sharing the store: all we can do is look again.
            while not run.finished or (settled and run.webhook and
                                       run.webhook.status == "pending"):
                await anyio.sleep(_POLL_S)
                run = await self._stored_run(run_id)
        return await self._stored_run(run_id)
