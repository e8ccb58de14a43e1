"""The engine: the one object every edge talks to.

``async with Engine.open(home) as engine:`` loads the config (generating one on first use),
opens the store, builds the providers and owns a task group for background work (dispatches
that outlive a caller's wait budget, the scheduler). Edges — MCP tools, REST routes, the
CLI — are thin translations onto its methods and services.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
import httpx2
from anyio.abc import TaskGroup

from core import __version__
from core.api import EngineAPI, HealthInfo, OnPinged
from core.artifacts import ArtifactService
from core.audit import AuditLog
from core.auth import TokenService
from core.bootstrap import ensure_home
from core.clock import Clock, SystemClock
from core.config import Settings, home_dir, load_settings
from core.dispatch import Dispatcher, DispatchEvent, Plan
from core.errors import ModelReinsError, NotFound, error_from_wire
from core.fleet import FleetService
from core.health import HealthTracker
from core.http_client import HttpClient
from core.ids import new_id
from core.models import DispatchRecord, DispatchRequest, Page, ProviderStatus
from core.principal import LOCAL, Principal
from core.providers import Provider, provider_class
from core.queue import QueueService
from core.queue.notify import Watch
from core.reviews import ReviewService
from core.store import SqliteStore, Store, open_sqlite
from core.tasks.scheduler import OnFire, Scheduler, Sleeper, sleep_or_wake
from core.tasks.service import TaskService
from core.views import ViewService

__all__ = ["ARTIFACTS_DIR", "DB_FILE", "DispatchHandle", "Engine", "HealthInfo"]

DB_FILE = "modelreins.db"
ARTIFACTS_DIR = "artifacts"
ARTIFACT_SWEEP_S = 60.0

log = logging.getLogger("modelreins.engine")


@dataclass
class DispatchHandle:
    """A dispatch running in the engine's background; its ``task`` ends once it is
    recorded."""

    id: str
    prompt: str
    provider: str
    """The provider it went to first."""
    started_at: datetime
    task: asyncio.Task[None] | None = None
    record: DispatchRecord | None = None
    error: ModelReinsError | None = None
    finished: Watch = field(default_factory=Watch)
    """Fired by the dispatch's own task as it ends, so its waiters resume in the next turn
    of the loop (waiting on the task takes a turn more, through its done callbacks)."""

    @property
    def running(self) -> DispatchRecord:
        """The placeholder shown until it is recorded (built only when asked for: most
        dispatches finish inside their caller's wait and are never shown running)."""
        return DispatchRecord(id=self.id, status="running", prompt=self.prompt,
                              provider=self.provider, created_at=self.started_at)

    async def wait(self, timeout_s: float | None) -> DispatchRecord:
        """The finished record (raises its error) once recorded, or the running
        placeholder when ``timeout_s`` runs out. Cancelling the waiter leaves the
        dispatch running."""
        if not self.finished.fired:
            await self.finished.wait(math.inf if timeout_s is None else timeout_s)
        return self.outcome()

    def outcome(self) -> DispatchRecord:
        """The finished record (raises its error), or the running placeholder."""
        if self.error is not None:
            raise self.error
        return self.record or self.running


def build_providers(settings: Settings, http: HttpClient) -> dict[str, Provider]:
    return {
        name: provider_class(cfg.type)(name, cfg, http) for name, cfg in settings.providers.items()
    }


NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
"""Without it a request written as headers then body waits on the peer's delayed ACK:
~40 ms added to every upstream call (measured by bench/dispatch_overhead.py)."""


def new_http_client() -> httpx2.AsyncClient:
    """The engine's general-purpose HTTP client (webhook deliveries). Providers share a
    leaner one on their hot path (:class:`core.http_client.HttpClient`)."""
    transport = httpx2.AsyncHTTPTransport(socket_options=NODELAY)
    return httpx2.AsyncClient(transport=transport, follow_redirects=False)


class Engine:
    """Dispatch, history and provider status; services attach as attributes.

    It is the in-process :class:`~core.api.EngineAPI`."""

    in_process = True

    def __init__(
        self,
        settings: Settings,
        store: Store,
        http: httpx2.AsyncClient,
        *,
        upstream: HttpClient | None = None,
        clock: Clock | None = None,
        providers: dict[str, Provider] | None = None,
        home: Path | None = None,
    ) -> None:
        self.settings = settings
        self.home = home or settings.home or home_dir()
        self.store = store
        self.http = http
        self.clock: Clock = clock or SystemClock()
        self.health = HealthTracker(self.clock)
        if providers is None:
            if upstream is None:
                raise TypeError("an Engine without given providers needs their upstream client")
            providers = build_providers(settings, upstream)
        self.providers = providers
        self.audit = AuditLog(store.audit, self.clock)
        self.dispatcher = Dispatcher(settings, self.providers, store, self.health, self.clock,
                                     audit=self.audit)
        self.tokens = TokenService(store.tokens, self.clock)
        self.views = ViewService(store.views, self.clock, ttl_s=settings.server.view_ttl_s)
        self.tasks = TaskService(store, self, self.clock, settings, http)
        self.scheduler: Scheduler | None = None
        self.queue = QueueService(store, self.clock, settings.queue, audit=self.audit)
        self.fleet = FleetService(self.queue, self.tokens, self.views, self.audit)
        for provider in self.providers.values():
            provider.use_job_runner(self.fleet.run_job)
        self.reviews = ReviewService(store.reviews, self.clock, self.audit)
        self.artifacts = ArtifactService(store.artifacts, self.home / ARTIFACTS_DIR, self.clock,
                                         settings.queue.artifact_max_bytes)
        self._maintaining = False
        self.started = time.monotonic()
        self._inflight: dict[str, DispatchHandle] = {}
        self._tg: TaskGroup | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        home: Path | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
    ) -> AsyncIterator[Engine]:
        """The engine on ``home`` (default ``$MODELREINS_HOME``), running until the block ends."""
        home = home or home_dir()
        if settings is None:
            ensure_home(home)
            settings = load_settings(home)
        async with AsyncExitStack() as stack:
            if store is None:
                home.mkdir(parents=True, exist_ok=True)
                store = open_sqlite(home / DB_FILE)
            opened: Store = store
            stack.push_async_callback(opened.close)
            http = await stack.enter_async_context(new_http_client())
            upstream = await stack.enter_async_context(HttpClient())
            engine = cls(settings, opened, http, upstream=upstream, clock=clock, home=home)
            await engine.seed_health()
            failure: BaseException | None = None
            async with anyio.create_task_group() as tg:
                engine._tg = tg
                await tg.start(opened.background)
                try:
                    yield engine
                except BaseException as exc:
                    # Re-raised below, outside the group, so callers see the error itself
                    # rather than an ExceptionGroup wrapping it.
                    failure = exc
                finally:
                    with anyio.CancelScope(shield=True):
                        await engine._stop_dispatches()
                    tg.cancel_scope.cancel()
            engine._tg = None
            for provider in engine.providers.values():
                await provider.aclose()
            if failure is not None:
                raise failure

    @property
    def task_group(self) -> TaskGroup:
        return self._require_running()

    def _require_running(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError("the engine is not running; use `async with Engine.open()`")
        return self._tg

    async def seed_health(self) -> None:
        """Provider status survives restarts: replay recent history into the tracker."""
        recent, _ = await self.store.dispatches.page(limit=50, offset=0)
        for record in reversed(recent):
            for attempt in record.attempts:
                self.health.record(
                    attempt.provider, ok=attempt.code is None, error=attempt.code,
                    at=record.created_at,
                )

    # -- dispatch ---------------------------------------------------------------------

    async def resolve_provider(self, name: str | None) -> tuple[str, bool]:
        """The provider a request goes to first, and whether that is the default."""
        chosen = self.dispatcher.resolve(name)
        return chosen, chosen == self.settings.default_provider

    async def dispatch(
        self, req: DispatchRequest, *, wait_s: float | None = None, principal: Principal = LOCAL,
        dispatch_id: str | None = None,
    ) -> DispatchRecord:
        """Serve ``req``. With ``wait_s``, return a ``running`` record if it takes longer;
        the dispatch goes on and lands in history under that id. ``dispatch_id`` chooses
        the id it is recorded under (a new one if omitted). Every dispatch that reaches a
        provider is audited as ``dispatch`` by ``principal``."""
        if wait_s is None:
            return await self.dispatcher.dispatch(req, dispatch_id=dispatch_id,
                                                  allowed=principal.providers,
                                                  actor=principal.actor)
        handle = self.start_dispatch(req, principal=principal, dispatch_id=dispatch_id)
        return await handle.wait(wait_s)

    def start_dispatch(self, req: DispatchRequest, *, principal: Principal = LOCAL,
                       dispatch_id: str | None = None) -> DispatchHandle:
        """Start ``req`` in the background; validation errors raise here, at once."""
        plan = self.dispatcher.plan(req, principal.providers)
        dispatch_id = dispatch_id or new_id("dsp")
        handle = DispatchHandle(dispatch_id, plan.prompt, plan.chain[0], self.clock.now())
        self._require_running()
        self._inflight[dispatch_id] = handle
        # A plain asyncio task, not one of the task group's: spawning through anyio costs
        # ~3x as much (its task bookkeeping and cancel scopes; ~80 µs of a ~330 µs echo
        # dispatch). The engine cancels and awaits the ones still running when it closes.
        handle.task = asyncio.get_running_loop().create_task(
            self._run_handle(handle, plan, principal.actor), name=f"dispatch {dispatch_id}")
        return handle

    async def _run_handle(self, handle: DispatchHandle, plan: Plan, actor: str) -> None:
        try:
            handle.record = await self.dispatcher.run(plan, handle.id, actor)
        except ModelReinsError as exc:
            handle.error = exc
        except Exception as exc:
            # A bug, not a provider failure (those arrive as ModelReinsError): the caller
            # gets an INTERNAL error and the engine keeps serving.
            log.exception("dispatch %s failed unexpectedly", handle.id)
            handle.error = ModelReinsError(f"internal error: {type(exc).__name__}")
        finally:
            self._inflight.pop(handle.id, None)
            handle.finished.fire(None)

    async def _stop_dispatches(self) -> None:
        """Cancel the background dispatches still running and wait for them to end."""
        handles = list(self._inflight.values())
        tasks = [h.task for h in handles if h.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for handle in handles:  # one cancelled before it started never fired
            handle.finished.fire(None)

    def dispatch_stream(self, req: DispatchRequest, *, principal: Principal = LOCAL
                        ) -> AsyncGenerator[DispatchEvent, None]:
        """Deltas, fallback notices, then the final record; errors raise mid-stream."""
        return self.dispatcher.stream(req, allowed=principal.providers, actor=principal.actor)

    async def wait_dispatch(self, dispatch_id: str, timeout_s: float) -> DispatchRecord:
        """The dispatch once finished (raising its error if it failed), or its ``running``
        record when ``timeout_s`` runs out."""
        handle = self._inflight.get(dispatch_id)
        if handle is not None:
            return await handle.wait(timeout_s)
        record = await self.get_dispatch(dispatch_id)
        if record.status == "error" and record.error is not None:
            raise error_from_wire(record.error.wire())
        return record

    async def get_dispatch(self, dispatch_id: str, *, principal: Principal = LOCAL
                           ) -> DispatchRecord:
        """One dispatch, running or recorded. One served by a provider ``principal`` may
        not use is NOT_FOUND to it, as if it did not exist."""
        handle = self._inflight.get(dispatch_id)
        record = handle.running if handle is not None else \
            await self.store.dispatches.get(dispatch_id)
        allowed = principal.providers
        if record is None or (allowed is not None and record.provider not in allowed):
            raise NotFound(f"no dispatch '{dispatch_id}'")
        return record

    async def history(
        self, *, limit: int = 20, offset: int = 0, provider: str | None = None,
        status: str | None = None, principal: Principal = LOCAL,
    ) -> Page[DispatchRecord]:
        """Dispatches, newest first; only those served by providers ``principal`` may use."""
        items, total = await self.store.dispatches.page(
            limit=limit, offset=offset, provider=provider, status=status,
            providers=principal.providers)
        return Page[DispatchRecord](items=items, total=total, limit=limit, offset=offset)

    # -- scheduler --------------------------------------------------------------------

    def start_scheduler(self, *, on_fire: OnFire | None = None, sleep: Sleeper | None = None
                        ) -> Scheduler:
        """Run the task scheduler in the engine's task group (once; later calls return the
        running one). It stops, giving up its lease, when the engine closes."""
        if self.scheduler is None:
            self.scheduler = Scheduler(self.tasks, self.store, self.clock, self.settings.tasks,
                                       sleep=sleep or sleep_or_wake, on_fire=on_fire)
            self.task_group.start_soon(self.scheduler.run)
        return self.scheduler

    # -- queue ------------------------------------------------------------------------

    def start_maintenance(self, *, interval_s: float = 1.0) -> None:
        """Run the queue's maintenance (lease expiry, routing what is pending) every
        ``interval_s`` in the engine's task group, and sweep expired artifacts; once."""
        if not self._maintaining:
            self._maintaining = True
            self.task_group.start_soon(self._maintain, interval_s)

    async def _maintain(self, interval_s: float) -> None:
        swept_at = float("-inf")
        while True:
            try:
                await self.queue.maintain()
                if anyio.current_time() - swept_at >= ARTIFACT_SWEEP_S:
                    swept_at = anyio.current_time()
                    await self.artifacts.sweep()
            except Exception:
                # One failed pass (a locked database, a full disk) must not take the
                # server down with it; the next pass tries again.
                log.exception("queue maintenance pass failed")
            await anyio.sleep(interval_s)

    # -- providers --------------------------------------------------------------------

    def _status(self, name: str) -> ProviderStatus:
        cfg = self.settings.providers[name]
        status, last_check, last_error = self.health.status(name)
        return ProviderStatus(
            name=name, type=cfg.type, default=cfg.default, fallback=cfg.fallback,
            model=cfg.model, status=status, last_check=last_check, last_error=last_error,
        )

    async def list_providers(self) -> list[ProviderStatus]:
        return [self._status(name) for name in self.providers]

    async def ping_provider(self, name: str) -> ProviderStatus:
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(f"unknown provider '{name}'")
        try:
            await provider.ping()
        except ModelReinsError as exc:
            self.health.record(name, ok=False, error=str(exc))
        else:
            self.health.record(name, ok=True)
        return self._status(name)

    async def ping_all(self, on_done: OnPinged | None = None) -> list[ProviderStatus]:
        """Ping every provider concurrently."""
        results: dict[str, ProviderStatus] = {}

        async def one(name: str) -> None:
            results[name] = await self.ping_provider(name)
            if on_done:
                await on_done(results[name])

        async with anyio.create_task_group() as tg:
            for name in self.providers:
                tg.start_soon(one, name)
        return [results[n] for n in self.providers]

    async def health_info(self) -> HealthInfo:
        counts = {"healthy": 0, "degraded": 0, "down": 0, "unknown": 0}
        for status in await self.list_providers():
            counts[status.status] += 1
        overall = "ok" if not counts["down"] or counts["healthy"] else "degraded"
        return HealthInfo(status=overall, version=__version__,
                          uptime_s=time.monotonic() - self.started, providers=counts)

    async def aclose(self) -> None:
        await self.store.close()


def _satisfies_api(engine: Engine) -> EngineAPI:
    return engine  # mypy proves here that Engine implements the edges' interface


def open_memory_store() -> SqliteStore:
    """A private in-memory SQLite store (tests, benchmarks)."""
    return open_sqlite(":memory:")
