"""The router's pure functions, table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.queue.router import (
    COLD_PENALTY,
    FAILURE_PENALTY,
    MAX_FAILURE_PENALTY,
    RATE_LIMITED_PENALTY,
    Candidate,
    JobView,
    ScoreBreakdown,
    WorkerStats,
    WorkerView,
    choose,
    eligibility,
    eligible,
    explain,
    is_online,
    load_ratio,
    penalties,
    rank,
    score,
    strictest_tier,
    tag_overlap,
    track_record,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=30)
LONG_AGO = NOW - timedelta(hours=2)


def worker(name: str = "w", **overrides: object) -> WorkerView:
    """An online, warm, idle worker with the ``code`` capability, unless overridden."""
    base: dict[str, object] = {
        "name": name, "capabilities": {"code": "auto"}, "last_seen": NOW,
        "session_started_at": LONG_AGO,
    }
    base.update(overrides)
    return WorkerView(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("job_tags", "worker_tags", "expected"), [
    ((), (), 1.0),
    ((), ("code",), 1.0),
    (("code",), (), 0.0),
    (("code",), ("code",), 1.0),
    (("code", "review"), ("code",), 0.5),
    (("code", "review", "py"), ("review", "py", "go"), 2 / 3),
    (("code",), ("review",), 0.0),
])
def test_tag_overlap_is_the_share_of_job_tags_the_worker_has(
    job_tags: tuple[str, ...], worker_tags: tuple[str, ...], expected: float,
) -> None:
    assert tag_overlap(job_tags, worker_tags) == pytest.approx(expected)


@pytest.mark.parametrize(("done", "failed", "expected"), [
    (0, 0, 0.5),
    (1, 0, 3 / 5),
    (0, 1, 2 / 5),
    (8, 0, 10 / 12),
    (0, 8, 2 / 12),
    (98, 2, 100 / 104),
])
def test_track_record_starts_new_workers_at_the_prior_mean(
    done: int, failed: int, expected: float,
) -> None:
    assert track_record(done, failed) == pytest.approx(expected)


@pytest.mark.parametrize(("in_hand", "capacity", "expected"), [
    (0, 1, 0.0), (1, 2, 0.5), (2, 2, 1.0), (5, 2, 1.0), (0, 0, 1.0),
])
def test_load_is_in_hand_over_capacity_capped_at_one(
    in_hand: int, capacity: int, expected: float,
) -> None:
    assert load_ratio(in_hand, capacity) == expected


@pytest.mark.parametrize(("view", "stats", "expected"), [
    (worker(), WorkerStats(), {}),
    (worker(), WorkerStats(failures_1h=1), {"recent_failures": FAILURE_PENALTY}),
    (worker(), WorkerStats(failures_1h=2), {"recent_failures": 2 * FAILURE_PENALTY}),
    (worker(), WorkerStats(failures_1h=50), {"recent_failures": MAX_FAILURE_PENALTY}),
    (worker(rate_limited=True), WorkerStats(), {"rate_limited": RATE_LIMITED_PENALTY}),
    (worker(resumed_at=NOW - timedelta(seconds=10)), WorkerStats(), {"cold": COLD_PENALTY}),
    (worker(session_started_at=NOW - timedelta(seconds=59)), WorkerStats(),
     {"cold": COLD_PENALTY}),
    (worker(session_started_at=NOW - timedelta(seconds=61)), WorkerStats(), {}),
    (worker(resumed_at=NOW - timedelta(minutes=5)), WorkerStats(), {}),
])
def test_each_penalty_applies_on_its_own_condition(
    view: WorkerView, stats: WorkerStats, expected: dict[str, float],
) -> None:
    assert penalties(view, stats, NOW) == pytest.approx(expected)


def test_score_combines_the_components_with_their_weights() -> None:
    view = worker(tags=("code",), in_hand=1, capacity=4, rate_limited=True)
    stats = WorkerStats(done_30d=6, failed_30d=2, failures_1h=1)
    result = score(JobView(tags=("code", "review")), view, stats, NOW)
    expected = (0.5 * 0.5 + 0.3 * (8 / 12) + 0.2 * (1 - 0.25)
                - FAILURE_PENALTY - RATE_LIMITED_PENALTY)
    assert result == ScoreBreakdown(
        tag_overlap=0.5, track_record=pytest.approx(8 / 12), load=0.25,
        penalties={"recent_failures": FAILURE_PENALTY, "rate_limited": RATE_LIMITED_PENALTY},
        total=pytest.approx(expected),
    )


def test_a_new_idle_worker_on_an_untagged_job_scores_the_prior() -> None:
    result = score(JobView(), worker(), WorkerStats(), NOW)
    assert result.total == pytest.approx(0.5 + 0.3 * 0.5 + 0.2)


@pytest.mark.parametrize(("job", "view", "reasons"), [
    (JobView(capability="code"), worker(), []),
    (JobView(), worker(last_seen=None), ["offline"]),
    (JobView(), worker(last_seen=NOW - timedelta(seconds=31)), ["offline"]),
    (JobView(), worker(presence="offline"), ["offline"]),
    (JobView(), worker(state="paused"), ["paused"]),
    (JobView(), worker(state="revoked"), ["revoked"]),
    (JobView(capability="deploy"), worker(), ["lacks capability deploy"]),
    (JobView(provider="ollama"), worker(provider="claude"), ["does not speak provider ollama"]),
    (JobView(provider="ollama"), worker(provider=None), ["does not speak provider ollama"]),
    (JobView(provider="ollama"), worker(provider="ollama"), []),
    (JobView(), worker(in_hand=2, capacity=2), ["at capacity"]),
    (JobView(), worker(capacity=0), ["at capacity"]),
    (JobView(capability="deploy"), worker(state="paused", last_seen=None, in_hand=1),
     ["paused", "offline", "lacks capability deploy", "at capacity"]),
])
def test_eligibility_lists_every_reason_a_worker_cannot_take_the_job(
    job: JobView, view: WorkerView, reasons: list[str],
) -> None:
    assert eligibility(job, view, NOW, WINDOW) == reasons


@pytest.mark.parametrize(("view", "online"), [
    (worker(), True),
    (worker(last_seen=NOW - WINDOW), True),
    (worker(last_seen=NOW - WINDOW - timedelta(milliseconds=1)), False),
    (worker(last_seen=LONG_AGO, lease_until=NOW + timedelta(seconds=1)), True),
    (worker(last_seen=LONG_AGO, lease_until=NOW), False),
    (worker(presence="offline", lease_until=NOW + timedelta(minutes=5)), True),
])
def test_online_means_a_recent_heartbeat_or_a_live_lease(view: WorkerView, online: bool
                                                         ) -> None:
    assert is_online(view, NOW, WINDOW) is online


def _candidate(name: str, total: float, last: datetime | None = None,
               granted: bool = False, reasons: tuple[str, ...] = ()) -> Candidate:
    breakdown = ScoreBreakdown(tag_overlap=1, track_record=0.5, load=0, penalties={},
                               total=total)
    return Candidate(worker=name, reasons=reasons, score=breakdown, last_assigned_at=last,
                     session_granted=granted)


@pytest.mark.parametrize(("job", "candidates", "order"), [
    (JobView(), [_candidate("a", 0.5), _candidate("b", 0.7)], ["b", "a"]),
    (JobView(), [_candidate("a", 0.7, NOW), _candidate("b", 0.7, LONG_AGO)], ["b", "a"]),
    (JobView(), [_candidate("a", 0.7, NOW), _candidate("b", 0.7, None)], ["b", "a"]),
    (JobView(), [_candidate("b", 0.7), _candidate("a", 0.7)], ["a", "b"]),
    (JobView(), [_candidate("a", 0.9, reasons=("offline",)), _candidate("b", 0.1)], ["b"]),
    (JobView(risk_tier="session"),
     [_candidate("a", 0.9), _candidate("b", 0.2, granted=True)], ["b", "a"]),
    (JobView(risk_tier="auto"),
     [_candidate("a", 0.9), _candidate("b", 0.2, granted=True)], ["a", "b"]),
])
def test_rank_orders_eligible_candidates_by_total_then_least_recently_assigned(
    job: JobView, candidates: list[Candidate], order: list[str],
) -> None:
    assert [c.worker for c in rank(job, candidates)] == order


def test_explain_ranks_eligible_first_and_lists_the_rest_with_reasons() -> None:
    workers = [
        worker("idle", tags=("code",)),
        worker("busy", tags=("code",), in_hand=1, capacity=2),
        worker("gone", tags=("code",), last_seen=None),
        worker("full", in_hand=1),
    ]
    exp = explain(JobView(tags=("code",)), workers, {}, NOW, WINDOW)
    assert [c.worker for c in exp.candidates] == ["idle", "busy", "full", "gone"]
    assert [c.reasons for c in exp.candidates] == [(), (), ("at capacity",), ("offline",)]
    assert exp.chosen == "idle"
    assert not exp.needs_approval


@pytest.mark.parametrize(("job", "chosen", "held"), [
    (JobView(capability="code", risk_tier="approve"), None, True),
    (JobView(capability="code", risk_tier="approve", approved=True), "a", False),
    (JobView(capability="code", risk_tier="session"), "a", True),
    (JobView(capability="deploy"), None, False),
])
def test_explain_holds_jobs_that_need_a_human(job: JobView, chosen: str | None, held: bool
                                             ) -> None:
    exp = explain(job, [worker("a")], {}, NOW, WINDOW)
    assert (exp.chosen, exp.needs_approval) == (chosen, held)


def test_explain_prefers_a_worker_whose_session_is_already_approved() -> None:
    workers = [worker("fresh", tags=("code",)),
               worker("approved", session_grants=frozenset({"code"}))]
    exp = explain(JobView(tags=("code",), capability="code", risk_tier="session"),
                  workers, {}, NOW, WINDOW)
    assert (exp.chosen, exp.needs_approval) == ("approved", False)


@pytest.mark.parametrize(("capability", "tiers", "expected"), [
    (None, ["approve"], "auto"),
    ("code", [], "auto"),
    ("code", ["auto", "audit"], "audit"),
    ("code", ["session", "audit"], "session"),
    ("code", ["auto", "approve", "session"], "approve"),
])
def test_a_capability_takes_the_strictest_tier_any_worker_declares(
    capability: str | None, tiers: list[str], expected: str,
) -> None:
    workers = [worker(f"w{i}", capabilities={"code": t}) for i, t in enumerate(tiers)]
    assert strictest_tier(capability, workers) == expected


def test_revoked_workers_do_not_set_the_tier() -> None:
    workers = [worker("a", capabilities={"code": "approve"}, state="revoked")]
    assert strictest_tier("code", workers) == "auto"


_MOMENTS = st.sampled_from([None, LONG_AGO, NOW - timedelta(seconds=20),
                            NOW - timedelta(seconds=40), NOW + timedelta(minutes=5)])
_TIERS = st.sampled_from(["auto", "audit", "session", "approve"])
_workers = st.builds(
    WorkerView,
    name=st.sampled_from(["a", "b", "c", "d", "e"]),
    tags=st.lists(st.sampled_from(["code", "docs", "ops"]), max_size=2).map(tuple),
    capabilities=st.dictionaries(st.sampled_from(["code", "ops"]), _TIERS, max_size=2),
    state=st.sampled_from(["active", "active", "paused", "revoked"]),
    presence=st.sampled_from(["active", "idle", "offline", None]),
    last_seen=_MOMENTS, lease_until=_MOMENTS,
    provider=st.sampled_from([None, "claude"]),
    capacity=st.integers(0, 3), in_hand=st.integers(0, 3),
    session_started_at=_MOMENTS, resumed_at=_MOMENTS, last_assigned_at=_MOMENTS,
    rate_limited=st.booleans(),
    session_grants=st.frozensets(st.sampled_from(["code", "ops"]), max_size=2),
)
_jobs = st.builds(
    JobView,
    tags=st.lists(st.sampled_from(["code", "docs", "ops"]), max_size=2).map(tuple),
    capability=st.sampled_from([None, "code", "ops"]),
    provider=st.sampled_from([None, "claude"]), risk_tier=_TIERS, approved=st.booleans(),
)
_stats = st.dictionaries(st.sampled_from(["a", "b", "c"]),
                         st.builds(WorkerStats, st.integers(0, 9), st.integers(0, 9),
                                   st.integers(0, 5)))


@given(_jobs, st.lists(_workers, max_size=5, unique_by=lambda w: w.name), _stats)
def test_choose_decides_exactly_what_explain_decides(
    job: JobView, workers: list[WorkerView], stats: dict[str, WorkerStats],
) -> None:
    exp = explain(job, workers, stats, NOW, WINDOW)
    choice = choose(job, workers, stats, NOW, WINDOW)
    assert (choice.chosen, choice.needs_approval) == (exp.chosen, exp.needs_approval)
    ranked = [c for c in exp.candidates if c.eligible]
    assert choice.best == (ranked[0] if ranked else None)
    for w in workers:
        assert eligible(job, w, NOW, WINDOW) == (not eligibility(job, w, NOW, WINDOW))
