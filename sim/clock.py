"""Simulated time <-> Australian local time, and Australian business days.

SimPy time is a float: seconds since the scenario start, which is 00:00 local
time (``Australia/Sydney`` by default) on the start date. All arithmetic goes
through UTC (``moment = origin_utc + timedelta(seconds=t)``) so daylight saving
is handled once, by ``zoneinfo``: a Sydney day is 23 hours long on the first
Sunday of October and 25 hours long on the first Sunday of April, and models
that schedule "09:00 every business day" must ask this module for the second
of 09:00 rather than add 86,400 per day.

Nothing here reads the wall clock: the mapping is a pure function of the start
date and the time zone.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

SYDNEY: ZoneInfo = ZoneInfo("Australia/Sydney")

_HOUR = 3600
_ISO_CACHE_LIMIT = 16384  # hours (~1.9 years, a few MB) kept before the cache is dropped


class VirtualClock:
    """Maps simulated seconds to aware local datetimes and back.

    Attributes:
        start: The scenario start date; ``t = 0`` is local midnight of it.
        tz: The local time zone of the scenario.
    """

    start: date
    tz: ZoneInfo

    def __init__(self, start: date, tz: ZoneInfo = SYDNEY) -> None:
        """Fix the origin at local midnight of ``start``.

        Args:
            start: Scenario start date.
            tz: Local time zone. If local midnight does not exist in ``tz`` on
                ``start`` (zones that switch DST at midnight), ``zoneinfo``'s
                fold=0 rule places the origin at the instant the day begins.
        """
        if isinstance(start, datetime):
            raise TypeError("start must be a date, not a datetime (t=0 is local midnight)")
        self.start = start
        self.tz = tz
        self._origin_utc = self._midnight_utc(start)
        # hour index since origin -> (prefix 'YYYY-MM-DDTHH:', suffix '+HH:MM') or None
        self._iso_cache: dict[int, tuple[str, str] | None] = {}

    def _midnight_utc(self, day: date) -> datetime:
        """Local midnight of ``day`` as an aware UTC datetime."""
        return datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)

    def datetime_at(self, t: float) -> datetime:
        """Return the aware local datetime of simulated second ``t`` (microsecond precision)."""
        return (self._origin_utc + timedelta(seconds=float(t))).astimezone(self.tz)

    def seconds_at(self, moment: datetime | date) -> float:
        """Return the simulated second of ``moment``.

        Args:
            moment: An aware datetime in any zone, or a date meaning local
                midnight of that date in the clock's zone.

        Raises:
            ValueError: for a naive datetime, whose instant is ambiguous.
        """
        if isinstance(moment, datetime):
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(
                    f"naive datetime {moment.isoformat()} refused: give it a tzinfo "
                    f"(e.g. {self.tz.key}) so the instant is unambiguous"
                )
            return (moment - self._origin_utc).total_seconds()
        return (self._midnight_utc(moment) - self._origin_utc).total_seconds()

    def date_at(self, t: float) -> date:
        """Return the local calendar date of simulated second ``t``."""
        return self.datetime_at(t).date()

    def day_start(self, day: date) -> float:
        """Return the simulated second of local midnight of ``day``."""
        return self.seconds_at(day)

    def day_length(self, day: date) -> float:
        """Return the length of local ``day`` in seconds (82800, 86400 or 90000 in Sydney)."""
        return self.day_start(day + timedelta(days=1)) - self.day_start(day)

    def iso_at(self, t: float) -> str:
        """Return ISO 8601 local time with offset, to the whole second.

        ``t`` is truncated to the second it falls in (``floor``), which is what
        ``datetime.isoformat(timespec="seconds")`` does to microseconds. This
        is called for every command's ``occurredAt``, so it avoids building a
        datetime: the date/hour prefix and the UTC offset are computed once per
        hour since origin (an offset change is only ever found at an hour
        boundary for whole-hour zones like Sydney) and minutes/seconds are
        formatted directly. Hours whose offset changes mid-hour, or that are
        not aligned with a local hour (half-hour DST shifts such as Lord Howe),
        fall back to the exact datetime path.
        """
        s = math.floor(t)
        hour, rest = divmod(s, _HOUR)
        try:
            entry = self._iso_cache[hour]
        except KeyError:
            entry = self._iso_hour(hour)
        if entry is None:
            return self.datetime_at(s).isoformat(timespec="seconds")
        minute, second = divmod(rest, 60)
        return f"{entry[0]}{minute:02d}:{second:02d}{entry[1]}"

    def _iso_hour(self, hour: int) -> tuple[str, str] | None:
        """Compute and cache the ISO prefix/suffix for one hour since origin, or None if unsafe."""
        if len(self._iso_cache) >= _ISO_CACHE_LIMIT:
            self._iso_cache.clear()
        first = self.datetime_at(hour * _HOUR)
        last = self.datetime_at(hour * _HOUR + _HOUR - 1)
        entry: tuple[str, str] | None = None
        if first.minute == 0 and first.second == 0 and first.utcoffset() == last.utcoffset():
            text = first.isoformat(timespec="seconds")  # 'YYYY-MM-DDTHH:00:00+HH:MM'
            entry = (text[:14], sys.intern(text[19:]))  # few distinct offsets: share them
        self._iso_cache[hour] = entry
        return entry


_STATES = ("ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA")


class BusinessCalendar:
    """Australian business days for one state: Mon-Fri that are not public or bank holidays there.

    Holidays come from the ``holidays`` package (categories ``public`` and
    ``bank``: e.g. the NSW/ACT Bank Holiday on the first Monday of August),
    including "observed" substitute days. Known simplifications inherited from
    the package: regional holidays such as Queensland's Royal Queensland Show
    (EKKA, Brisbane only) are applied state-wide; half-day holidays (Christmas
    Eve and New Year's Eve evenings in SA/NT) are not holidays here.

    Years outside ``[first_year, last_year]`` still work: the package extends
    lazily to any year asked about. The range only sets what is pre-computed.

    Attributes:
        state: The state or territory code, e.g. ``"NSW"``.
    """

    state: str

    def __init__(self, state: str, first_year: int, last_year: int) -> None:
        """Load the state's public and bank holidays for the given years.

        Args:
            state: One of ACT, NSW, NT, QLD, SA, TAS, VIC, WA.
            first_year: First year to pre-compute.
            last_year: Last year to pre-compute (inclusive).

        Raises:
            ValueError: for an unknown state or ``first_year > last_year``.
        """
        if state not in _STATES:
            raise ValueError(f"unknown state {state!r}; valid states: {', '.join(_STATES)}")
        if first_year > last_year:
            raise ValueError(f"first_year {first_year} is after last_year {last_year}")
        self.state = state
        self._holidays = holidays.country_holidays(
            "AU",
            subdiv=state,
            years=range(first_year, last_year + 1),
            categories=("public", "bank"),
        )

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` is a public or bank holiday in the state (weekends included)."""
        return day in self._holidays

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name (several joined by '; '), or None on an ordinary day."""
        return self._holidays.get(day)

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` is a weekday that is not a holiday in the state."""
        return day.weekday() < 5 and day not in self._holidays

    def previous_business_day(self, day: date, inclusive: bool = True) -> date:
        """The latest business day on or before ``day`` (strictly before if not ``inclusive``)."""
        current = day if inclusive else day - timedelta(days=1)
        while not self.is_business_day(current):
            current -= timedelta(days=1)
        return current

    def next_business_day(self, day: date, inclusive: bool = True) -> date:
        """The earliest business day on or after ``day`` (strictly after if not ``inclusive``)."""
        current = day if inclusive else day + timedelta(days=1)
        while not self.is_business_day(current):
            current += timedelta(days=1)
        return current

    def business_days(self, first: date, last: date) -> list[date]:
        """Business days from ``first`` to ``last`` inclusive (empty if ``first > last``)."""
        count = (last - first).days + 1
        days = (first + timedelta(days=i) for i in range(max(count, 0)))
        return [day for day in days if self.is_business_day(day)]
