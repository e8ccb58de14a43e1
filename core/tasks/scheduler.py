"""The scheduler loop: fire each due run once, on time, from one process among many.

It sleeps until the earliest ``next_run_at`` of any enabled task (one indexed lookup), or
until the task service reports a change, or until its leader lease needs renewing —
whichever is first. Nothing is polled per task.

Several processes may share one store; only the holder of the ``scheduler`` lease fires.
The lease lasts ``tasks.leaseS`` and is renewed every third of that, so a leader that dies
is replaced within one lease; a follower wakes when the lease it saw would expire and tries
to take it. Each fire is also claimed on its own (``next_run_at`` moved from the due time
to the next one in one conditional update), so even two processes that both believe they
lead — a stalled leader waking after its lease passed — cannot fire the same run twice.

After downtime a task gets at most one ``catchup`` run, for its latest missed fire, and
only if that fire is within ``tasks.catchupGraceS``; then its schedule resumes from now.
A fire less than a minute late (or two leases, if longer) is merely late, not missed.

Changes made by another process sharing the store are seen at the next wake, which is at
most a third of a lease away.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import anyio

from core.clock import Clock
from core.config import TasksConfig
from core.errors import ModelReinsError
from core.ids import new_id
from core.store.schedule import Claimed, DueTask, Fire, LeaseRepo, TaskRepo
from core.tasks.cron import last_fire_between, next_fire
from core.tasks.models import Run, RunTrigger, Task

if TYPE_CHECKING:
    from core.tasks.service import TaskService

__all__ = ["LEASE_NAME", "OnFire", "Scheduler", "SchedulerStore", "Sleeper", "sleep_or_wake"]

log = logging.getLogger("modelreins.scheduler")

LEASE_NAME = "scheduler"
BATCH = 500
_MAX_BATCHES = 1000
_ERROR_BACKOFF_S = 1.0
_ON_TIME_FLOOR_S = 60.0

Sleeper = Callable[[float, anyio.Event], Awaitable[None]]
"""``(seconds, wake)``: return after ``seconds``, or as soon as ``wake`` is set."""

OnFire = Callable[[Task, Run], Awaitable[None]]
"""Told about each run the scheduler starts (the CLI prints a line)."""


async def sleep_or_wake(seconds: float, wake: anyio.Event) -> None:
    """The default :data:`Sleeper`, on the event loop's clock."""
    with anyio.move_on_after(seconds):
        await wake.wait()


class SchedulerStore(Protocol):
    @property
    def tasks(self) -> TaskRepo: ...

    @property
    def leases(self) -> LeaseRepo: ...


def _holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('sch')}"


class Scheduler:
    """Fires due task runs through a :class:`~core.tasks.service.TaskService`."""

    def __init__(
        self,
        service: TaskService,
        store: SchedulerStore,
        clock: Clock,
        config: TasksConfig,
        *,
        sleep: Sleeper = sleep_or_wake,
        holder: str | None = None,
        on_fire: OnFire | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.holder = holder or _holder_id()
        self.on_fire = on_fire
        self._sleep = sleep
        self._lease = timedelta(seconds=config.lease_s)
        self._grace = timedelta(seconds=config.catchup_grace_s)
        self._on_time = timedelta(seconds=max(_ON_TIME_FLOOR_S, 2 * config.lease_s))
        self._renew_at: datetime | None = None
        self._other_until: datetime | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this scheduler held the lease at its last step."""
        return self._renew_at is not None

    async def run(self) -> None:
        """Step and sleep until cancelled; gives the lease up on the way out."""
        try:
            while True:
                wake = self.service.changes()
                try:
                    delay = await self.step()
                except Exception:
                    log.exception("scheduler step failed; retrying")
                    delay = _ERROR_BACKOFF_S
                await self._sleep(delay, wake)
        finally:
            with anyio.CancelScope(shield=True):
                await self.release()

    async def step(self) -> float:
        """Lead if possible, fire what is due; the seconds until the next step is needed."""
        now = self.clock.now()
        if not await self._lead(now):
            assert self._other_until is not None
            return max(0.0, (self._other_until - now).total_seconds())
        await self._fire_due()
        now = self.clock.now()
        assert self._renew_at is not None
        wake_at = self._renew_at
        due = await self.store.tasks.next_due()
        if due is not None:
            wake_at = min(wake_at, due)
        return max(0.0, (wake_at - now).total_seconds())

    async def release(self) -> None:
        """Give up the lease, if held, so another process can lead at once."""
        if self._renew_at is not None:
            self._renew_at = None
            await self.store.leases.release(LEASE_NAME, self.holder)

    async def _lead(self, now: datetime) -> bool:
        if self._renew_at is not None and now < self._renew_at:
            return True
        state = await self.store.leases.acquire(
            LEASE_NAME, self.holder, now=now, expires_at=now + self._lease)
        if state.holder == self.holder:
            if self._renew_at is None:
                log.info("scheduler %s is now the leader", self.holder)
            self._renew_at = now + self._lease / 3
            return True
        self._renew_at, self._other_until = None, state.expires_at
        return False

    async def _fire_due(self) -> None:
        for _ in range(_MAX_BATCHES):
            batch = await self.store.tasks.due(self.clock.now(), BATCH)
            await self._fire_batch(batch)
            if len(batch) < BATCH:
                return

    def _plan(self, due: DueTask, now: datetime) -> tuple[Fire, RunTrigger | None]:
        """How to fire ``due`` at ``now``: where its ``next_run_at`` moves, and the run's
        trigger — ``schedule`` if the fire is merely late, ``catchup`` for the latest missed
        one within the grace window, None when even that is too old."""
        scheduled = due.next_run_at
        try:
            after = next_fire(scheduled, due.schedule, due.timezone)
            if after > now:  # the common case: nothing else came due since
                trigger: RunTrigger | None = "schedule"
                if now - scheduled >= self._on_time:
                    trigger = self._catchup(scheduled, now)
                return Fire(due.id, scheduled, after), trigger
            latest = last_fire_between(scheduled, now, due.schedule, due.timezone) or after
            following: datetime | None = next_fire(now, due.schedule, due.timezone)
        except ModelReinsError as exc:
            # A schedule that can no longer be evaluated stops firing (nextRunAt: null).
            log.error("task %s: cannot compute its next run: %s", due.id, exc)
            return Fire(due.id, scheduled, None), None
        return Fire(due.id, scheduled, following), self._catchup(latest, now)

    def _catchup(self, missed: datetime, now: datetime) -> RunTrigger | None:
        return "catchup" if now - missed <= self._grace else None

    async def _fire_batch(self, batch: list[DueTask]) -> None:
        now = self.clock.now()
        plans = {due.id: self._plan(due, now) for due in batch}
        claimed = await self.store.tasks.claim([fire for fire, _ in plans.values()])
        wanted: list[tuple[Claimed, RunTrigger]] = []
        for won in claimed:
            trigger = plans[won.task.id][1]
            if trigger is None:
                log.info("task %s: missed %s, beyond the catch-up grace; not run",
                         won.task.id, plans[won.task.id][0].due)
            else:
                wanted.append((won, trigger))
        runs = await self.service.fire(wanted) if wanted else []
        for (won, trigger), run in zip(wanted, runs, strict=True):
            if run is None:
                continue
            log.info("task %s fired: %s (%s)", won.task.name, run.run_id, trigger)
            if self.on_fire is not None:
                await self.on_fire(won.task, run)
