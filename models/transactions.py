"""A whole day of memoryless payments for every member of one tenant, drawn at once.

This is the twin's throughput path. Card spend, bills, transfers and savings
sweeps are memoryless (each member pays at a steady Poisson rate within a day,
independently of everyone else), so instead of one SimPy event per payment a
tenant's whole day is drawn with a handful of numpy calls and handed to the
platform as a batch. Salaries are not random in timing (they follow each
member's pay cycle and the business calendar) but are drawn here too, because
they are just as numerous and just as independent.

How a day is drawn, and why it is exact:

* Counts. Each eligible member's count of a flow is Poisson(rate * weekday
  multiplier * month multiplier). Rather than one Poisson draw per member, the
  day's total is drawn as Poisson(eligible * rate * multipliers) and each
  payment is given to an eligible member chosen uniformly at random. By Poisson
  splitting this is the same distribution (independent Poisson counts per
  member) at a fraction of the cost.
* Rates. A flow's configured `rate_per_day` is its rate on a day whose weekday
  and month multipliers are both 1.0; the multipliers are not normalised, so a
  year's average rate is the configured rate times the average multipliers.
  `expected_amount_per_member_day` includes the multipliers.
* Amounts. Lognormal with the flow's mean and CV; for card, BPAY, NPP out and
  savings sweeps the mean is multiplied by the member's `spend_scale` (income
  relative to the median). Money received from others (NPP in) is not scaled.
* Time of day. Each flow has its own hourly profile (see `FLOW_PROFILES`).
  Because payments of a memoryless flow are exchangeable, their seconds are
  sorted before members are attached; that leaves the distribution unchanged
  and makes the final sort a cheap merge of sorted runs.
* Order. Rows are sorted by (second, flow, member) with a stable sort, so rows
  equal on all three keep the order in which they were drawn: the output is a
  function of the generator's state only.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.distributions import (
    BUSINESS_HOURS,
    CARD_HOURS,
    SALARY_HOURS,
    SAVINGS_HOURS,
    HourlyProfile,
    LogNormalAmount,
    PoissonCount,
    dollars_to_cents,
)
from models.params import Behaviour, FlowParams

__all__ = [
    "FLOW_PROFILES",
    "MEMORYLESS_FLOWS",
    "SCALED_FLOWS",
    "SPEND_SCALE_MAX",
    "SPEND_SCALE_MIN",
    "CalendarLike",
    "DayDraws",
    "Flow",
    "MemberArrays",
    "day_multiplier",
    "draw_day",
    "expected_amount_per_member_day",
    "expected_count_per_member_day",
    "flow_params",
    "mean_spend_scale",
    "net_pay_cents",
]

#: Bounds of a member's spend scale (income / median income). Without them a
#: lognormal income tail would give a few members absurd card bills (or none).
SPEND_SCALE_MIN = 0.3
SPEND_SCALE_MAX = 4.0

#: Days in the year used to turn annual income into per-pay income.
DAYS_PER_YEAR = 365.25

# Bit layout of the combined sort key: second (17 bits) | flow (3) | member (31).
_FLOW_SHIFT = 31
_SECOND_SHIFT = 34
_MEMBER_MASK = (1 << _FLOW_SHIFT) - 1


class CalendarLike(Protocol):
    """What the salary model needs from a business calendar (e.g. `sim.clock`'s).

    Only these two questions are asked, so any object answering them will do,
    including a tiny fake in tests.
    """

    def is_business_day(self, day: datetime.date, /) -> bool:
        """Whether banks settle on `day` (not a weekend or a bank holiday)."""
        ...

    def next_business_day(self, day: datetime.date, /, inclusive: bool = True) -> datetime.date:
        """The first business day on or after `day` (after it if not inclusive)."""
        ...


class Flow(IntEnum):
    """The kinds of payment drawn per day; the value is the `int8` code in `DayDraws`.

    The order is also the tie-break order within a second (salary first, so a
    member paid at the same second as a spend is credited before debited).
    """

    SALARY = 0
    CARD = 1
    BPAY = 2
    NPP_OUT = 3
    NPP_IN = 4
    SAVINGS = 5


#: Flows drawn as Poisson counts with lognormal amounts, in drawing order.
MEMORYLESS_FLOWS: tuple[Flow, ...] = (
    Flow.CARD,
    Flow.BPAY,
    Flow.NPP_OUT,
    Flow.NPP_IN,
    Flow.SAVINGS,
)

#: Flows whose mean amount scales with the member's income (what they choose to
#: spend); money others send (NPP in) does not depend on the member's income.
SCALED_FLOWS: frozenset[Flow] = frozenset({Flow.CARD, Flow.BPAY, Flow.NPP_OUT, Flow.SAVINGS})

#: Time-of-day profile of each flow (read-only).
FLOW_PROFILES: Mapping[Flow, HourlyProfile] = MappingProxyType(
    {
        Flow.SALARY: SALARY_HOURS,
        Flow.CARD: CARD_HOURS,
        Flow.BPAY: BUSINESS_HOURS,
        Flow.NPP_OUT: BUSINESS_HOURS,
        Flow.NPP_IN: BUSINESS_HOURS,
        Flow.SAVINGS: SAVINGS_HOURS,
    }
)


def flow_params(behaviour: Behaviour, flow: Flow) -> FlowParams:
    """The parameter block of a memoryless flow.

    Raises:
        ValueError: for `Flow.SALARY`, which follows the pay cycle instead.
    """
    match flow:
        case Flow.CARD:
            return behaviour.card_spend
        case Flow.BPAY:
            return behaviour.bpay
        case Flow.NPP_OUT:
            return behaviour.npp_out
        case Flow.NPP_IN:
            return behaviour.npp_in
        case Flow.SAVINGS:
            return behaviour.savings_transfer
    raise ValueError(f"{flow!r} is not a memoryless flow")


def day_multiplier(behaviour: Behaviour, day: datetime.date) -> float:
    """Weekday multiplier times month multiplier for `day` (rates are at 1.0)."""
    return behaviour.weekday_multipliers[day.weekday()] * behaviour.month_multipliers[day.month - 1]


def _median_income_cents(behaviour: Behaviour) -> int:
    return dollars_to_cents(behaviour.income.median_annual)


def _pay_factor(behaviour: Behaviour) -> float:
    return behaviour.income.net_ratio * behaviour.salary.period_days / DAYS_PER_YEAR


def net_pay_cents(
    income_cents: npt.NDArray[np.int64], behaviour: Behaviour
) -> npt.NDArray[np.int64]:
    """Net (take-home) amount of one pay, in cents, for given annual gross incomes.

    Exactly: `max(1, rint(income_cents * f))` in float64 with round half to
    even, where `f = net_ratio * period_days / 365.25` is computed first as one
    Python float. So a year of pays is the annual net income up to the
    365.25-day year; e.g. $67,000 gross, 0.76 net, 14 days gives 195,176 cents.

    Args:
        income_cents: annual gross incomes, int64 cents.
        behaviour: supplies `income.net_ratio` and `salary.period_days`.
    """
    pay = np.rint(np.asarray(income_cents, dtype=np.float64) * _pay_factor(behaviour))
    np.maximum(pay, 1.0, out=pay)
    return pay.astype(np.int64)


def _std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def mean_spend_scale(behaviour: Behaviour) -> float:
    """Analytic mean of a new member's spend scale, `E[clip(income / median, lo, hi)]`.

    With income lognormal, `income / median = exp(sigma * Z)`, so the mean is
    `lo * P(X < lo) + E[X; lo <= X <= hi] + hi * P(X > hi)`; it is above 1
    (about 1.16 at the default sigma) because the mean of a lognormal exceeds
    its median. Members without a wage spend a fraction of it (see
    `IncomeParams.not_employed_spend_factor`). Pass it to
    `expected_amount_per_member_day` for an expectation
    before any member exists; pass the observed mean for one conditional on them.
    """
    s = behaviour.income.sigma
    a = math.log(SPEND_SCALE_MIN) / s
    b = math.log(SPEND_SCALE_MAX) / s
    inside = math.exp(s * s / 2.0) * (_std_normal_cdf(b - s) - _std_normal_cdf(a - s))
    clipped = (
        SPEND_SCALE_MIN * _std_normal_cdf(a) + inside + SPEND_SCALE_MAX * (1.0 - _std_normal_cdf(b))
    )
    # Employment is drawn independently of income; members without a wage
    # spend `not_employed_spend_factor` of their scale.
    income = behaviour.income
    employed = income.employed_share
    return clipped * (employed + (1.0 - employed) * income.not_employed_spend_factor)


class MemberArrays:
    """A tenant's members as a struct of numpy arrays, growable as members join.

    One array per attribute (rather than one object per member) is what lets a
    day be drawn for every member with a few vectorised calls. Storage grows by
    doubling, so adding members one small cohort at a time is amortised O(1).

    The attribute properties return views of the first `n` rows: writes through
    them (e.g. `members.active[i] = False` on churn) change the members, but a
    view taken before `add` may point at the old storage after a regrowth, so
    take views afresh rather than keeping them.

    Attributes:
        n: number of members so far; member ids are 0..n-1 in joining order.
    """

    __slots__ = (
        "_active",
        "_employed",
        "_has_savings",
        "_income_cents",
        "_pay_phase",
        "_spend_scale",
        "n",
    )

    def __init__(self, capacity: int = 1024) -> None:
        """Start empty with room for `capacity` members before the first regrowth."""
        if capacity < 0:
            raise ValueError(f"capacity must be non-negative, got {capacity}")
        self.n = 0
        self._income_cents = np.zeros(capacity, dtype=np.int64)
        self._employed = np.zeros(capacity, dtype=np.bool_)
        self._spend_scale = np.zeros(capacity, dtype=np.float64)
        self._pay_phase = np.zeros(capacity, dtype=np.int16)
        self._has_savings = np.zeros(capacity, dtype=np.bool_)
        self._active = np.zeros(capacity, dtype=np.bool_)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"MemberArrays(n={self.n}, capacity={self.capacity})"

    @property
    def capacity(self) -> int:
        """Rows allocated; grows by doubling when `add` needs more."""
        return int(self._income_cents.shape[0])

    @property
    def income_cents(self) -> npt.NDArray[np.int64]:
        """Annual gross income (earning capacity), int64 cents, for every member.

        Drawn for everyone, employed or not: it also sets the spend scale, and
        only employed members receive it as salary.
        """
        return self._income_cents[: self.n]

    @property
    def employed(self) -> npt.NDArray[np.bool_]:
        """Whether the member is paid a salary into their account."""
        return self._employed[: self.n]

    @property
    def spend_scale(self) -> npt.NDArray[np.float64]:
        """Multiplier of scaled flows' mean amounts: income / median, clipped."""
        return self._spend_scale[: self.n]

    @property
    def pay_phase(self) -> npt.NDArray[np.int16]:
        """Pay-cycle phase in [0, period): nominal payday when (day_index - phase) % period == 0."""
        return self._pay_phase[: self.n]

    @property
    def has_savings(self) -> npt.NDArray[np.bool_]:
        """Whether the member holds a savings account (only they make savings sweeps)."""
        return self._has_savings[: self.n]

    @property
    def active(self) -> npt.NDArray[np.bool_]:
        """Whether the member is still with the credit union (churned members are not)."""
        return self._active[: self.n]

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_capacity = max(needed, 2 * self.capacity, 16)
        for name in (
            "_income_cents",
            "_employed",
            "_spend_scale",
            "_pay_phase",
            "_has_savings",
            "_active",
        ):
            old = getattr(self, name)
            grown = np.zeros(new_capacity, dtype=old.dtype)
            grown[: self.n] = old[: self.n]
            setattr(self, name, grown)

    def add(
        self, rng: np.random.Generator, behaviour: Behaviour, count: int
    ) -> npt.NDArray[np.int32]:
        """Draw `count` new members' attributes and append them, active.

        Draws, in this order (so a stream reproduces a cohort exactly): annual
        gross income, lognormal with the configured median and sigma; employed,
        Bernoulli(employed_share); pay phase, uniform over the period; has a
        savings account, Bernoulli(opening.savings_share).

        Args:
            rng: the tenant's member-attribute stream.
            behaviour: the tenant's behaviour parameters.
            count: how many members join.

        Returns:
            The new members' indices (int32), consecutive after the existing ones.
        """
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        start, stop = self.n, self.n + count
        if stop > _MEMBER_MASK:
            raise ValueError(f"at most {_MEMBER_MASK} members fit the day's sort key")
        self._reserve(stop)
        median = _median_income_cents(behaviour)
        income = LogNormalAmount.from_median(float(median), behaviour.income.sigma).sample(
            rng, count
        )
        employed = rng.random(count) < behaviour.income.employed_share
        phase = rng.integers(0, behaviour.salary.period_days, count, dtype=np.int16)
        savings = rng.random(count) < behaviour.opening.savings_share
        self._income_cents[start:stop] = income
        self._employed[start:stop] = employed
        scale = np.clip(income / float(median), SPEND_SCALE_MIN, SPEND_SCALE_MAX)
        # Members without a wage live on much less (benefits, pensions, family).
        self._spend_scale[start:stop] = np.where(
            employed, scale, scale * behaviour.income.not_employed_spend_factor
        )
        self._pay_phase[start:stop] = phase
        self._has_savings[start:stop] = savings
        self._active[start:stop] = True
        self.n = stop
        return np.arange(start, stop, dtype=np.int32)

    def net_pay_cents(self, behaviour: Behaviour) -> npt.NDArray[np.int64]:
        """Per-pay net amount for every member (int64 cents); see module `net_pay_cents`."""
        return net_pay_cents(self.income_cents, behaviour)


@dataclass(frozen=True, slots=True)
class DayDraws:
    """One tenant-day of payments, one row per payment, in posting order.

    Rows are sorted by (second, flow, member); rows equal on all three keep
    their drawing order, so the same generator state gives the same arrays.

    Attributes:
        second: int32 seconds after local midnight, 0..86399.
        flow: int8 `Flow` codes.
        member: int32 member indices into the tenant's `MemberArrays`.
        amount_cents: int64 amounts, each > 0 (direction is given by the flow).
    """

    second: npt.NDArray[np.int32]
    flow: npt.NDArray[np.int8]
    member: npt.NDArray[np.int32]
    amount_cents: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.second.shape[0])

    @classmethod
    def empty(cls) -> DayDraws:
        """A day with no payments (e.g. a tenant with no members yet)."""
        return cls(
            np.zeros(0, np.int32),
            np.zeros(0, np.int8),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
        )


_Part = tuple[npt.NDArray[np.int32], Flow, npt.NDArray[np.int32], npt.NDArray[np.int64]]


def _salary_part(
    rng: np.random.Generator,
    behaviour: Behaviour,
    members: MemberArrays,
    day: datetime.date,
    day_index: int,
    calendar: CalendarLike,
) -> _Part | None:
    """Salaries paid on `day`: nominal paydays from today up to the next business day.

    A nominal payday on a non-business day is paid on the previous business
    day. Looking forward from each business day over the non-business days
    before the next one finds exactly those, so each nominal payday is paid
    once and only once (if a non-business stretch were longer than the period,
    a member would rightly get two pays on one day).

    Edge, by design: a nominal payday whose previous business day is before
    the member was drawn (a run starting on a weekend, a member joining on
    one) was paid before they banked with us, so it is not paid here.
    """
    if members.n == 0 or not calendar.is_business_day(day):
        return None
    following = calendar.next_business_day(day + datetime.timedelta(days=1), inclusive=True)
    gap = (following - day).days  # nominal paydays at offsets 0..gap-1 are paid today
    period = behaviour.salary.period_days
    payees = np.flatnonzero(members.employed & members.active)
    if payees.size == 0:
        return None
    # Offset from today to each payee's next nominal payday (0 when it is today).
    offset = (members.pay_phase[payees].astype(np.int64) - day_index) % period
    pays = np.where(offset < gap, (gap - offset + period - 1) // period, 0)
    member = np.repeat(payees, pays).astype(np.int32)
    amount = net_pay_cents(members.income_cents[member], behaviour)
    second = SALARY_HOURS.sample(rng, member.size)
    return second, Flow.SALARY, member, amount


def _flow_part(
    rng: np.random.Generator,
    behaviour: Behaviour,
    members: MemberArrays,
    flow: Flow,
    multiplier: float,
) -> _Part | None:
    """One memoryless flow for all eligible members: total, seconds, members, amounts."""
    eligible = members.active
    if flow is Flow.SAVINGS:
        eligible = eligible & members.has_savings
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        return None
    params = flow_params(behaviour, flow)
    total = PoissonCount(params.rate_per_day).sample_total(rng, int(idx.size), multiplier)
    # Payments of a flow are exchangeable, so sorting their seconds before
    # attaching members changes nothing in distribution and speeds the merge.
    second = FLOW_PROFILES[flow].sample(rng, total, ordered=True)
    member = idx[rng.integers(0, idx.size, total)].astype(np.int32)
    amounts = LogNormalAmount.from_dollars(params.mean_amount, params.cv)
    scale = members.spend_scale[member] if flow in SCALED_FLOWS else 1.0
    return second, flow, member, amounts.sample(rng, total, scale=scale)


def draw_day(
    rng: np.random.Generator,
    behaviour: Behaviour,
    members: MemberArrays,
    day: datetime.date,
    day_index: int,
    calendar: CalendarLike,
) -> DayDraws:
    """Draw every payment of one tenant-day for all its members at once.

    Generator use is fixed (salary seconds, then per memoryless flow in
    `MEMORYLESS_FLOWS` order: total, seconds, members, amounts), so the same
    stream state, members and day give identical draws.

    Args:
        rng: the tenant's transactions stream.
        behaviour: the tenant's behaviour parameters.
        members: the tenant's members (inactive ones draw nothing).
        day: the local calendar date being drawn.
        day_index: days since the scenario start (sets pay-cycle position).
        calendar: business-day calendar (moves salaries off holidays).

    Returns:
        The day's payments sorted by (second, flow, member).
    """
    parts: list[_Part] = []
    salary = _salary_part(rng, behaviour, members, day, day_index, calendar)
    if salary is not None:
        parts.append(salary)
    multiplier = day_multiplier(behaviour, day)
    for flow in MEMORYLESS_FLOWS:
        part = _flow_part(rng, behaviour, members, flow, multiplier)
        if part is not None:
            parts.append(part)
    if not parts:
        return DayDraws.empty()

    # One int64 key per row, second (17 bits) | flow (3) | member (31), so a
    # single stable argsort orders by (second, flow, member) as np.lexsort
    # would, several times faster; the parts are sorted runs, which the stable
    # sort merges cheaply.
    key = np.concatenate(
        [
            (p[0].astype(np.int64) << _SECOND_SHIFT)
            | (int(p[1]) << _FLOW_SHIFT)
            | p[2].astype(np.int64)
            for p in parts
        ]
    )
    order = np.argsort(key, kind="stable")
    amount = np.concatenate([p[3] for p in parts])[order]
    key = key[order]
    return DayDraws(
        second=(key >> _SECOND_SHIFT).astype(np.int32),
        flow=((key >> _FLOW_SHIFT) & 0b111).astype(np.int8),
        member=(key & _MEMBER_MASK).astype(np.int32),
        amount_cents=amount,
    )


def expected_count_per_member_day(behaviour: Behaviour, flow: Flow, day: datetime.date) -> float:
    """Analytic expected number of payments per eligible member on `day`.

    Eligible means active (and with a savings account for `SAVINGS`). For
    `SALARY` it is the long-run average per employed member, 1 / period_days:
    on any one day it depends on the pay phases and the calendar, which only
    move pays between days.
    """
    if flow is Flow.SALARY:
        return 1.0 / behaviour.salary.period_days
    return flow_params(behaviour, flow).rate_per_day * day_multiplier(behaviour, day)


def expected_amount_per_member_day(
    behaviour: Behaviour,
    flow: Flow,
    day: datetime.date,
    mean_spend_scale: float = 1.0,
) -> float:
    """Analytic expected cents of `flow` per eligible member on `day`.

    For memoryless flows: rate * weekday multiplier * month multiplier * mean
    amount, times `mean_spend_scale` for the income-scaled flows. Eligible
    means active, and for `SAVINGS` also holding a savings account. For
    `SALARY` it is the long-run daily average per employed member,
    E[income] * net_ratio / 365.25 (the calendar moves pays, never adds or
    drops them); `mean_spend_scale` does not apply. Rounding each draw to the
    cent moves these by well under a cent per payment.

    Args:
        behaviour: the tenant's behaviour parameters.
        flow: which flow.
        day: the date (its weekday and month set the multipliers).
        mean_spend_scale: mean spend scale of the eligible members; use
            `mean_spend_scale(behaviour)` for a population not yet drawn.
    """
    if flow is Flow.SALARY:
        income = LogNormalAmount.from_median(
            float(_median_income_cents(behaviour)), behaviour.income.sigma
        )
        return income.mean * behaviour.income.net_ratio / DAYS_PER_YEAR
    params = flow_params(behaviour, flow)
    mean_amount = float(dollars_to_cents(params.mean_amount))
    scale = mean_spend_scale if flow in SCALED_FLOWS else 1.0
    return expected_count_per_member_day(behaviour, flow, day) * mean_amount * scale
