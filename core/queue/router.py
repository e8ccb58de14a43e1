"""The scoring router: pure functions from a job and snapshots of workers to a decision.

Nothing here reads the clock or the store; callers pass ``now`` and the numbers. The value
types are named tuples: immutable, and cheap to build on every routing pass. What decides is
:func:`explain` — ``/dispatch/explain`` shows it — and :func:`choose`, the same decision
for assignment's hot path: it scores only the eligible workers and keeps the best, instead
of ranking every candidate and spelling out why the others are not eligible. Both rank with
one key and decide with one rule, and a property test holds them to the same answer.

Score of a worker for a job::

    total = 0.5·tag_overlap + 0.3·track_record + 0.2·(1 − load) − penalties

- ``tag_overlap`` = |job tags ∩ worker tags| / |job tags|, 1.0 when the job has no tags.
- ``track_record`` = the 30-day success rate under a Beta(α=2, β=2) prior:
  ``(done + 2) / (done + failed + 4)``. A new worker starts at the prior mean 0.5 — neither
  trusted nor distrusted — and two outcomes move it by at most 1/6, so one lucky or unlucky
  job does not decide its future.
- ``load`` = jobs in hand (claimed + assigned-but-unclaimed) / capacity, capped at 1.
- penalties: each failure (or lost lease) in the last hour, a rate-limited worker, a cold
  worker (resumed from pause or came online within the last minute).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple

from core.queue.models import TIER_ORDER

__all__ = [
    "AT_CAPACITY",
    "COLD_PENALTY",
    "COLD_WINDOW",
    "FAILURE_PENALTY",
    "LOAD_WEIGHT",
    "MAX_FAILURE_PENALTY",
    "PRIOR_FAILURES",
    "PRIOR_SUCCESSES",
    "RATE_LIMITED_PENALTY",
    "TAG_WEIGHT",
    "TRACK_WEIGHT",
    "Candidate",
    "Choice",
    "Explanation",
    "JobView",
    "ScoreBreakdown",
    "WorkerStats",
    "WorkerView",
    "choose",
    "eligibility",
    "eligible",
    "evaluate",
    "explain",
    "is_online",
    "load_ratio",
    "penalties",
    "rank",
    "score",
    "strictest_tier",
    "tag_overlap",
    "track_record",
]

TAG_WEIGHT = 0.5
TRACK_WEIGHT = 0.3
LOAD_WEIGHT = 0.2
PRIOR_SUCCESSES = 2.0
"""α of the Beta prior on a worker's success rate."""
PRIOR_FAILURES = 2.0
"""β of the Beta prior on a worker's success rate."""
FAILURE_PENALTY = 0.05
"""Per failure or lost lease in the last hour…"""
MAX_FAILURE_PENALTY = 0.2
"""…capped, so a flaky worker sinks below healthy ones but stays usable when alone."""
RATE_LIMITED_PENALTY = 0.25
COLD_PENALTY = 0.05
COLD_WINDOW = timedelta(minutes=1)
AT_CAPACITY = "at capacity"
"""The one reason of a worker that would qualify for a job but has no room right now."""


class JobView(NamedTuple):
    """What routing needs to know about a job."""

    tags: tuple[str, ...] = ()
    capability: str | None = None
    provider: str | None = None
    urgency: str = "normal"
    risk_tier: str = "auto"
    approved: bool = False


class WorkerView(NamedTuple):
    """A worker as routing sees it at one instant."""

    name: str
    tags: tuple[str, ...] = ()
    capabilities: Mapping[str, str] = MappingProxyType({})
    """Capability name → its risk tier for this worker."""
    state: str = "active"
    presence: str | None = "active"
    last_seen: datetime | None = None
    lease_until: datetime | None = None
    """Latest lease among the jobs it runs: a live lease keeps a silent worker online."""
    provider: str | None = None
    capacity: int = 1
    in_hand: int = 0
    session_started_at: datetime | None = None
    resumed_at: datetime | None = None
    last_assigned_at: datetime | None = None
    rate_limited: bool = False
    session_grants: frozenset[str] = frozenset()


class WorkerStats(NamedTuple):
    done_30d: int = 0
    failed_30d: int = 0
    failures_1h: int = 0


class ScoreBreakdown(NamedTuple):
    tag_overlap: float
    track_record: float
    load: float
    penalties: Mapping[str, float]
    total: float


class Candidate(NamedTuple):
    worker: str
    reasons: tuple[str, ...]
    score: ScoreBreakdown
    last_assigned_at: datetime | None = None
    session_granted: bool = False

    @property
    def eligible(self) -> bool:
        return not self.reasons


class Choice(NamedTuple):
    """What :func:`explain` decides, without the candidates: ``best`` is the top-ranked
    eligible candidate (``chosen`` unless the job waits for approval of its tier)."""

    job: JobView
    chosen: str | None
    needs_approval: bool
    best: Candidate | None


@dataclass(frozen=True)
class Explanation:
    """Every candidate (eligible ones ranked first, then the rest by name) and the decision:
    ``chosen`` gets the job unless ``needs_approval`` holds it for a human first."""

    job: JobView
    candidates: tuple[Candidate, ...]
    chosen: str | None
    needs_approval: bool


def tag_overlap(job_tags: Sequence[str], worker_tags: Iterable[str]) -> float:
    if not job_tags:
        return 1.0
    wanted = set(job_tags)
    return len(wanted.intersection(worker_tags)) / len(wanted)


def track_record(done: int, failed: int) -> float:
    return (done + PRIOR_SUCCESSES) / (done + failed + PRIOR_SUCCESSES + PRIOR_FAILURES)


def load_ratio(in_hand: int, capacity: int) -> float:
    if capacity <= 0:
        return 1.0
    return min(1.0, in_hand / capacity)


_ZERO = timedelta(0)
_NO_STATS = WorkerStats()


def _recent(moment: datetime | None, now: datetime, window: timedelta) -> bool:
    return moment is not None and _ZERO <= now - moment < window


def penalties(worker: WorkerView, stats: WorkerStats, now: datetime) -> dict[str, float]:
    """The penalties that apply, by name (absent ones are not listed)."""
    applied: dict[str, float] = {}
    if stats.failures_1h:
        applied["recent_failures"] = min(MAX_FAILURE_PENALTY,
                                         FAILURE_PENALTY * stats.failures_1h)
    if worker.rate_limited:
        applied["rate_limited"] = RATE_LIMITED_PENALTY
    if _recent(worker.resumed_at, now, COLD_WINDOW) or _recent(
            worker.session_started_at, now, COLD_WINDOW):
        applied["cold"] = COLD_PENALTY
    return applied


def score(job: JobView, worker: WorkerView, stats: WorkerStats, now: datetime
          ) -> ScoreBreakdown:
    tags = tag_overlap(job.tags, worker.tags)
    track = track_record(stats.done_30d, stats.failed_30d)
    load = load_ratio(worker.in_hand, worker.capacity)
    applied = penalties(worker, stats, now)
    total = (TAG_WEIGHT * tags + TRACK_WEIGHT * track + LOAD_WEIGHT * (1.0 - load)
             - sum(applied.values()))
    return ScoreBreakdown(tag_overlap=tags, track_record=track, load=load, penalties=applied,
                          total=total)


def is_online(worker: WorkerView, now: datetime, presence_window: timedelta) -> bool:
    """A heartbeat within the window (and no sign-off since), or a live lease."""
    heard = (
        worker.presence != "offline"
        and worker.last_seen is not None
        and now - worker.last_seen <= presence_window
    )
    return heard or (worker.lease_until is not None and worker.lease_until > now)


_BARRED = ("revoked", "paused")


def eligible(job: JobView, worker: WorkerView, now: datetime, presence_window: timedelta
             ) -> bool:
    """``not eligibility(…)``, without building the reasons."""
    return (worker.state not in _BARRED and worker.in_hand < worker.capacity
            and (job.capability is None or job.capability in worker.capabilities)
            and (job.provider is None or worker.provider == job.provider)
            and is_online(worker, now, presence_window))


def eligibility(job: JobView, worker: WorkerView, now: datetime,
                presence_window: timedelta) -> list[str]:
    """Why ``worker`` may not take ``job``; empty means eligible."""
    reasons: list[str] = []
    if worker.state in _BARRED:
        reasons.append(worker.state)
    if not is_online(worker, now, presence_window):
        reasons.append("offline")
    if job.capability is not None and job.capability not in worker.capabilities:
        reasons.append(f"lacks capability {job.capability}")
    if job.provider is not None and worker.provider != job.provider:
        reasons.append(f"does not speak provider {job.provider}")
    if worker.in_hand >= worker.capacity:
        reasons.append(AT_CAPACITY)
    return reasons


def evaluate(
    job: JobView, workers: Iterable[WorkerView], stats: Mapping[str, WorkerStats],
    now: datetime, presence_window: timedelta,
) -> list[Candidate]:
    """Every worker as a candidate: its reasons and its score, eligible or not."""
    return [_candidate(job, w, stats, now, tuple(eligibility(job, w, now, presence_window)))
            for w in workers]


def _candidate(job: JobView, worker: WorkerView, stats: Mapping[str, WorkerStats],
               now: datetime, reasons: tuple[str, ...] = ()) -> Candidate:
    return Candidate(
        worker=worker.name, reasons=reasons,
        score=score(job, worker, stats.get(worker.name, _NO_STATS), now),
        last_assigned_at=worker.last_assigned_at,
        session_granted=job.capability in worker.session_grants,
    )


def _rank_key(job: JobView) -> Callable[[Candidate], tuple[bool, float, bool, float, str]]:
    def key(c: Candidate) -> tuple[bool, float, bool, float, str]:
        needs_human = job.risk_tier == "session" and not c.session_granted
        last = c.last_assigned_at
        return (needs_human, -c.score.total, last is not None,
                last.timestamp() if last else 0.0, c.worker)

    return key


def rank(job: JobView, candidates: Iterable[Candidate]) -> list[Candidate]:
    """Eligible candidates, best first: by total, ties to the least recently assigned
    (never assigned first), then by name. For a ``session``-tier job, workers whose current
    session is already approved come first, since they need no human."""
    return sorted((c for c in candidates if c.eligible), key=_rank_key(job))


def strictest_tier(capability: str | None, workers: Iterable[WorkerView]) -> str:
    """The tier of ``capability``: the strictest any (non-revoked) worker declares, so the
    policy does not depend on which of them happens to be online. ``auto`` if none does."""
    if capability is None:
        return "auto"
    tiers = [w.capabilities[capability] for w in workers
             if w.state != "revoked" and capability in w.capabilities]
    return max(tiers, key=TIER_ORDER.__getitem__, default="auto")


def explain(
    job: JobView, workers: Sequence[WorkerView], stats: Mapping[str, WorkerStats],
    now: datetime, presence_window: timedelta,
) -> Explanation:
    """The routing decision for ``job`` with every number behind it."""
    candidates = evaluate(job, workers, stats, now, presence_window)
    ranked = rank(job, candidates)
    rest = sorted((c for c in candidates if not c.eligible), key=lambda c: c.worker)
    choice = _decide(job, ranked[0] if ranked else None)
    return Explanation(job=job, candidates=(*ranked, *rest), chosen=choice.chosen,
                       needs_approval=choice.needs_approval)


def choose(
    job: JobView, workers: Iterable[WorkerView], stats: Mapping[str, WorkerStats],
    now: datetime, presence_window: timedelta,
) -> Choice:
    """The decision :func:`explain` makes for ``job``, computed from the eligible workers
    alone.

    It runs for every submission, so it computes each eligible worker's rank key in one
    pass, with :func:`eligible`, :func:`score` and :func:`rank` written out inline (the
    same arithmetic in the same order, so the same floats), and builds a
    :class:`Candidate` for the winner only."""
    wanted = set(job.tags)
    capability, provider = job.capability, job.provider
    session = job.risk_tier == "session"
    best: WorkerView | None = None
    best_key: tuple[bool, float, bool, float, str] | None = None
    for w in workers:
        if (w.state in _BARRED or w.in_hand >= w.capacity
                or (capability is not None and capability not in w.capabilities)
                or (provider is not None and w.provider != provider)):
            continue
        seen, lease = w.last_seen, w.lease_until
        if not ((w.presence != "offline" and seen is not None
                 and now - seen <= presence_window)
                or (lease is not None and lease > now)):
            continue
        s = stats.get(w.name, _NO_STATS)
        tags = len(wanted.intersection(w.tags)) / len(wanted) if wanted else 1.0
        done = s.done_30d
        track = (done + PRIOR_SUCCESSES) / (done + s.failed_30d + PRIOR_SUCCESSES
                                            + PRIOR_FAILURES)
        load = 1.0 if w.capacity <= 0 else min(1.0, w.in_hand / w.capacity)
        penalty: float = 0
        if s.failures_1h:
            penalty += min(MAX_FAILURE_PENALTY, FAILURE_PENALTY * s.failures_1h)
        if w.rate_limited:
            penalty += RATE_LIMITED_PENALTY
        resumed, started = w.resumed_at, w.session_started_at
        if (resumed is not None and _ZERO <= now - resumed < COLD_WINDOW) or (
                started is not None and _ZERO <= now - started < COLD_WINDOW):
            penalty += COLD_PENALTY
        total = (TAG_WEIGHT * tags + TRACK_WEIGHT * track + LOAD_WEIGHT * (1.0 - load)
                 - penalty)
        last = w.last_assigned_at
        key = (session and capability not in w.session_grants, -total, last is not None,
               last.timestamp() if last else 0.0, w.name)
        if best_key is None or key < best_key:
            best, best_key = w, key
    return _decide(job, None if best is None else _candidate(job, best, stats, now))


def _decide(job: JobView, best: Candidate | None) -> Choice:
    if job.risk_tier == "approve" and not job.approved:
        return Choice(job, None, True, best)
    if best is None:
        return Choice(job, None, False, None)
    held = job.risk_tier == "session" and not best.session_granted
    return Choice(job, best.worker, held, best)
