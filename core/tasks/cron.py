"""Cron maths for scheduled tasks: pure functions over ``cronsim``.

The dialect is 5-field Debian cron (minute hour day-of-month month day-of-week) with names
(JAN–DEC, SUN–SAT, any case), ranges, steps, lists, ``?`` as ``*`` and the ``@hourly`` …
``@annually`` macros. cronsim's own extensions (``L``, ``LW``, ``#``, a seconds field) are
refused so a schedule means the same thing to every cron a user might compare it with.

Times are evaluated in the task's IANA timezone with Debian-cron DST rules, which cronsim
implements: a job at a fixed wall time (no ``*`` in minute or hour) runs once on both DST
days — at the first 01:30 when clocks fall back, at the first valid instant after a skipped
02:30 when they spring forward — while wildcard jobs follow the real clock.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from core.errors import field_error

__all__ = [
    "FIELD_NAMES",
    "MACROS",
    "last_fire_between",
    "next_fire",
    "normalize",
    "validate_schedule",
    "validate_timezone",
]

MACROS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""The supported ``@`` macros and the 5-field schedules they stand for."""

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
"""The five fields, in order, as error messages name them."""

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ALLOWED_CHARS = frozenset(string.ascii_letters + string.digits + "*,-/")

# Any fixed instant works: validation only needs cronsim to parse, not to iterate.
_PARSE_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)

# DST shifts are at most two hours (Antarctica/Troll); near one, reverse and forward iteration
# may disagree about a shifted fire, so the backward answer is re-derived forwards from here.
_DST_MARGIN = timedelta(hours=3)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def value_of(self, token: str) -> int:
        """The number a token already known to be valid stands for (names count from low)."""
        upper = token.upper()
        return self.low + self.names.index(upper) if upper in self.names else int(token)


_SPECS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day-of-month", 1, 31),
    _FieldSpec("month", 1, 12, _MONTHS),
    _FieldSpec("day-of-week", 0, 7, _DAYS),
)


def _expand(expr: str) -> str:
    """Whitespace collapsed, macro expanded, ``?`` mapped — but the user's case kept."""
    text = " ".join(expr.split())
    return MACROS.get(text.lower(), text).replace("?", "*")


def normalize(expr: str) -> str:
    """The canonical spelling of a schedule: macros expanded, ``?`` → ``*``, names uppercased.

    A pure text transform; it does not validate (see :func:`validate_schedule`).
    """
    return _expand(expr).upper()


def validate_schedule(expr: str) -> str:
    """Check a schedule and return its normalized form.

    Raises VALIDATION_ERROR on path ``schedule`` naming the field at fault and why, e.g.
    ``hour: 25 is out of range 0–23`` or ``expected 5 fields (…), got 6``.
    """
    return _compile(expr)


@functools.lru_cache(maxsize=512)
def _compile(expr: str) -> str:
    problem = _explain(_expand(expr))
    if problem is not None:
        raise field_error("schedule", problem)
    normalized = normalize(expr)
    try:
        CronSim(normalized, _PARSE_REFERENCE)
    except CronSimError as exc:
        raise field_error("schedule", _explain_cronsim(normalized, exc)) from exc
    return normalized


def _explain(text: str) -> str | None:
    """Why ``text`` is not a schedule in our dialect, or None when its syntax is fine."""
    if text.startswith("@"):
        return f"unknown macro '{text}' (expected one of {', '.join(MACROS)})"
    fields = text.split()
    if len(fields) != len(_SPECS):
        return f"expected 5 fields ({' '.join(FIELD_NAMES)}), got {len(fields)}"
    for spec, field in zip(_SPECS, fields, strict=True):
        why = _explain_field(spec, field)
        if why is not None:
            return f"{spec.name}: {why}"
    return None


def _explain_field(spec: _FieldSpec, field: str) -> str | None:
    bad = next((ch for ch in field if ch not in _ALLOWED_CHARS), None)
    if bad is not None:
        return f"unexpected character '{bad}'"
    for term in field.split(","):
        why = _explain_term(spec, term) if term else "empty item in list"
        if why is not None:
            return why
    return None


def _explain_term(spec: _FieldSpec, term: str) -> str | None:
    base, has_step, step = term.partition("/")
    if has_step and not step.isdigit():
        return f"step '{step}' is not a number"
    if has_step and int(step) == 0:
        return "step must be at least 1"
    if base == "*":
        return None
    start, is_range, end = base.partition("-")
    for token in (start, end) if is_range else (start,):
        why = _explain_value(spec, token)
        if why is not None:
            return why
    if is_range and spec.value_of(start) > spec.value_of(end):
        return f"range {base} is reversed (start after end)"
    return None


def _explain_value(spec: _FieldSpec, token: str) -> str | None:
    if not token:
        return "missing value"
    if token.isdigit():
        value = int(token)
        if spec.low <= value <= spec.high:
            return None
        return f"{value} is out of range {spec.low}–{spec.high}"
    if spec.names and token.isalpha():
        if token.upper() in spec.names:
            return None
        return f"unknown name '{token}' (expected {spec.names[0]}–{spec.names[-1]})"
    return f"'{token}' is not a number"


def _explain_cronsim(normalized: str, exc: CronSimError) -> str:
    # Our own syntax check runs first, so what cronsim still refuses is the one cross-field
    # rule: a day of month that no selected month has (``0 0 30 2 *``).
    fields = normalized.split()
    if str(exc) == "Bad day-of-month":
        return f"day-of-month: {fields[2]} never occurs in the selected month(s) {fields[3]}"
    return str(exc)


def validate_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA name; VALIDATION_ERROR on path ``timezone`` if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise field_error("timezone", f"unknown IANA timezone '{name}'") from exc


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


def next_fire(after: datetime, expr: str, tz: str = "UTC") -> datetime:
    """The first fire time strictly after ``after``, as an aware UTC datetime.

    ``expr`` is evaluated in timezone ``tz`` with Debian-cron DST semantics (module doc).
    Raises VALIDATION_ERROR for a bad schedule or timezone, or a schedule that never fires.
    """
    _require_aware(after, "after")
    normalized = _compile(expr)
    zone = validate_timezone(tz)
    iterator = CronSim(normalized, after.astimezone(zone))
    try:
        fire = next(iterator)
        # cronsim walks wall-clock time for fixed-time jobs, so when ``after`` lies in the
        # repeated hour of a fall-back day it may hand back the (earlier) first pass.
        while fire <= after:
            fire = next(iterator)
    except StopIteration as exc:
        raise field_error("schedule", "never fires within 50 years") from exc
    return fire.astimezone(UTC)


def last_fire_between(
    start: datetime, end: datetime, expr: str, tz: str = "UTC"
) -> datetime | None:
    """The latest fire time ``t`` with ``start < t <= end``, or None if nothing fired.

    For a scheduler catching up after downtime: it needs the one most recent missed run,
    never the burst. Cost does not grow with the window (``* * * * *`` over ten years is a
    handful of steps): cronsim walks backwards from ``end``, and only near a DST change is
    the answer re-derived forwards so that it is one :func:`next_fire` would have produced.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    if end <= start:
        return None
    normalized = _compile(expr)
    zone = validate_timezone(tz)
    candidate = _previous_fire(end, normalized, zone)
    if candidate is None:
        return None
    probe = max(start, candidate - _settle_margin(candidate, zone) - timedelta(microseconds=1))
    last: datetime | None = None
    fire = next_fire(probe, normalized, tz)
    while fire <= end:
        last = fire
        fire = next_fire(fire, normalized, tz)
    return last


def _previous_fire(end: datetime, normalized: str, zone: ZoneInfo) -> datetime | None:
    # Reverse iteration yields times strictly before its start, so start one whole second
    # past ``end`` (microseconds dropped, as cronsim would) to include ``end`` itself.
    ceiling = end.replace(microsecond=0) + timedelta(seconds=1)
    try:
        previous = next(CronSim(normalized, ceiling.astimezone(zone), reverse=True))
    except StopIteration:
        return None
    # In UTC, so that arithmetic on it is on real time, not on the wall clock.
    return previous.astimezone(UTC)


def _settle_margin(moment: datetime, zone: ZoneInfo) -> timedelta:
    before = (moment - _DST_MARGIN).astimezone(zone).utcoffset()
    after = (moment + _DST_MARGIN).astimezone(zone).utcoffset()
    return _DST_MARGIN if before != after else timedelta(0)
