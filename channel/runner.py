"""The worker loop shared by ``modelreins worker`` and the Python SDK.

One :class:`Runner` serves one worker name through a :class:`~channel.client.WorkerClient`
and an :class:`~channel.jobs.Executor`, as structured concurrency:

- **heartbeats** run in their own task for the runner's whole life, also while jobs run:
  every ``heartbeat_s`` (5 s), sooner when a running job's timeout is short (a lease is the
  job's timeout renewed by each heartbeat, so it must not lapse while the job still runs),
  and at once whenever the set of running jobs changes;
- the **poll loop** waits for a free slot (``capacity``), long-polls the inbox, and claims
  what it may; a server without long polls is polled every ``poll_interval_s``;
- each claimed job runs in its own task and cancel scope and is closed with its outcome.

When the server is away (:class:`~core.errors.Unavailable`) the poll loop and every close
retry after :class:`~channel.backoff.Backoff` delays (exponential, capped, jittered) while
heartbeats keep trying at their cadence; results wait for the server rather than being
lost. A rejected token or any other refusal that will not fix itself (unknown or revoked
worker, invalid heartbeat) stops the runner with that error.

Stopping (:meth:`Runner.stop`): no more claims; a heartbeat at once says ``idle`` with
capacity 0 so nothing more is assigned; running jobs get ``grace_s`` to finish and be
closed. After that — or at once with ``force`` — they are cancelled (their process groups
killed) and *not* closed: their leases lapse and the queue retries them elsewhere, because
a job cut short by a shutdown has not failed. Last, the runner signs off (a heartbeat with
``status: "offline"``), and the server hands the jobs assigned here but never claimed to
other workers at once; a server without sign-off takes them back when the worker's
presence window passes.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from channel.backoff import Backoff
from channel.client import Job, WorkerClient
from channel.jobs import DEFAULT_JOB_TIMEOUT_S, Executor, Outcome, job_id, job_timeout
from core.errors import Conflict, ModelReinsError, RateLimited, Unauthorized, Unavailable

__all__ = [
    "PRESENCE_TIMEOUT_S",
    "TRANSIENT",
    "Runner",
    "RunnerConfig",
    "heartbeat_interval",
    "unwrap_group",
]

log = logging.getLogger("modelreins.worker")

TRANSIENT: tuple[type[ModelReinsError], ...] = (Unavailable, RateLimited)
"""Errors that say "try again later", never "stop"."""
PRESENCE_TIMEOUT_S = 10.0
"""Longest wait for a heartbeat or the sign-off to be answered."""


@dataclass(frozen=True)
class RunnerConfig:
    """How a runner behaves; the defaults are the product's (heartbeat every 5 s…)."""

    capacity: int = 1
    tags: str | None = None
    provider: str | None = None
    """Advertised in heartbeats, so the router can send jobs pinned to a provider."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra presence details (what the worker runs), merged into every heartbeat."""
    heartbeat_s: float = 5.0
    min_heartbeat_s: float = 0.2
    long_poll_s: float = 20.0
    poll_interval_s: float = 5.0
    grace_s: float = 20.0
    default_timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    backoff: Callable[[int], float] = field(default_factory=Backoff)
    """Seconds to wait after the n-th failure in a row to reach the server."""

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")


def heartbeat_interval(every_s: float, timeouts: Iterable[float], floor_s: float) -> float:
    """Seconds until the next heartbeat: ``every_s``, or a third of the shortest running
    job's timeout when that is sooner, never below ``floor_s``."""
    shortest = min(timeouts, default=None)
    interval = every_s if shortest is None else min(every_s, shortest / 3)
    return max(floor_s, interval)


@dataclass
class _Running:
    scope: anyio.CancelScope
    timeout_s: float


class Runner:
    """Serves jobs for ``client.name`` until :meth:`stop` (or a fatal error)."""

    def __init__(self, client: WorkerClient, executor: Executor,
                 config: RunnerConfig | None = None) -> None:
        self.client = client
        self.executor = executor
        self.config = config or RunnerConfig()
        self._running: dict[int, _Running] = {}
        self._stopping = anyio.Event()
        self._forced = anyio.Event()
        self._changed = anyio.Event()
        self._inbox_scope: anyio.CancelScope | None = None

    @property
    def running(self) -> list[int]:
        """Ids of the jobs running now."""
        return sorted(self._running)

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming and finish (``force``: cancel) running jobs; :meth:`run` returns
        once they are done. Safe to call again, e.g. to force a stop already under way."""
        self._stopping.set()
        if force:
            self._forced.set()
        if self._inbox_scope is not None:
            self._inbox_scope.cancel()
        self._notify()

    async def run(self) -> None:
        """Serve until stopped. Raises the fatal error that stopped it, if any."""
        with unwrap_group():
            if not await self._connect():
                return
            async with anyio.create_task_group() as life:
                life.start_soon(self._heartbeats)
                async with anyio.create_task_group() as jobs:
                    await self._poll(jobs)
                    life.start_soon(self._enforce_grace)
                life.cancel_scope.cancel()
            await self._sign_off()

    # -- presence -----------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _beat(self) -> None:
        stopping = self._stopping.is_set()
        full = len(self._running) >= self.config.capacity
        details = {**self.config.details, "running": self.running}
        if stopping:
            details["stopping"] = True
        await self.client.heartbeat(
            status="idle" if stopping else "busy" if full else "active",
            details=details, tags=self.config.tags, provider=self.config.provider,
            capacity=0 if stopping else self.config.capacity)

    async def _connect(self) -> bool:
        """The first heartbeat, retried while the server is away; False if stopped first."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._beat()
            except TRANSIENT as exc:
                failures += 1
                delay = self._delay(failures, exc)
                log.warning("%s; retrying in %.1f s", exc.message, delay)
                await self._wait(delay, self._stopping)
                continue
            log.info("worker '%s' online at %s", self.client.name, self.client.base_url)
            return True
        return False

    async def _heartbeats(self) -> None:
        away = False
        while True:
            changed = self._changed
            interval = heartbeat_interval(
                self.config.heartbeat_s, (r.timeout_s for r in self._running.values()),
                self.config.min_heartbeat_s)
            await self._wait(interval, changed)
            try:
                # Finished even when the runner is winding down, so a heartbeat abandoned
                # mid-flight cannot reach the server after the sign-off and undo it.
                with anyio.CancelScope(shield=True), anyio.fail_after(PRESENCE_TIMEOUT_S):
                    await self._beat()
            except TimeoutError:
                if not away:
                    log.warning("heartbeat got no answer within %g s", PRESENCE_TIMEOUT_S)
                away = True
                continue
            except TRANSIENT as exc:
                if not away:
                    log.warning("heartbeat failed: %s", exc.message)
                away = True
                continue
            if away:
                log.info("heartbeats reach the server again")
            away = False

    async def _sign_off(self) -> None:
        reply: dict[str, Any] = {}
        problem: str | None = f"no answer within {PRESENCE_TIMEOUT_S:g} s"
        with anyio.move_on_after(PRESENCE_TIMEOUT_S):
            try:
                reply, problem = await self.client.sign_off(), None
            except ModelReinsError as exc:
                problem = str(exc)
        if problem is not None:
            log.info("could not sign off (%s); the server takes back unclaimed jobs once it "
                     "stops hearing from this worker", problem)
            return
        released = reply.get("released") or []
        log.info("worker '%s' signed off%s", self.client.name,
                 f"; jobs {released} went back to the queue" if released else "")

    # -- claiming -----------------------------------------------------------------------

    async def _poll(self, jobs: TaskGroup) -> None:
        failures = 0
        while await self._free_slot():
            started = anyio.current_time()
            try:
                batch = await self._inbox()
                if batch is None:
                    return
                claimed = await self._claim(batch, jobs)
            except TRANSIENT as exc:
                failures += 1
                delay = self._delay(failures, exc)
                log.warning("%s; reconnecting in %.1f s", exc.message, delay)
                await self._wait(delay, self._stopping)
                continue
            if failures:
                log.info("reconnected to %s", self.client.base_url)
                failures = 0
                self._notify()
            quick = anyio.current_time() - started < self.config.long_poll_s / 2
            if (not batch and quick) or (batch and not claimed):
                # An empty answer that did not wait (a server without long polls), or only
                # refusals: pace the polls instead of spinning.
                await self._wait(self.config.poll_interval_s, self._stopping)

    async def _free_slot(self) -> bool:
        while len(self._running) >= self.config.capacity and not self._stopping.is_set():
            await self._changed.wait()
        return not self._stopping.is_set()

    async def _inbox(self) -> list[Job] | None:
        """The inbox, or None when :meth:`stop` cut the long poll short."""
        with anyio.CancelScope() as scope:
            self._inbox_scope = scope
            try:
                if self._stopping.is_set():
                    scope.cancel()
                return await self.client.inbox(wait_s=self.config.long_poll_s)
            finally:
                self._inbox_scope = None
        return None

    async def _claim(self, batch: list[Job], jobs: TaskGroup) -> int:
        claimed = 0
        for offered in batch:
            if self._stopping.is_set() or len(self._running) >= self.config.capacity:
                break
            job = await self.client.claim(job_id(offered))
            if job is None:
                log.info("job %d: claim refused; skipping it", job_id(offered))
                continue
            self._start({**offered, **job}, jobs)
            claimed += 1
        return claimed

    def _start(self, job: Job, jobs: TaskGroup) -> None:
        scope = anyio.CancelScope()
        timeout = job_timeout(job, self.config.default_timeout_s)
        self._running[job_id(job)] = _Running(scope, timeout)
        self._notify()
        jobs.start_soon(self._serve, job, scope, timeout)

    # -- running ------------------------------------------------------------------------

    async def _serve(self, job: Job, scope: anyio.CancelScope, timeout_s: float) -> None:
        number = job_id(job)
        log.info("job %d: started (timeout %g s)", number, timeout_s)
        try:
            outcome: Outcome | None = None
            with scope:
                try:
                    outcome = await self.executor(job, timeout_s)
                except Exception:
                    # An executor bug must cost one job, not the worker.
                    outcome = Outcome.failed(f"worker error:\n{traceback.format_exc()}")
            if outcome is None:
                log.warning("job %d: interrupted by shutdown and left unclosed; the queue "
                            "retries it when its lease expires", number)
                return
            await self._deliver(number, outcome)
        finally:
            del self._running[number]
            self._notify()

    async def _deliver(self, number: int, outcome: Outcome) -> None:
        failures = 0
        while True:
            try:
                await self.client.close(number, outcome.result, outcome.status)
            except TRANSIENT as exc:
                if self._forced.is_set():
                    log.error("job %d: result lost, the server is away at shutdown: %s",
                              number, exc.message)
                    return
                failures += 1
                delay = self._delay(failures, exc)
                log.warning("job %d: cannot close yet (%s); retrying in %.1f s",
                            number, exc.message, delay)
                await self._wait(delay, self._forced)
                continue
            except Conflict as exc:
                log.warning("job %d: result not recorded: %s", number, exc.message)
                return
            except Unauthorized:
                raise
            except ModelReinsError as exc:
                log.error("job %d: close refused: %s", number, exc)
                return
            log.info("job %d: closed %s", number, outcome.status)
            return

    async def _enforce_grace(self) -> None:
        if self._running:
            log.warning("stopping: %d running job(s) get %g s to finish", len(self._running),
                        self.config.grace_s)
        await self._wait(self.config.grace_s, self._forced)
        self._forced.set()
        for running in self._running.values():
            running.scope.cancel()

    def _delay(self, failures: int, exc: ModelReinsError) -> float:
        """The backoff after ``failures`` in a row, but no sooner than a server asked."""
        return max(self.config.backoff(failures), exc.retry_after or 0.0)

    @staticmethod
    async def _wait(delay: float, event: anyio.Event) -> None:
        """Wait ``delay`` seconds, or less if ``event`` fires."""
        with anyio.move_on_after(delay):
            await event.wait()


@contextmanager
def unwrap_group() -> Iterator[None]:
    """Re-raise a task group's lone error as itself, so callers catch what was raised."""
    try:
        yield
    except BaseExceptionGroup as group:
        errors = group.exceptions
        while len(errors) == 1 and isinstance(errors[0], BaseExceptionGroup):
            errors = errors[0].exceptions
        if len(errors) == 1:
            raise errors[0] from None
        raise
