from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.tasks.cron import (
    last_fire_between,
    next_fire,
    normalize,
    validate_schedule,
    validate_timezone,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


NY = "America/New_York"
BERLIN = "Europe/Berlin"

# Reference calendar: 2026-01-01 is a Thursday. DST in 2026: New York springs forward on
# 03-08 (02:00 EST → 03:00 EDT) and falls back on 11-01 (02:00 EDT → 01:00 EST); Berlin
# springs forward on 03-29 (02:00 CET → 03:00 CEST) and falls back on 10-25 (03:00 CEST →
# 02:00 CET), so Berlin's repeated hour is 02:00–03:00, New York's is 01:00–02:00.
NEXT_FIRE_CASES = [
    # names
    ("weekday range", utc(2026, 1, 2, 10), "0 9 * * MON-FRI", "UTC", utc(2026, 1, 5, 9)),
    ("lowercase month", utc(2026, 3, 1), "0 0 1 jan *", "UTC", utc(2027, 1, 1)),
    ("mixed-case day", utc(2026, 1, 1), "0 12 * * Sun", "UTC", utc(2026, 1, 4, 12)),
    ("month name range", utc(2026, 8, 2), "0 0 1 jun-Aug *", "UTC", utc(2027, 6, 1)),
    ("day list by name", utc(2026, 1, 5, 12), "0 8 * * mon,WED,fri", "UTC", utc(2026, 1, 7, 8)),
    ("7 is sunday", utc(2026, 1, 1), "0 0 * * 7", "UTC", utc(2026, 1, 4)),
    # steps
    ("every 15 min", utc(2026, 1, 1, 10, 7), "*/15 * * * *", "UTC", utc(2026, 1, 1, 10, 15)),
    ("strictly after", utc(2026, 1, 1, 10, 15), "*/15 * * * *", "UTC", utc(2026, 1, 1, 10, 30)),
    (
        "sub-second after",
        utc(2026, 1, 1, 10, 14, 59).replace(microsecond=5),
        "*/15 * * * *",
        "UTC",
        utc(2026, 1, 1, 10, 15),
    ),
    ("range step", utc(2026, 1, 1, 10, 4), "1-10/3 * * * *", "UTC", utc(2026, 1, 1, 10, 7)),
    ("range step wraps", utc(2026, 1, 1, 10, 10), "1-10/3 * * * *", "UTC", utc(2026, 1, 1, 11, 1)),
    ("hour step", utc(2026, 1, 1, 7), "0 */6 * * *", "UTC", utc(2026, 1, 1, 12)),
    # lists and ranges
    ("list", utc(2026, 1, 1, 12), "0 8,12,18 * * *", "UTC", utc(2026, 1, 1, 18)),
    ("list wraps a day", utc(2026, 1, 1, 18, 30), "0 8,12,18 * * *", "UTC", utc(2026, 1, 2, 8)),
    ("range", utc(2026, 1, 1, 17, 30), "0 9-17 * * *", "UTC", utc(2026, 1, 2, 9)),
    ("list of ranges", utc(2026, 1, 1, 11, 30), "0,30 9-11,14 * * *", "UTC", utc(2026, 1, 1, 14)),
    # ? means *
    ("? in day-of-month", utc(2026, 1, 1), "0 0 ? * MON", "UTC", utc(2026, 1, 5)),
    ("? in day-of-week", utc(2026, 1, 15, 12), "0 12 15 * ?", "UTC", utc(2026, 2, 15, 12)),
    # macros
    ("@hourly", utc(2026, 1, 1, 10, 7), "@hourly", "UTC", utc(2026, 1, 1, 11)),
    ("@daily", utc(2026, 1, 1, 10), "@daily", "UTC", utc(2026, 1, 2)),
    ("@midnight", utc(2026, 1, 1, 10), "@midnight", "UTC", utc(2026, 1, 2)),
    ("@weekly is sunday", utc(2026, 1, 1), "@weekly", "UTC", utc(2026, 1, 4)),
    ("@monthly", utc(2026, 1, 15), "@monthly", "UTC", utc(2026, 2, 1)),
    ("@yearly", utc(2026, 1, 1), "@yearly", "UTC", utc(2027, 1, 1)),
    ("@annually", utc(2026, 6, 1), "@annually", "UTC", utc(2027, 1, 1)),
    ("macro any case", utc(2026, 1, 1, 10), "@DAILY", "UTC", utc(2026, 1, 2)),
    # month ends
    ("31st skips february", utc(2026, 1, 31), "0 0 31 * *", "UTC", utc(2026, 3, 31)),
    ("31st skips april", utc(2026, 3, 31), "0 0 31 * *", "UTC", utc(2026, 5, 31)),
    ("31st july to august", utc(2026, 7, 31), "0 0 31 * *", "UTC", utc(2026, 8, 31)),
    ("30th skips february", utc(2026, 1, 30), "0 0 30 * *", "UTC", utc(2026, 3, 30)),
    ("feb 29 waits for leap year", utc(2026, 1, 1), "0 0 29 2 *", "UTC", utc(2028, 2, 29)),
    ("feb 29 next leap year", utc(2028, 2, 29), "0 0 29 2 *", "UTC", utc(2032, 2, 29)),
    ("2100 is not leap", utc(2096, 2, 29), "0 0 29 2 *", "UTC", utc(2104, 2, 29)),
    # day-of-month and day-of-week: OR when both restricted, AND when either starts with *
    ("dom or dow: friday first", utc(2026, 1, 1), "0 0 13 * FRI", "UTC", utc(2026, 1, 2)),
    ("dom or dow: the 13th", utc(2026, 1, 10), "0 0 13 * FRI", "UTC", utc(2026, 1, 13)),
    ("star dom ands with dow", utc(2026, 1, 1), "0 0 */2 * FRI", "UTC", utc(2026, 1, 9)),
    # timezones
    ("tokyo morning", utc(2026, 1, 1), "0 9 * * *", "Asia/Tokyo", utc(2026, 1, 2)),
    ("new york morning", utc(2026, 1, 1), "0 9 * * *", NY, utc(2026, 1, 1, 14)),
    # DST, New York: 01:30 is repeated on 11-01, 02:30 is skipped on 03-08
    ("ny fall-back first 01:30", utc(2026, 11, 1), "30 1 * * *", NY, utc(2026, 11, 1, 5, 30)),
    (
        "ny fall-back no second 01:30",
        utc(2026, 11, 1, 5, 30),
        "30 1 * * *",
        NY,
        utc(2026, 11, 2, 6, 30),
    ),
    ("ny inside repeated hour", utc(2026, 11, 1, 6, 10), "30 1 * * *", NY, utc(2026, 11, 2, 6, 30)),
    ("ny hourly job sees both", utc(2026, 11, 1, 5, 30), "30 * * * *", NY, utc(2026, 11, 1, 6, 30)),
    ("ny fall-back 02:30 is plain", utc(2026, 11, 1), "30 2 * * *", NY, utc(2026, 11, 1, 7, 30)),
    ("ny spring 02:30 runs at 03:00", utc(2026, 3, 8), "30 2 * * *", NY, utc(2026, 3, 8, 7)),
    ("ny spring then next day", utc(2026, 3, 8, 7), "30 2 * * *", NY, utc(2026, 3, 9, 6, 30)),
    ("ny spring 01:30 is plain", utc(2026, 3, 8), "30 1 * * *", NY, utc(2026, 3, 8, 6, 30)),
    # DST, Berlin: 02:30 is repeated on 10-25 and skipped on 03-29
    (
        "berlin fall-back first 02:30",
        utc(2026, 10, 24, 12),
        "30 2 * * *",
        BERLIN,
        utc(2026, 10, 25, 0, 30),
    ),
    (
        "berlin no second 02:30",
        utc(2026, 10, 25, 0, 30),
        "30 2 * * *",
        BERLIN,
        utc(2026, 10, 26, 1, 30),
    ),
    (
        "berlin fall-back 01:30",
        utc(2026, 10, 24, 12),
        "30 1 * * *",
        BERLIN,
        utc(2026, 10, 24, 23, 30),
    ),
    (
        "berlin spring 02:30 at 03:00",
        utc(2026, 3, 28, 12),
        "30 2 * * *",
        BERLIN,
        utc(2026, 3, 29, 1),
    ),
    (
        "berlin spring then next day",
        utc(2026, 3, 29, 1),
        "30 2 * * *",
        BERLIN,
        utc(2026, 3, 30, 0, 30),
    ),
    ("berlin spring 01:30", utc(2026, 3, 28, 12), "30 1 * * *", BERLIN, utc(2026, 3, 29, 0, 30)),
]


@pytest.mark.parametrize(
    ("after", "expr", "tz", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in NEXT_FIRE_CASES],
)
def test_next_fire(after: datetime, expr: str, tz: str, expected: datetime) -> None:
    fire = next_fire(after, expr, tz)
    assert fire == expected
    assert fire.tzinfo is UTC


@pytest.mark.parametrize(
    ("tz", "expr", "day"),
    [
        (NY, "30 1 * * *", date(2026, 11, 1)),
        (NY, "30 2 * * *", date(2026, 3, 8)),
        (BERLIN, "30 2 * * *", date(2026, 10, 25)),
        (BERLIN, "30 2 * * *", date(2026, 3, 29)),
        (NY, "30 1 * * *", date(2026, 3, 8)),
        (BERLIN, "30 1 * * *", date(2026, 10, 25)),
    ],
)
def test_fixed_time_job_runs_exactly_once_on_dst_days(tz: str, expr: str, day: date) -> None:
    zone = ZoneInfo(tz)
    fire = datetime.combine(day - timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    local_days = []
    for _ in range(4):
        fire = next_fire(fire, expr, tz)
        local_days.append(fire.astimezone(zone).date())
    assert local_days.count(day) == 1


def test_next_fire_accepts_any_offset_and_answers_in_utc() -> None:
    after = datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert next_fire(after, "0 * * * *") == utc(2026, 1, 1, 1)


def test_next_fire_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(datetime(2026, 1, 1), "* * * * *")


@pytest.mark.parametrize(
    ("expr", "normalized"),
    [
        ("  0  9 * *   mon-fri ", "0 9 * * MON-FRI"),
        ("0 0 ? * sun", "0 0 * * SUN"),
        ("0 12 1 jan,Jul ?", "0 12 1 JAN,JUL *"),
        ("@hourly", "0 * * * *"),
        ("@Daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_normalize(expr: str, normalized: str) -> None:
    assert normalize(expr) == normalized
    assert validate_schedule(expr) == normalized


FIELDS = "expected 5 fields (minute hour day-of-month month day-of-week)"


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("", f"{FIELDS}, got 0"),
        ("* * * *", f"{FIELDS}, got 4"),
        ("0 * * * * *", f"{FIELDS}, got 6"),
        ("60 * * * *", "minute: 60 is out of range 0–59"),
        ("0 25 * * *", "hour: 25 is out of range 0–23"),
        ("0 0 0 * *", "day-of-month: 0 is out of range 1–31"),
        ("0 0 32 * *", "day-of-month: 32 is out of range 1–31"),
        ("0 0 * 13 *", "month: 13 is out of range 1–12"),
        ("0 0 * * 8", "day-of-week: 8 is out of range 0–7"),
        ("0 0 * foo *", "month: unknown name 'foo' (expected JAN–DEC)"),
        ("0 0 * * Funday", "day-of-week: unknown name 'Funday' (expected SUN–SAT)"),
        ("0 0 * * JAN", "day-of-week: unknown name 'JAN' (expected SUN–SAT)"),
        ("0 MON * * *", "hour: 'MON' is not a number"),
        ("*/0 * * * *", "minute: step must be at least 1"),
        ("*/x * * * *", "minute: step 'x' is not a number"),
        ("10-5 * * * *", "minute: range 10-5 is reversed (start after end)"),
        ("0 0 * * FRI-MON", "day-of-week: range FRI-MON is reversed (start after end)"),
        ("0 0-30 * * *", "hour: 30 is out of range 0–23"),
        ("1,,2 * * * *", "minute: empty item in list"),
        ("0 1- * * *", "hour: missing value"),
        ("0 0 L * *", "day-of-month: 'L' is not a number"),
        ("0 0 * * MON#2", "day-of-week: unexpected character '#'"),
        ("0 0 30 2 *", "day-of-month: 30 never occurs in the selected month(s) 2"),
        ("0 0 31 apr,jun *", "day-of-month: 31 never occurs in the selected month(s) APR,JUN"),
        (
            "@reboot",
            "unknown macro '@reboot' (expected one of @hourly, @daily, @midnight, "
            "@weekly, @monthly, @yearly, @annually)",
        ),
    ],
)
def test_bad_schedule_names_the_field_and_why(expr: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_schedule(expr)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details == [{"path": "schedule", "problem": problem}]


def test_next_fire_validates_the_schedule() -> None:
    with pytest.raises(ValidationFailed, match="hour: 24 is out of range"):
        next_fire(utc(2026, 1, 1), "0 24 * * *")


def test_validate_timezone_returns_the_zone() -> None:
    assert validate_timezone(BERLIN) == ZoneInfo(BERLIN)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "utc "])
def test_unknown_timezone_is_a_validation_error(name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_timezone(name)
    assert caught.value.details == [
        {"path": "timezone", "problem": f"unknown IANA timezone '{name}'"}
    ]


def test_next_fire_validates_the_timezone() -> None:
    with pytest.raises(ValidationFailed, match="timezone: unknown IANA timezone"):
        next_fire(utc(2026, 1, 1), "* * * * *", "Nowhere/Special")


@pytest.mark.parametrize(
    ("start", "end", "expr", "tz", "expected"),
    [
        pytest.param(
            utc(2016, 1, 1),
            utc(2026, 5, 5, 10, 7, 33),
            "* * * * *",
            "UTC",
            utc(2026, 5, 5, 10, 7),
            id="every-minute-over-ten-years",
        ),
        pytest.param(
            utc(2026, 1, 1, 9, 30),
            utc(2026, 1, 1, 11),
            "0 * * * *",
            "UTC",
            utc(2026, 1, 1, 11),
            id="end-is-inclusive",
        ),
        pytest.param(
            utc(2026, 1, 1, 11),
            utc(2026, 1, 1, 11, 30),
            "0 * * * *",
            "UTC",
            None,
            id="start-is-exclusive",
        ),
        pytest.param(
            utc(2026, 1, 1, 12), utc(2026, 1, 1, 11), "* * * * *", "UTC", None, id="empty-window"
        ),
        pytest.param(
            utc(2020, 6, 1),
            utc(2026, 6, 1),
            "@yearly",
            "UTC",
            utc(2026, 1, 1),
            id="yearly-over-years",
        ),
        pytest.param(
            utc(2026, 2, 1), utc(2026, 12, 31), "@yearly", "UTC", None, id="nothing-in-window"
        ),
        pytest.param(
            utc(2026, 11, 1, 5),
            utc(2026, 11, 1, 7),
            "30 1 * * *",
            NY,
            utc(2026, 11, 1, 5, 30),
            id="ny-fall-back-first-pass",
        ),
        pytest.param(
            utc(2026, 3, 8, 5),
            utc(2026, 3, 8, 8),
            "30 2 * * *",
            NY,
            utc(2026, 3, 8, 7),
            id="ny-spring-forward-shifted",
        ),
        pytest.param(
            utc(2026, 10, 24, 12),
            utc(2026, 10, 25, 3),
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 25, 0, 30),
            id="berlin-fall-back-first-pass",
        ),
    ],
)
def test_last_fire_between(
    start: datetime, end: datetime, expr: str, tz: str, expected: datetime | None
) -> None:
    assert last_fire_between(start, end, expr, tz) == expected


def _brute_last(start: datetime, end: datetime, expr: str, tz: str) -> datetime | None:
    last = None
    fire = next_fire(start, expr, tz)
    while fire <= end:
        last = fire
        fire = next_fire(fire, expr, tz)
    return last


# (timezone, a DST change in it, as a UTC instant); Lord Howe shifts by 30 minutes.
DST_CHANGES = [
    (NY, utc(2026, 3, 8, 7)),
    (NY, utc(2026, 11, 1, 6)),
    (BERLIN, utc(2026, 3, 29, 1)),
    (BERLIN, utc(2026, 10, 25, 1)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),
    ("UTC", utc(2026, 3, 8, 7)),
]


@settings(max_examples=300, deadline=None, database=None)
@given(
    change=st.sampled_from(DST_CHANGES),
    offset_s=st.integers(-30 * 3600, 6 * 3600),
    window_s=st.integers(0, 36 * 3600),
    expr=st.sampled_from(
        [
            "30 1 * * *",
            "30 2 * * *",
            "0,30 1-3 * * *",
            "*/20 * * * *",
            "0 * * * *",
            "0-59/7 2 * * *",
            "45 */2 * * *",
            "15 2 * * SUN",
            "0 0 * * *",
        ]
    ),
)
def test_last_fire_between_agrees_with_walking_forward(
    change: tuple[str, datetime], offset_s: int, window_s: int, expr: str
) -> None:
    tz, moment = change
    start = moment + timedelta(seconds=offset_s)
    end = start + timedelta(seconds=window_s)
    assert last_fire_between(start, end, expr, tz) == _brute_last(start, end, expr, tz)
