"""Tests of models.transactions: a tenant-day of draws is right in law, order and money.

Statistical checks run over several seeds at a family-wise false-alarm rate
of 0.001 (Bonferroni across seeds and flows), with intervals built from the
analytic expectations the module publishes. Salary is checked exactly: over
a long run with holidays, every nominal payday of every employed member is
paid once, on the business day at or before it.
"""

from __future__ import annotations

import datetime
import math
import time
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest
from scipy import integrate, stats

from models.params import Behaviour, FlowParams, SalaryParams
from models.transactions import (
    FLOW_PROFILES,
    MEMORYLESS_FLOWS,
    SCALED_FLOWS,
    SPEND_SCALE_MAX,
    SPEND_SCALE_MIN,
    DayDraws,
    Flow,
    MemberArrays,
    draw_day,
    expected_amount_per_member_day,
    expected_count_per_member_day,
    flow_params,
    mean_spend_scale,
    net_pay_cents,
)

FAMILY_ALPHA = 0.001
SEEDS = range(6)
MONDAY = datetime.date(2024, 6, 3)


def z_crit(tests: int, alpha: float = FAMILY_ALPHA) -> float:
    """Two-sided normal critical value for `tests` Bonferroni-corrected tests."""
    return float(stats.norm.isf(alpha / (2 * tests)))


class FakeCalendar:
    """Weekends and a given set of holidays are not business days."""

    def __init__(self, holidays: set[datetime.date] | None = None) -> None:
        self.holidays = holidays or set()

    def is_business_day(self, day: datetime.date, /) -> bool:
        """Monday to Friday, except holidays."""
        return day.weekday() < 5 and day not in self.holidays

    def next_business_day(self, day: datetime.date, /, inclusive: bool = True) -> datetime.date:
        """First business day on (or after, if not inclusive) `day`."""
        if not inclusive:
            day += datetime.timedelta(days=1)
        while not self.is_business_day(day):
            day += datetime.timedelta(days=1)
        return day


def make_members(seed: int, count: int, behaviour: Behaviour | None = None) -> MemberArrays:
    """A population drawn from its own seeded stream."""
    members = MemberArrays()
    members.add(np.random.default_rng(seed), behaviour or Behaviour(), count)
    return members


# --- MemberArrays ---------------------------------------------------------------------------


def test_member_arrays_dtypes_and_ranges() -> None:
    """New members get attributes of the documented dtypes and ranges, all active."""
    behaviour = Behaviour()
    members = MemberArrays(capacity=0)
    idx = members.add(np.random.default_rng(0), behaviour, 5_000)
    assert np.array_equal(idx, np.arange(5_000))
    assert idx.dtype == np.int32
    assert len(members) == members.n == 5_000
    assert members.income_cents.dtype == np.int64
    assert members.employed.dtype == np.bool_
    assert members.spend_scale.dtype == np.float64
    assert members.pay_phase.dtype == np.int16
    assert members.has_savings.dtype == np.bool_
    assert members.active.dtype == np.bool_
    assert members.income_cents.min() >= 1
    factor = behaviour.income.not_employed_spend_factor
    assert members.spend_scale.min() >= SPEND_SCALE_MIN * factor
    assert members.spend_scale.max() <= SPEND_SCALE_MAX
    assert members.pay_phase.min() >= 0
    assert members.pay_phase.max() < behaviour.salary.period_days
    assert set(np.unique(members.pay_phase)) == set(range(behaviour.salary.period_days))
    assert members.active.all()
    median = 6_700_000.0
    expected_scale = np.clip(members.income_cents / median, SPEND_SCALE_MIN, SPEND_SCALE_MAX)
    expected_scale = np.where(members.employed, expected_scale, expected_scale * factor)
    assert np.allclose(members.spend_scale, expected_scale)


def test_member_arrays_growth_keeps_earlier_members() -> None:
    """Growing by doubling keeps every earlier member's attributes and the indices run on."""
    behaviour = Behaviour()
    rng = np.random.default_rng(5)
    members = MemberArrays(capacity=4)
    members.add(rng, behaviour, 3)
    members.active[1] = False  # a churned member must stay churned through a regrowth
    snapshots = []
    for cohort in (2, 30, 7, 200):
        snapshots.append(
            {
                name: getattr(members, name).copy()
                for name in (
                    "income_cents",
                    "employed",
                    "spend_scale",
                    "pay_phase",
                    "has_savings",
                    "active",
                )
            }
        )
        before, capacity = members.n, members.capacity
        idx = members.add(rng, behaviour, cohort)
        assert np.array_equal(idx, np.arange(before, before + cohort))
        assert members.capacity >= max(members.n, capacity)
        for name, old in snapshots[-1].items():
            assert np.array_equal(getattr(members, name)[:before], old), name
    assert members.n == 3 + 2 + 30 + 7 + 200
    assert not members.active[1]
    assert members.active[3:].all()


def test_member_arrays_grow_by_doubling() -> None:
    """Adding members one at a time reallocates only logarithmically often."""
    behaviour = Behaviour()
    rng = np.random.default_rng(0)
    members = MemberArrays(capacity=0)
    capacities = set()
    for _ in range(1_000):
        members.add(rng, behaviour, 1)
        capacities.add(members.capacity)
    assert capacities == {16, 32, 64, 128, 256, 512, 1024}


def test_member_arrays_same_seed_same_members() -> None:
    """Attribute draws come only from the injected generator."""
    a, b = make_members(9, 1_000), make_members(9, 1_000)
    c = make_members(10, 1_000)
    assert np.array_equal(a.income_cents, b.income_cents)
    assert np.array_equal(a.pay_phase, b.pay_phase)
    assert not np.array_equal(a.income_cents, c.income_cents)


def test_member_attribute_shares_in_ci() -> None:
    """Employed and savings shares, log income and mean spend scale match the parameters."""
    behaviour = Behaviour()
    n = 40_000
    z = z_crit(4 * len(SEEDS))
    s = behaviour.income.sigma
    # Analytic first and second moments of clip(exp(s Z), lo, hi).
    phi = stats.norm.cdf
    la, lb = math.log(SPEND_SCALE_MIN) / s, math.log(SPEND_SCALE_MAX) / s
    m1 = mean_spend_scale(behaviour)
    employed, factor = behaviour.income.employed_share, behaviour.income.not_employed_spend_factor
    m2 = (
        SPEND_SCALE_MIN**2 * phi(la)
        + math.exp(2 * s * s) * (phi(lb - 2 * s) - phi(la - 2 * s))
        + SPEND_SCALE_MAX**2 * phi(-lb)
    ) * (employed + (1 - employed) * factor**2)
    for seed in SEEDS:
        members = make_members(seed, n, behaviour)
        for share, flags in (
            (behaviour.income.employed_share, members.employed),
            (behaviour.opening.savings_share, members.has_savings),
        ):
            se = math.sqrt(share * (1 - share) / n)
            assert abs(flags.mean() - share) <= z * se
        log_income = np.log(members.income_cents)
        assert abs(log_income.mean() - math.log(6_700_000)) <= z * s / math.sqrt(n)
        assert abs(members.spend_scale.mean() - m1) <= z * math.sqrt((m2 - m1 * m1) / n)


def test_mean_spend_scale_is_the_clipped_lognormal_mean() -> None:
    """The analytic mean spend scale agrees with numerical integration.

    Employment is independent of income, and members without a wage spend
    `not_employed_spend_factor` of their clipped scale.
    """
    behaviour = Behaviour()
    s = behaviour.income.sigma
    employed, factor = behaviour.income.employed_share, behaviour.income.not_employed_spend_factor
    value, _ = integrate.quad(
        lambda x: np.clip(math.exp(s * x), SPEND_SCALE_MIN, SPEND_SCALE_MAX) * stats.norm.pdf(x),
        -12,
        12,
        points=[math.log(SPEND_SCALE_MIN) / s, math.log(SPEND_SCALE_MAX) / s],
    )
    value *= employed + (1 - employed) * factor
    assert mean_spend_scale(behaviour) == pytest.approx(value, rel=1e-9)
    assert 1.0 < mean_spend_scale(behaviour) < 1.2


def test_net_pay_cents_formula() -> None:
    """$67,000 gross at 0.76 net, fortnightly, is 195,176 cents; never below one cent."""
    behaviour = Behaviour()
    income = np.array([6_700_000, 1, 10_000_000], dtype=np.int64)
    pay = net_pay_cents(income, behaviour)
    assert pay.dtype == np.int64
    assert pay.tolist() == [195_176, 1, 291_307]  # 10m * .76 * 14 / 365.25 = 291,307.32...
    members = make_members(0, 10)
    assert np.array_equal(
        members.net_pay_cents(behaviour), net_pay_cents(members.income_cents, behaviour)
    )


# --- draw_day: shape, order, determinism ----------------------------------------------------


def assert_sorted_by_second_flow_member(draws: DayDraws) -> None:
    """Rows are non-decreasing in (second, flow, member)."""
    ds = np.diff(draws.second.astype(np.int64))
    df = np.diff(draws.flow.astype(np.int64))
    dm = np.diff(draws.member.astype(np.int64))
    ok = (ds > 0) | ((ds == 0) & ((df > 0) | ((df == 0) & (dm >= 0))))
    assert ok.all()


def test_draw_day_dtypes_order_and_ranges() -> None:
    """A day's draws have the documented dtypes, order, ranges and flow hours."""
    behaviour = Behaviour()
    members = make_members(1, 5_000)
    calendar = FakeCalendar()
    # Day index 0 on a Monday: members with phase 0 are paid today.
    draws = draw_day(np.random.default_rng(2), behaviour, members, MONDAY, 0, calendar)
    assert len(draws) > 5_000
    assert draws.second.dtype == np.int32
    assert draws.flow.dtype == np.int8
    assert draws.member.dtype == np.int32
    assert draws.amount_cents.dtype == np.int64
    assert all(len(a) == len(draws) for a in (draws.flow, draws.member, draws.amount_cents))
    assert draws.second.min() >= 0
    assert draws.second.max() <= 86_399
    assert draws.member.min() >= 0
    assert draws.member.max() < members.n
    assert draws.amount_cents.min() >= 1
    assert set(np.unique(draws.flow).tolist()) == {int(f) for f in Flow}
    assert_sorted_by_second_flow_member(draws)
    for flow in Flow:
        hours = draws.second[draws.flow == flow] // 3600
        assert set(np.unique(hours).tolist()) <= set(FLOW_PROFILES[flow].support_hours), flow


def test_draw_day_ties_sort_by_flow_then_member() -> None:
    """Within one second, rows are ordered by flow, then by member."""
    behaviour = Behaviour()
    members = make_members(3, 20_000)
    draws = draw_day(np.random.default_rng(4), behaviour, members, MONDAY, 0, FakeCalendar())
    same_second = np.diff(draws.second) == 0
    assert same_second.sum() > 1_000  # the tie-breaks are really exercised
    assert_sorted_by_second_flow_member(draws)


def test_draw_day_is_deterministic() -> None:
    """The same members and generator seed give identical arrays; another seed does not."""
    behaviour = Behaviour()
    calendar = FakeCalendar()
    runs = [
        draw_day(np.random.default_rng(s), behaviour, make_members(7, 3_000), MONDAY, 0, calendar)
        for s in (42, 42, 43)
    ]
    a, b, c = runs
    for field in ("second", "flow", "member", "amount_cents"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert len(a) != len(c) or not np.array_equal(a.amount_cents, c.amount_cents)


def test_draw_day_seeded_pin() -> None:
    """Regression guard: a fixed seed gives this many rows and this total (generator use)."""
    draws = draw_day(
        np.random.default_rng(2024), Behaviour(), make_members(1, 1_000), MONDAY, 0, FakeCalendar()
    )
    assert (len(draws), int(draws.amount_cents.sum())) == (1486, 35_646_472)


def test_draw_day_without_members_is_empty() -> None:
    """A tenant with no members yet draws an empty day with the right dtypes."""
    draws = draw_day(
        np.random.default_rng(0), Behaviour(), MemberArrays(), MONDAY, 0, FakeCalendar()
    )
    assert len(draws) == 0
    assert draws.second.dtype == np.int32
    assert draws.amount_cents.dtype == np.int64


def test_inactive_members_and_savings_eligibility() -> None:
    """Inactive members draw nothing; only members with savings accounts sweep to savings."""
    behaviour = Behaviour()
    members = make_members(8, 4_000)
    members.active[::2] = False
    calendar = FakeCalendar()
    rng = np.random.default_rng(9)
    seen_savers: list[np.ndarray] = []
    for i in range(14):  # a full pay cycle, so every employed active member is paid once
        day = MONDAY + datetime.timedelta(days=i)
        draws = draw_day(rng, behaviour, members, day, i, calendar)
        assert members.active[draws.member].all()
        seen_savers.append(draws.member[draws.flow == Flow.SAVINGS])
    savers = np.concatenate(seen_savers)
    assert savers.size > 500
    assert members.has_savings[savers].all()


# --- draw_day: the law of counts and amounts ------------------------------------------------


def eligible_mask(members: MemberArrays, flow: Flow) -> np.ndarray:
    """Members a memoryless flow is drawn for."""
    mask = members.active.copy()
    if flow is Flow.SAVINGS:
        mask &= members.has_savings
    return mask


@pytest.mark.parametrize("flow", MEMORYLESS_FLOWS, ids=lambda f: f.name)
def test_amount_per_member_day_in_ci(flow: Flow) -> None:
    """Mean amount per eligible member-day lies in the CI of expected_amount_per_member_day.

    The interval is conditional on the drawn members: the sum over members of
    a compound Poisson has variance rate * sum_i E[A_i^2], with
    E[A_i^2] = (scale_i * mean)^2 * (1 + cv^2).
    """
    behaviour = Behaviour()
    day = datetime.date(2024, 12, 14)  # a Saturday in December: both multipliers != 1
    params = flow_params(behaviour, flow)
    mean_amount = float(params.mean_amount * 100)
    z = z_crit(len(SEEDS) * len(MEMORYLESS_FLOWS))
    for seed in SEEDS:
        members = make_members(100 + seed, 20_000)
        members.active[:1_000] = False
        mask = eligible_mask(members, flow)
        scale = members.spend_scale[mask] if flow in SCALED_FLOWS else np.ones(mask.sum())
        draws = draw_day(np.random.default_rng(seed), behaviour, members, day, 3, FakeCalendar())
        observed = draws.amount_cents[draws.flow == flow].sum() / mask.sum()
        expected = expected_amount_per_member_day(
            behaviour, flow, day, mean_spend_scale=float(members.spend_scale[mask].mean())
        )
        rate = expected_count_per_member_day(behaviour, flow, day)
        variance = rate * mean_amount**2 * (1 + params.cv**2) * float((scale**2).sum())
        assert abs(observed - expected) <= z * math.sqrt(variance) / mask.sum()


def test_npp_in_is_not_scaled_by_income_but_card_is() -> None:
    """Quadrupling every spend scale quadruples card amounts but leaves NPP-in amounts alone."""
    behaviour = Behaviour()
    day = datetime.date(2024, 6, 5)
    z = z_crit(2 * len(SEEDS))
    for seed in SEEDS:
        members = make_members(seed, 20_000)
        members.spend_scale[:] = 4.0
        draws = draw_day(np.random.default_rng(seed), behaviour, members, day, 2, FakeCalendar())
        for flow, factor in ((Flow.CARD, 4.0), (Flow.NPP_IN, 1.0)):
            params = flow_params(behaviour, flow)
            amounts = draws.amount_cents[draws.flow == flow]
            mean = float(params.mean_amount * 100) * factor
            se = params.cv * mean / math.sqrt(amounts.size)
            assert abs(amounts.mean() - mean) <= z * se, flow


def test_member_counts_are_poisson() -> None:
    """Per-member card counts have the expected mean and a chi-square dispersion index."""
    behaviour = Behaviour()
    day = datetime.date(2024, 6, 7)  # a Friday
    n = 20_000
    rate = expected_count_per_member_day(behaviour, Flow.CARD, day)
    half_alpha = FAMILY_ALPHA / (4 * len(SEEDS))
    lo, hi = stats.chi2.ppf(half_alpha, n - 1), stats.chi2.isf(half_alpha, n - 1)
    z = z_crit(2 * len(SEEDS))
    for seed in SEEDS:
        members = make_members(seed, n)
        draws = draw_day(np.random.default_rng(seed), behaviour, members, day, 4, FakeCalendar())
        counts = np.bincount(draws.member[draws.flow == Flow.CARD], minlength=n)
        assert abs(counts.mean() - rate) <= z * math.sqrt(rate / n)
        dispersion = float(((counts - counts.mean()) ** 2).sum() / counts.mean())
        assert lo <= dispersion <= hi


def test_daily_totals_are_poisson_across_seeds() -> None:
    """A day's total card count varies across seeds like a Poisson (chi-square dispersion)."""
    behaviour = Behaviour()
    members = make_members(0, 500)
    day = datetime.date(2024, 6, 5)
    lam = expected_count_per_member_day(behaviour, Flow.CARD, day) * members.n
    totals = np.array(
        [
            (
                draw_day(np.random.default_rng(s), behaviour, members, day, 9, FakeCalendar()).flow
                == Flow.CARD
            ).sum()
            for s in range(400)
        ],
        dtype=np.float64,
    )
    assert abs(totals.mean() - lam) <= z_crit(2) * math.sqrt(lam / totals.size)
    dispersion = float(((totals - lam) ** 2).sum() / lam)  # chi-square(400) with known mean
    lo = stats.chi2.ppf(FAMILY_ALPHA / 4, totals.size)
    hi = stats.chi2.isf(FAMILY_ALPHA / 4, totals.size)
    assert lo <= dispersion <= hi


def test_saturday_busier_than_sunday() -> None:
    """Saturday's card count beats Sunday's in a one-sided conditional binomial test."""
    behaviour = Behaviour()
    saturday, sunday = datetime.date(2024, 6, 15), datetime.date(2024, 6, 16)
    calendar = FakeCalendar()
    for seed in SEEDS:
        members = make_members(seed, 3_000)
        rng = np.random.default_rng(seed)
        sat = draw_day(rng, behaviour, members, saturday, 5, calendar)
        sun = draw_day(rng, behaviour, members, sunday, 6, calendar)
        k_sat = int((sat.flow == Flow.CARD).sum())
        k_sun = int((sun.flow == Flow.CARD).sum())
        # Under equal rates, Saturday's share of the two days' total is Binomial(., 1/2).
        result = stats.binomtest(k_sat, k_sat + k_sun, 0.5, alternative="greater")
        assert result.pvalue < FAMILY_ALPHA


def test_daily_counts_follow_weekday_and_month_multipliers() -> None:
    """Each day's count per flow lies in the Poisson CI of eligible * rate * multipliers."""
    behaviour = Behaviour()
    days = [datetime.date(2024, 2, 5) + datetime.timedelta(days=i) for i in range(7)]
    days += [datetime.date(2024, 12, 20), datetime.date(2024, 12, 22)]
    seeds = range(3)
    z = z_crit(len(seeds) * len(days) * len(MEMORYLESS_FLOWS))
    for seed in seeds:
        members = make_members(seed, 10_000)
        rng = np.random.default_rng(seed)
        for i, day in enumerate(days):
            draws = draw_day(rng, behaviour, members, day, i, FakeCalendar())
            for flow in MEMORYLESS_FLOWS:
                lam = (
                    expected_count_per_member_day(behaviour, flow, day)
                    * eligible_mask(members, flow).sum()
                )
                count = int((draws.flow == flow).sum())
                assert abs(count - lam) <= z * math.sqrt(lam), (day, flow)


def test_expected_amount_includes_multipliers() -> None:
    """The configured rate is at multipliers 1.0; expectations multiply in weekday and month."""
    behaviour = Behaviour()
    saturday_in_december = datetime.date(2024, 12, 14)
    expected = expected_amount_per_member_day(behaviour, Flow.CARD, saturday_in_december, 1.5)
    assert expected == pytest.approx(1.15 * 1.12 * 1.25 * 4100 * 1.5)
    # NPP in ignores the spend scale.
    wednesday_in_august = datetime.date(2024, 8, 7)
    npp_in = expected_amount_per_member_day(behaviour, Flow.NPP_IN, wednesday_in_august, 3.0)
    assert npp_in == pytest.approx(0.06 * 12_000)
    flat = behaviour.model_copy(
        update={
            "weekday_multipliers": (1.0,) * 7,
            "month_multipliers": (1.0,) * 12,
            "bpay": FlowParams(rate_per_day=0.2, mean_amount=Decimal("100.00"), cv=1.0),
        }
    )
    assert expected_amount_per_member_day(flat, Flow.BPAY, saturday_in_december) == pytest.approx(
        0.2 * 10_000
    )


def test_expected_salary_per_employed_member_day() -> None:
    """The salary expectation is E[income] * net_ratio / 365.25, matching drawn members."""
    behaviour = Behaviour()
    s = behaviour.income.sigma
    mean_income = 6_700_000 * math.exp(s * s / 2)
    expected = expected_amount_per_member_day(behaviour, Flow.SALARY, MONDAY)
    assert expected == pytest.approx(mean_income * 0.76 / 365.25, rel=1e-12)
    assert expected_count_per_member_day(behaviour, Flow.SALARY, MONDAY) == pytest.approx(1 / 14)
    n = 40_000
    cv = math.sqrt(math.expm1(s * s))
    z = z_crit(len(SEEDS))
    for seed in SEEDS:
        members = make_members(seed, n)
        employed = members.employed
        per_day = members.net_pay_cents(behaviour)[employed] / 14
        se = cv * expected / math.sqrt(int(employed.sum()))
        assert abs(per_day.mean() - expected) <= z * se


# --- salary: conservation over holidays -----------------------------------------------------


def run_salaries(
    behaviour: Behaviour, calendar: FakeCalendar, start: datetime.date, days: int, n: int
) -> tuple[MemberArrays, Counter[tuple[int, int]], list[DayDraws]]:
    """Draw `days` days and collect (member, day index) of every salary row."""
    members = make_members(77, n, behaviour)
    members.active[:50] = False  # churned members are never paid
    rng = np.random.default_rng(78)
    paid: Counter[tuple[int, int]] = Counter()
    salary_days: list[DayDraws] = []
    for i in range(days):
        day = start + datetime.timedelta(days=i)
        draws = draw_day(rng, behaviour, members, day, i, calendar)
        is_salary = draws.flow == Flow.SALARY
        if not calendar.is_business_day(day):
            assert not is_salary.any(), day
        paid.update((int(m), i) for m in draws.member[is_salary])
        salary_days.append(
            DayDraws(
                draws.second[is_salary],
                draws.flow[is_salary],
                draws.member[is_salary],
                draws.amount_cents[is_salary],
            )
        )
    return members, paid, salary_days


def expected_salaries(
    members: MemberArrays,
    behaviour: Behaviour,
    calendar: FakeCalendar,
    start: datetime.date,
    days: int,
) -> Counter[tuple[int, int]]:
    """Every nominal payday in the window, moved back to the business day at or before it."""
    period = behaviour.salary.period_days
    business = [calendar.is_business_day(start + datetime.timedelta(days=i)) for i in range(days)]
    previous_business = []
    last = None
    for i in range(days):
        if business[i]:
            last = i
        previous_business.append(last)
    expected: Counter[tuple[int, int]] = Counter()
    for m in np.flatnonzero(members.employed & members.active):
        for d in range(int(members.pay_phase[m]), days, period):
            assert previous_business[d] is not None
            expected[(int(m), previous_business[d])] += 1
    return expected


AU_2024_HOLIDAYS = {
    datetime.date(2024, 1, 1),
    datetime.date(2024, 1, 26),
    datetime.date(2024, 3, 29),
    datetime.date(2024, 4, 1),
    datetime.date(2024, 4, 25),
    datetime.date(2024, 6, 10),
    datetime.date(2024, 8, 5),
    datetime.date(2024, 10, 7),
    datetime.date(2024, 12, 25),
    datetime.date(2024, 12, 26),
    datetime.date(2025, 1, 1),
}


def test_salary_paid_once_per_nominal_payday_moved_to_previous_business_day() -> None:
    """Over a year with holidays, each employed member is paid once per nominal payday.

    The window starts and ends so that every nominal payday's previous business
    day is inside it (it starts on a business day and the day after it ends is
    one), which makes the expected multiset exact.
    """
    behaviour = Behaviour()
    calendar = FakeCalendar(AU_2024_HOLIDAYS)
    start = datetime.date(2024, 1, 2)  # Tuesday; 1 January is a holiday
    days = 412  # ends Sunday 2025-02-16
    assert calendar.is_business_day(start)
    assert calendar.is_business_day(start + datetime.timedelta(days=days))
    members, paid, salary_days = run_salaries(behaviour, calendar, start, days, 2_000)
    expected = expected_salaries(members, behaviour, calendar, start, days)
    assert sum(paid.values()) > 40_000
    assert paid == expected
    moved = sum(c for (_, d), c in expected.items() if d % 14 != 0)
    assert moved > 0  # holidays and weekends really moved some pays
    pay = members.net_pay_cents(behaviour)
    for draws in salary_days:
        assert np.array_equal(draws.amount_cents, pay[draws.member])
        if len(draws):
            assert draws.second.min() >= 3_600
            assert draws.second.max() < 5 * 3_600


def test_salary_long_shutdown_pays_twice_on_one_day() -> None:
    """A non-business stretch longer than the pay period still pays every nominal payday."""
    behaviour = Behaviour(salary=SalaryParams(period_days=7))
    shutdown = {datetime.date(2024, 12, 23) + datetime.timedelta(days=i) for i in range(12)}
    calendar = FakeCalendar(shutdown)
    start = datetime.date(2024, 11, 4)  # a Monday
    days = 77  # ends Sunday 2025-01-19
    assert calendar.is_business_day(start + datetime.timedelta(days=days))
    members, paid, _ = run_salaries(behaviour, calendar, start, days, 1_000)
    expected = expected_salaries(members, behaviour, calendar, start, days)
    assert paid == expected
    # Friday 20 December covers 17 days of nominal paydays: two or three each.
    friday = (datetime.date(2024, 12, 20) - start).days
    on_friday = Counter({k: v for k, v in paid.items() if k[1] == friday})
    assert set(on_friday.values()) == {2, 3}


# --- throughput ------------------------------------------------------------------------------


def test_throughput_100k_member_day() -> None:
    """A 100k-member day draws the expected number of rows; prints the draws per second."""
    behaviour = Behaviour()
    members = make_members(0, 100_000)
    calendar = FakeCalendar()
    rng = np.random.default_rng(1)
    days = [MONDAY + datetime.timedelta(days=i) for i in range(14)]
    total = 0
    started = time.perf_counter()  # timing instrumentation only; never feeds the draws
    for i, day in enumerate(days):
        total += len(draw_day(rng, behaviour, members, day, i, calendar))
    elapsed = time.perf_counter() - started
    print(
        f"\n100k members: {total / len(days):,.0f} draws/day, "
        f"{elapsed / len(days) * 1e3:.1f} ms/day, {total / elapsed / 1e6:.1f} M draws/s"
    )
    lam = sum(
        expected_count_per_member_day(behaviour, flow, day) * eligible_mask(members, flow).sum()
        for day in days
        for flow in MEMORYLESS_FLOWS
    )
    salaries = int(members.employed.sum())  # one fortnight: each employed member paid once
    assert abs(total - salaries - lam) <= z_crit(1) * math.sqrt(lam)
