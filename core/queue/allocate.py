"""Assignment: applies the router's decisions to the store.

A pass snapshots the fleet, walks pending unassigned jobs (most urgent, then oldest first)
and for each asks :func:`core.queue.router.choose` where it goes; it stops as soon as no
online worker has room. Each assignment is a conditional update that re-checks the
worker's state and capacity in the store, so passes in several processes never overfill a
worker — a lost race just skips that job until the next pass.

A snapshot is taken for every submission, so it is kept cheap: the store serves the fleet
from memory while it is unchanged, and a worker's :class:`WorkerView` is rebuilt only when
its row or what it holds changed since the last snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple

from core.queue.context import SYSTEM, QueueContext, worker_view
from core.queue.models import (
    TIER_ORDER,
    RouteCandidate,
    RouteExplanation,
    RouteScore,
)
from core.queue.notify import inbox_key
from core.queue.router import (
    Choice,
    Explanation,
    JobView,
    WorkerStats,
    WorkerView,
    choose,
    explain,
    is_online,
    strictest_tier,
)
from core.store.queue import InHand, JobRow, StatsRow, WorkerRow

__all__ = ["Allocator", "Assignment", "Snapshot", "explanation_model", "job_view"]

BATCH = 200
STATS_TTL = timedelta(seconds=1)


@dataclass
class Snapshot:
    """The fleet as routing sees it at ``now``; updated in place as a pass assigns."""

    now: datetime
    views: dict[str, WorkerView]
    stats: dict[str, WorkerStats]
    held: dict[str, InHand]

    def took(self, worker: str) -> None:
        view = self.views[worker]
        self.views[worker] = view._replace(in_hand=view.in_hand + 1, last_assigned_at=self.now)

    def open_workers(self, ctx: QueueContext) -> list[WorkerView]:
        """Workers that could take a job now: active, online, with room."""
        return [
            v for v in self.views.values()
            if v.state == "active" and v.in_hand < v.capacity
            and is_online(v, self.now, ctx.presence_window)
        ]

    def has_room(self, ctx: QueueContext) -> bool:
        return bool(self.open_workers(ctx))


class _Basis(NamedTuple):
    """What a decision was made from: enough to explain it later."""

    workers: tuple[WorkerView, ...]
    stats: dict[str, WorkerStats]
    now: datetime
    presence_window: timedelta


@dataclass(frozen=True)
class Assignment:
    """One routing outcome of a pass: assigned to ``worker``, or ``held`` for approval."""

    job_id: int
    worker: str | None
    held: bool
    choice: Choice
    basis: _Basis
    row: JobRow | None = None
    """The job as assigned, when known (what a long-polling worker is then told)."""

    @cached_property
    def explanation(self) -> Explanation:
        """The router's full explanation, recomputed on demand (routing is pure, so it is
        the one the decision was made with)."""
        return explain(self.choice.job, *self.basis)

    @property
    def score(self) -> float | None:
        best = self.choice.best
        return best.score.total if best is not None and best.worker == self.worker else None


class _Built(NamedTuple):
    row: WorkerRow
    held: InHand
    grants: frozenset[str]
    view: WorkerView


def job_view(row: JobRow) -> JobView:
    return JobView(
        tags=row.tags, capability=row.capability, provider=row.provider,
        urgency=row.urgency, risk_tier=row.risk_tier, approved=row.approved_by is not None,
    )


def explanation_model(exp: Explanation) -> RouteExplanation:
    return RouteExplanation(
        job_tags=list(exp.job.tags), urgency=exp.job.urgency,  # type: ignore[arg-type]
        capability=exp.job.capability, provider=exp.job.provider,
        risk_tier=exp.job.risk_tier,  # type: ignore[arg-type]
        chosen=exp.chosen, needs_approval=exp.needs_approval,
        candidates=[
            RouteCandidate(
                worker=c.worker, eligible=c.eligible, reasons=list(c.reasons),
                score=RouteScore(
                    tag_overlap=round(c.score.tag_overlap, 4),
                    track_record=round(c.score.track_record, 4),
                    load=round(c.score.load, 4),
                    penalties={k: round(v, 4) for k, v in c.score.penalties.items()},
                    total=round(c.score.total, 4),
                ),
                session_approved=c.session_granted, last_assigned_at=c.last_assigned_at,
            )
            for c in exp.candidates
        ],
    )


_NONE_HELD = InHand()
_NO_GRANTS: frozenset[str] = frozenset()


class Allocator:
    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx
        self._stats: tuple[datetime, dict[str, StatsRow]] | None = None
        self._by_id: tuple[dict[str, StatsRow], dict[str, WorkerStats]] = ({}, {})
        """The last stats read, and the router's form of each worker's."""
        self._views: dict[str, _Built] = {}

    def forget_stats(self) -> None:
        """A failure was recorded here: the next pass must see it."""
        self._stats = None

    async def _worker_stats(self, now: datetime) -> dict[str, StatsRow]:
        # Track records change slowly and every pass needs them: they are re-read at most
        # every STATS_TTL (at once after a failure recorded by this process).
        if self._stats is not None and timedelta(0) <= now - self._stats[0] < STATS_TTL:
            return self._stats[1]
        fresh = await self.ctx.store.jobs.stats(now)
        self._stats = (now, fresh)
        return fresh

    async def snapshot(self) -> Snapshot:
        store, now = self.ctx.store, self.ctx.now()
        rows, held = await store.workers.fleet_now()
        by_id = await self._worker_stats(now)
        sessions = any(c.risk_tier == "session" for r in rows for c in r.capabilities)
        grants = await store.jobs.session_grants() if sessions else {}
        if self._by_id[0] is not by_id:
            self._by_id = (by_id, {worker_id: WorkerStats(s.done_30d, s.failed_30d,
                                                          s.failures_1h)
                                   for worker_id, s in by_id.items()})
        routed = self._by_id[1]
        views: dict[str, WorkerView] = {}
        stats: dict[str, WorkerStats] = {}
        for row in rows:
            views[row.name] = self._view(row, held.get(row.name, _NONE_HELD),
                                         grants.get(row.id, _NO_GRANTS))
            s = routed.get(row.id)
            if s is not None:
                stats[row.name] = s
        if len(self._views) > len(views):
            self._views = {name: self._views[name] for name in views}
        return Snapshot(now=now, views=views, stats=stats, held=held)

    def _view(self, row: WorkerRow, held: InHand, grants: frozenset[str]) -> WorkerView:
        built = self._views.get(row.name)
        if built is not None and built.row is row \
                and (built.held is held or built.held == held) and built.grants == grants:
            return built.view
        view = worker_view(row, held, grants)
        self._views[row.name] = _Built(row, held, grants, view)
        return view

    def _job(self, job: JobView, snap: Snapshot) -> JobView:
        """``job`` under its capability's current tier (a worker registered after the job
        was submitted may have made it stricter)."""
        tier = strictest_tier(job.capability, snap.views.values())
        if TIER_ORDER[tier] > TIER_ORDER.get(job.risk_tier, 0):
            return job._replace(risk_tier=tier)
        return job

    def decide(self, job: JobView, snap: Snapshot) -> Explanation:
        """The router's explained decision for ``job``."""
        return explain(self._job(job, snap), list(snap.views.values()), snap.stats, snap.now,
                       self.ctx.presence_window)

    def choose(self, job: JobView, snap: Snapshot) -> tuple[Choice, _Basis]:
        """The same decision, unexplained, and what it was made from."""
        job = self._job(job, snap)
        window = self.ctx.presence_window
        basis = _Basis(tuple(snap.views.values()), snap.stats, snap.now, window)
        return choose(job, basis.workers, snap.stats, snap.now, window), basis

    async def explain(self, job: JobView) -> Explanation:
        return self.decide(job, await self.snapshot())

    async def assign_pending(self, snap: Snapshot | None = None) -> list[Assignment]:
        """Route every pending unassigned job that can go somewhere now."""
        jobs = self.ctx.store.jobs
        if not await jobs.has_queued():
            return []
        snap = snap or await self.snapshot()
        placed: list[Assignment] = []
        after: tuple[int, int] | None = None
        while open_now := snap.open_workers(self.ctx):
            # Read about as many jobs as there is room for, and only jobs some open worker
            # could serve: draining a long backlog costs per job placed, not per job waiting.
            # Under a backlog every close runs a pass for its one free slot, so the slack is
            # small: a job read but not placed (held for approval, a lost race) just means
            # one more page.
            room = sum(w.capacity - w.in_hand for w in open_now)
            limit = min(BATCH, room + 2)
            rows = await jobs.queued(
                after=after, limit=limit,
                capabilities={c for w in open_now for c in w.capabilities},
                providers={w.provider for w in open_now if w.provider is not None})
            for row in rows:
                outcome = await self._place(row, snap)
                if outcome is not None:
                    placed.append(outcome)
                if not snap.has_room(self.ctx):
                    break
            if len(rows) < limit:
                break
            after = (rows[-1].priority, rows[-1].id)
        await self._announce(placed)
        return placed

    async def _place(self, row: JobRow, snap: Snapshot) -> Assignment | None:
        choice, basis = self.choose(job_view(row), snap)
        jobs, tier = self.ctx.store.jobs, choice.job.risk_tier
        if choice.needs_approval:
            if await jobs.hold(row.id, choice.chosen, tier, snap.now):
                return Assignment(row.id, choice.chosen, True, choice, basis)
            return None
        if choice.chosen is None:
            return None
        if not await jobs.assign(row.id, choice.chosen, tier, snap.now):
            return None
        snap.took(choice.chosen)
        return Assignment(row.id, choice.chosen, False, choice, basis)

    async def placed(self, row: JobRow, choice: Choice, basis: _Basis, *, held: bool,
                     snap: Snapshot) -> None:
        """Announce a routing decision applied outside a pass (at submission)."""
        if choice.chosen is not None and not held:
            snap.took(choice.chosen)
        await self._announce([Assignment(row.id, choice.chosen, held, choice, basis, row)])

    async def _announce(self, placed: list[Assignment]) -> None:
        for a in placed:
            if a.worker is not None and not a.held:
                self.ctx.changes.notify(inbox_key(a.worker), a.row)
        if self.ctx.audit_sink is None:
            return
        for a in placed:
            details: dict[str, Any] = {"worker": a.worker, "risk_tier": a.choice.job.risk_tier}
            if a.score is not None:
                details["score"] = round(a.score, 4)
            action = "job.hold" if a.held else "job.assign"
            await self.ctx.audit(SYSTEM, action, f"job:{a.job_id}", details)
