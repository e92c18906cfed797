"""Tests for sim.clock: simulated seconds <-> Sydney time (with DST) and AU business days."""

from __future__ import annotations

import calendar
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pytest

from sim.clock import SYDNEY, BusinessCalendar, VirtualClock

STATES = ("ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA")


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) given weekday (Mon=0) of a month, computed with the stdlib calendar."""
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month]
    return [d for d in days if d.weekday() == weekday][n - 1]


# ---------------------------------------------------------------- VirtualClock


def test_sydney_zone() -> None:
    """SYDNEY is the Australia/Sydney IANA zone."""
    assert SYDNEY.key == "Australia/Sydney"


def test_origin_is_local_midnight_of_start() -> None:
    """t=0 is 00:00 Sydney time on the start date, as an aware datetime (AEST in July)."""
    clock = VirtualClock(date(2025, 7, 1))
    moment = clock.datetime_at(0)
    assert moment == datetime(2025, 7, 1, tzinfo=SYDNEY)
    assert moment.tzinfo is SYDNEY
    assert moment.utcoffset() == timedelta(hours=10)
    assert clock.start == date(2025, 7, 1)
    assert clock.tz is SYDNEY


def test_start_must_be_a_date_not_datetime() -> None:
    """A datetime start is refused: the origin is defined as a local midnight."""
    with pytest.raises(TypeError, match="date"):
        VirtualClock(datetime(2025, 7, 1, 9, tzinfo=SYDNEY))


@pytest.mark.parametrize("year", range(2024, 2031))
def test_dst_day_lengths(year: int) -> None:
    """Sydney's first Sunday of October is 23 h, first Sunday of April 25 h, others 24 h."""
    clock = VirtualClock(date(2024, 1, 1))
    spring_forward = nth_weekday(year, 10, 6, 1)
    fall_back = nth_weekday(year, 4, 6, 1)
    assert clock.day_length(spring_forward) == 23 * 3600
    assert clock.day_length(fall_back) == 25 * 3600
    assert clock.day_length(spring_forward - timedelta(days=1)) == 24 * 3600
    assert clock.day_length(fall_back + timedelta(days=1)) == 24 * 3600
    assert clock.day_length(date(year, 7, 15)) == 24 * 3600


def test_day_start_accumulates_dst() -> None:
    """Midnights are not 86400 s apart across DST: a year from July has 365 days of net 24 h."""
    clock = VirtualClock(date(2025, 7, 1))
    assert clock.day_start(date(2025, 7, 1)) == 0.0
    assert clock.day_start(date(2025, 10, 6)) == 97 * 86400 - 3600  # after spring forward
    assert clock.day_start(date(2026, 7, 1)) == 365 * 86400  # back on standard time
    assert clock.day_start(date(2025, 6, 30)) == -86400.0


def test_nine_am_on_spring_forward_day() -> None:
    """09:00 local on the 23-hour day is only 8 h after that day's midnight."""
    clock = VirtualClock(date(2025, 7, 1))
    day = date(2025, 10, 5)
    nine = clock.seconds_at(datetime(2025, 10, 5, 9, tzinfo=SYDNEY))
    assert nine - clock.day_start(day) == 8 * 3600
    assert clock.datetime_at(nine).hour == 9
    assert clock.datetime_at(nine).utcoffset() == timedelta(hours=11)


def test_seconds_at_accepts_any_aware_zone_and_dates() -> None:
    """An aware UTC datetime and a date (local midnight) both map to the right second."""
    clock = VirtualClock(date(2025, 7, 1))
    assert clock.seconds_at(datetime(2025, 6, 30, 14, tzinfo=UTC)) == 0.0
    assert clock.seconds_at(datetime(2025, 7, 1, 0, 0, 1, tzinfo=UTC)) == 10 * 3600 + 1
    assert clock.seconds_at(date(2025, 7, 2)) == 86400.0


def test_naive_datetime_refused() -> None:
    """A naive datetime has no instant, so seconds_at refuses it."""
    clock = VirtualClock(date(2025, 7, 1))
    with pytest.raises(ValueError, match="naive"):
        clock.seconds_at(datetime(2025, 7, 1, 9))  # noqa: DTZ001 - the point of the test


def test_round_trip_random_seconds() -> None:
    """seconds_at(datetime_at(t)) == t (to the microsecond) for many t across DST changes."""
    clock = VirtualClock(date(2025, 1, 1))
    rng = np.random.default_rng(20250701)
    for t in rng.uniform(-86400 * 30, 86400 * 800, size=3000):
        moment = clock.datetime_at(t)
        assert moment.tzinfo is SYDNEY
        assert clock.seconds_at(moment) == pytest.approx(t, abs=1e-6)
        assert clock.date_at(t) == moment.date()


def test_round_trip_through_repeated_hour() -> None:
    """Each second of the repeated 02:00-03:00 hour on fall-back day maps back to itself."""
    clock = VirtualClock(date(2026, 4, 1))
    day = date(2026, 4, 5)
    start = clock.day_start(day)
    local_hours = []
    for t in np.arange(start + 1.5 * 3600, start + 4.5 * 3600, 60.0):
        moment = clock.datetime_at(t)
        assert clock.seconds_at(moment) == t
        local_hours.append(moment.hour)
    assert local_hours.count(2) == 120  # the 02:xx hour happens twice


def test_date_at_changes_exactly_at_midnight() -> None:
    """date_at flips at local midnight, including right after the 25-hour day."""
    clock = VirtualClock(date(2026, 4, 1))
    for day in (date(2026, 4, 5), date(2026, 4, 6), date(2026, 10, 4), date(2026, 10, 5)):
        start = clock.day_start(day)
        assert clock.date_at(start) == day
        assert clock.date_at(start - 1e-3) == day - timedelta(days=1)


def test_iso_at_known_examples() -> None:
    """iso_at gives whole seconds and the right offset in winter and summer."""
    clock = VirtualClock(date(2025, 7, 1))
    assert clock.iso_at(9 * 3600 + 30 * 60 + 5) == "2025-07-01T09:30:05+10:00"
    assert clock.iso_at(9 * 3600 + 30 * 60 + 5.999) == "2025-07-01T09:30:05+10:00"
    new_year = clock.seconds_at(date(2026, 1, 1))
    assert clock.iso_at(new_year) == "2026-01-01T00:00:00+11:00"
    assert clock.iso_at(-1) == "2025-06-30T23:59:59+10:00"


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Australia/Sydney", date(2025, 1, 1)),
        ("Australia/Lord_Howe", date(2025, 1, 1)),
        ("Australia/Adelaide", date(2025, 1, 1)),
        ("America/St_Johns", date(2010, 1, 1)),
    ],
)
def test_iso_at_agrees_with_isoformat(zone: str, start: date) -> None:
    """iso_at(t) equals datetime.isoformat of the whole second t falls in, for many t.

    Lord Howe shifts by 30 minutes for DST, Adelaide is on a half-hour offset,
    and St John's switched DST at 00:01 local until 2011 (an offset change in
    the middle of an hour that starts on a whole local hour): each exercises a
    way the per-hour shortcut could go wrong.
    """
    clock = VirtualClock(start, ZoneInfo(zone))
    rng = np.random.default_rng(7)
    samples = np.concatenate(
        [
            rng.uniform(-86400 * 10, 86400 * 900, size=6000),
            rng.integers(-86400 * 10, 86400 * 900, size=2000).astype(float),
        ]
    )
    for t in samples:
        expected = clock.datetime_at(math.floor(t)).isoformat(timespec="seconds")
        assert clock.iso_at(t) == expected
        assert clock.iso_at(t) == expected  # second call served from the cache
    # Every DST change in the span, every 59 s through the small hours.
    dst_days = [
        d for d in (start + timedelta(days=i) for i in range(900)) if clock.day_length(d) != 86400
    ]
    assert len(dst_days) >= 4
    for day in dst_days:
        base = int(clock.day_start(day))
        for t in range(base, base + 5 * 3600, 59):
            assert clock.iso_at(t) == clock.datetime_at(t).isoformat()


def test_iso_at_stays_right_when_its_cache_is_dropped() -> None:
    """Sweeping more hours than the per-hour cache keeps (twice) never changes an answer."""
    clock = VirtualClock(date(2025, 1, 1))
    for _ in range(2):
        for t in range(0, 20_000 * 3600, 3599):
            assert clock.iso_at(t) == clock.datetime_at(t).isoformat()


# ----------------------------------------------------------- BusinessCalendar


@pytest.mark.parametrize(
    ("state", "day", "name_part"),
    [
        ("NSW", date(2025, 8, 4), "Bank Holiday"),  # first Monday of August
        ("NSW", date(2026, 8, 3), "Bank Holiday"),
        ("ACT", date(2025, 3, 10), "Canberra Day"),
        ("ACT", date(2025, 6, 2), "Reconciliation Day"),
        ("VIC", date(2025, 11, 4), "Melbourne Cup"),
        ("VIC", date(2026, 11, 3), "Melbourne Cup"),
        ("VIC", date(2025, 9, 26), "AFL Grand Final"),
        ("WA", date(2025, 6, 2), "Western Australia Day"),
        ("WA", date(2026, 6, 1), "Western Australia Day"),
        ("QLD", date(2025, 8, 13), "Royal Queensland Show"),  # EKKA Wednesday
        ("QLD", date(2026, 8, 12), "Royal Queensland Show"),
        ("QLD", date(2025, 10, 6), "King's Birthday"),
        ("SA", date(2025, 3, 10), "Adelaide Cup"),
        ("TAS", date(2025, 3, 10), "Eight Hours Day"),
        ("NT", date(2025, 8, 4), "Picnic Day"),
        ("NSW", date(2026, 12, 28), "Boxing Day"),  # observed: 26 Dec 2026 is a Saturday
    ],
)
def test_known_state_holidays(state: str, day: date, name_part: str) -> None:
    """Independently known 2025/2026 state holidays are holidays, not business days."""
    cal = BusinessCalendar(state, 2025, 2026)
    assert cal.is_holiday(day)
    assert not cal.is_business_day(day)
    name = cal.holiday_name(day)
    assert name is not None
    assert name_part in name


@pytest.mark.parametrize(
    ("state", "day"),
    [
        ("VIC", date(2025, 8, 4)),  # NSW Bank Holiday is not a Victorian one
        ("NSW", date(2025, 11, 4)),  # Melbourne Cup is Victorian
        ("NSW", date(2025, 6, 2)),  # WA Day
        ("WA", date(2025, 8, 13)),  # EKKA
    ],
)
def test_other_states_holidays_are_business_days(state: str, day: date) -> None:
    """A holiday of one state is an ordinary business day in another."""
    cal = BusinessCalendar(state, 2025, 2026)
    assert not cal.is_holiday(day)
    assert cal.holiday_name(day) is None
    assert cal.is_business_day(day)


@pytest.mark.parametrize("year", range(2025, 2031))
def test_rule_based_holidays_match_independent_computation(year: int) -> None:
    """NSW Bank Holiday, Melbourne Cup and WA Day follow their weekday rules every year."""
    assert BusinessCalendar("NSW", year, year).is_holiday(nth_weekday(year, 8, 0, 1))
    assert BusinessCalendar("VIC", year, year).is_holiday(nth_weekday(year, 11, 1, 1))
    assert BusinessCalendar("WA", year, year).is_holiday(nth_weekday(year, 6, 0, 1))


@pytest.mark.parametrize("state", STATES)
def test_holiday_dates_match_holidays_package(state: str) -> None:
    """The calendar's holidays for 2025-2026 are exactly the package's public + bank holidays."""
    cal = BusinessCalendar(state, 2025, 2026)
    reference = holidays.country_holidays(
        "AU", subdiv=state, years=(2025, 2026), categories=("public", "bank")
    )
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(730)]
    assert {d for d in days if cal.is_holiday(d)} == set(reference)
    for d, name in reference.items():
        assert cal.holiday_name(d) == name


@pytest.mark.parametrize("state", STATES)
def test_good_friday_christmas_and_weekends_are_not_business_days(state: str) -> None:
    """Good Friday, Christmas and every Saturday/Sunday are closed in every state."""
    cal = BusinessCalendar(state, 2025, 2027)
    for good_friday in (date(2025, 4, 18), date(2026, 4, 3), date(2027, 3, 26)):
        assert not cal.is_business_day(good_friday)
    for year in (2025, 2026, 2027):
        assert not cal.is_business_day(date(year, 12, 25))
    first = date(2025, 1, 4)  # a Saturday
    for week in range(150):
        saturday = first + timedelta(weeks=week)
        assert not cal.is_business_day(saturday)
        assert not cal.is_business_day(saturday + timedelta(days=1))
    assert cal.is_business_day(date(2025, 7, 15))  # an ordinary Tuesday


def test_previous_and_next_business_day_across_easter() -> None:
    """Around Easter 2025 in NSW: Thu 17 Apr before, Tue 22 Apr after (Fri-Mon closed)."""
    cal = BusinessCalendar("NSW", 2025, 2025)
    for closed in (date(2025, 4, 18), date(2025, 4, 19), date(2025, 4, 20), date(2025, 4, 21)):
        assert cal.previous_business_day(closed) == date(2025, 4, 17)
        assert cal.next_business_day(closed) == date(2025, 4, 22)
    assert cal.previous_business_day(date(2025, 4, 22)) == date(2025, 4, 22)
    assert cal.previous_business_day(date(2025, 4, 22), inclusive=False) == date(2025, 4, 17)
    assert cal.next_business_day(date(2025, 4, 17)) == date(2025, 4, 17)
    assert cal.next_business_day(date(2025, 4, 17), inclusive=False) == date(2025, 4, 22)


def test_business_days_inclusive_range() -> None:
    """NSW April 2025: 22 weekdays minus Good Friday, Easter Monday and ANZAC Day (Fri) = 19."""
    cal = BusinessCalendar("NSW", 2025, 2025)
    days = cal.business_days(date(2025, 4, 1), date(2025, 4, 30))
    assert len(days) == 19
    assert days[0] == date(2025, 4, 1)
    assert days[-1] == date(2025, 4, 30)
    assert date(2025, 4, 25) not in days
    assert all(cal.is_business_day(d) for d in days)
    assert cal.business_days(date(2025, 4, 30), date(2025, 4, 1)) == []
    assert cal.business_days(date(2025, 4, 18), date(2025, 4, 18)) == []


def test_years_outside_range_extend_lazily() -> None:
    """A calendar built for 2025 still knows Christmas 2031 and the 2019 NSW Bank Holiday."""
    cal = BusinessCalendar("NSW", 2025, 2025)
    assert cal.is_holiday(date(2031, 12, 25))
    assert not cal.is_business_day(nth_weekday(2019, 8, 0, 1))
    assert cal.next_business_day(date(2031, 12, 25)) == date(2031, 12, 29)  # Fri 26 Boxing Day


@pytest.mark.parametrize("bad", ["nsw", "NSW Western", "XX", ""])
def test_unknown_state_refused_with_valid_list(bad: str) -> None:
    """Unknown states raise ValueError naming every valid state."""
    with pytest.raises(ValueError, match="unknown state") as info:
        BusinessCalendar(bad, 2025, 2026)
    for state in STATES:
        assert state in str(info.value)


def test_reversed_year_range_refused() -> None:
    """first_year after last_year is a caller mistake, not an empty calendar."""
    with pytest.raises(ValueError, match="first_year"):
        BusinessCalendar("NSW", 2026, 2025)
