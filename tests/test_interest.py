"""Tests of models.interest: daily ACT/365 accrual is exact and crediting loses nothing.

The reference is plain `Fraction` arithmetic on the definition (balance x
rate / 100 / 365 per day); the scalar and vectorised paths are checked
against it, and against each other, over random balance paths from fixed
numpy seeds.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from models.interest import (
    UNITS_PER_CENT,
    DepositAccrual,
    accrue_day,
    bonus_conditions_met,
    bonus_saver_rate,
    credit_month,
    daily_interest_exact,
    daily_interest_units,
    rate_units,
)


def random_rate(rng: np.random.Generator, top_percent: int = 15) -> Decimal:
    """A rate in [0, top] % with four decimal places, drawn exactly as an integer."""
    return Decimal(int(rng.integers(0, top_percent * 10**4 + 1))) / 10**4


def days_of(year: int) -> list[date]:
    """Every calendar day of a year."""
    first = date(year, 1, 1)
    count = (date(year + 1, 1, 1) - first).days
    return [first + timedelta(days=i) for i in range(count)]


def is_month_end(day: date) -> bool:
    """Whether interest is credited at the close of this day (last day of its month)."""
    return (day + timedelta(days=1)).month != day.month


# --- rates and units ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "units"),
    [
        (Decimal("3.85"), 38_500),
        (Decimal("0"), 0),
        (Decimal("4.9500"), 49_500),
        (Decimal("0.0001"), 1),
        (Decimal("1E+1"), 100_000),
    ],
)
def test_rate_units_are_exact(rate: Decimal, units: int) -> None:
    """A percentage with at most four places becomes the exact integer of 10^-4 percent."""
    assert rate_units(rate) == units


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        (Decimal("1.23456"), ValueError),
        (Decimal("-0.01"), ValueError),
        (Decimal("NaN"), ValueError),
        (Decimal("Infinity"), ValueError),
        (3.85, TypeError),
        ("3.85", TypeError),
    ],
)
def test_rates_that_cannot_accrue_exactly_are_refused(rate: object, error: type) -> None:
    """More than four places, negative, non-finite, float or text rates raise."""
    with pytest.raises(error):
        rate_units(rate)  # type: ignore[arg-type]


def test_units_are_exact_fractions_of_a_cent() -> None:
    """For random balances and rates, units / UNITS_PER_CENT equals the Fraction definition."""
    rng = np.random.default_rng(20)
    for _ in range(2_000):
        balance = int(rng.integers(-(10**8), 10**10))
        rate = random_rate(rng, 20)
        exact = Fraction(max(balance, 0)) * Fraction(rate) / 36_500
        assert daily_interest_exact(balance, rate) == exact
        assert Fraction(daily_interest_units(balance, rate), UNITS_PER_CENT) == exact


def test_one_day_on_ten_thousand_dollars_at_365_percent_hundredths() -> None:
    """AUD 10,000 at 3.65 % earns exactly AUD 1.00 a day under ACT/365."""
    account = DepositAccrual()
    account.accrue_day(1_000_000, Decimal("3.65"))
    assert account.accrued == 100
    assert account.credit_month() == 100
    assert account.remainder_units == 0


def test_negative_balances_earn_nothing() -> None:
    """An overdrawn end-of-day balance accrues zero, on both paths."""
    assert daily_interest_units(-500_00, Decimal("5")) == 0
    remainders = accrue_day(
        np.array([-500_00, 0, 1], dtype=np.int64), Decimal("5"), np.zeros(3, dtype=np.int64)
    )
    assert remainders.tolist() == [0, 0, 5 * 10**4]


def test_float_money_is_refused() -> None:
    """Float balances or remainders are refused outright; money is int cents or int64."""
    with pytest.raises(TypeError):
        daily_interest_units(100.0, Decimal("5"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DepositAccrual().accrue_day(True, Decimal("5"))
    zeros = np.zeros(2, dtype=np.int64)
    with pytest.raises(TypeError):
        accrue_day(np.array([1.0, 2.0]), Decimal("5"), zeros)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        accrue_day(zeros, Decimal("5"), zeros.astype(np.int32))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        credit_month(zeros.astype(np.float64))  # type: ignore[arg-type]


# --- a year of accrual -------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2025, 2028])
def test_a_year_credited_monthly_is_the_floor_of_the_exact_interest(year: int) -> None:
    """Random balance paths and mid-year rate moves, against a Fraction reference.

    After every month's credit, total credited == floor(exact interest to
    date) and the carried remainder is below a cent; at year end credited +
    carried == the exact total. Checked for a common and a leap year.
    """
    rng = np.random.default_rng(year)
    days = days_of(year)
    for _ in range(40):
        balance = int(rng.integers(0, 5 * 10**7))
        rates = [random_rate(rng) for _ in range(3)]
        account = DepositAccrual()
        exact_total = Fraction(0)
        credited = 0
        for index, day in enumerate(days):
            balance = max(0, balance + int(rng.normal(0, 30_000)))
            rate = rates[index * len(rates) // len(days)]
            account.accrue_day(balance, rate)
            exact_total += Fraction(balance) * Fraction(rate) / 36_500
            if is_month_end(day):
                credited += account.credit_month()
                assert credited == math.floor(exact_total)
                assert 0 <= account.accrued < 1
        assert credited + account.accrued == exact_total


def test_a_leap_year_pays_366_days_of_act_365_interest() -> None:
    """A constant AUD 36,500 at 1 % earns AUD 1.00 a day: AUD 366 in 2028, AUD 365 in 2025."""
    for year, expected in [(2025, 365_00), (2028, 366_00)]:
        account = DepositAccrual()
        credited = 0
        for day in days_of(year):
            account.accrue_day(3_650_000, Decimal("1"))
            if is_month_end(day):
                credited += account.credit_month()
        assert credited == expected


def test_sub_cent_interest_carries_until_it_makes_a_cent() -> None:
    """A balance of 1 cent at 1 % earns 1/36,500 cent a day: nothing for 100 years, then 1 cent."""
    account = DepositAccrual()
    credits = []
    for _ in range(36_500):
        account.accrue_day(1, Decimal("1"))
        credits.append(account.credit_month())
    assert sum(credits) == 1
    assert credits[-1] == 1
    assert account.remainder_units == 0


# --- the vectorised path -----------------------------------------------------------------------


def test_vectorised_path_equals_the_scalar_reference() -> None:
    """500 accounts for a leap year, rate changing monthly: identical units and credits daily."""
    rng = np.random.default_rng(30)
    count = 500
    balances = rng.integers(-(10**5), 10**9, size=count, dtype=np.int64)
    balances[:5] = [0, 1, -1, 10**10, 999_999]
    remainders = np.zeros(count, dtype=np.int64)
    scalar = [DepositAccrual() for _ in range(count)]
    rate = random_rate(rng)
    for day in days_of(2024):
        if day.day == 1:
            rate = random_rate(rng, 20)
        balances = balances + rng.integers(-50_000, 50_001, size=count, dtype=np.int64)
        remainders = accrue_day(balances, rate, remainders)
        for account, balance in zip(scalar, balances.tolist(), strict=True):
            account.accrue_day(balance, rate)
        if is_month_end(day):
            cents, remainders = credit_month(remainders)
            assert cents.dtype == np.int64
            assert remainders.dtype == np.int64
            assert cents.tolist() == [account.credit_month() for account in scalar]
        assert remainders.tolist() == [account.remainder_units for account in scalar]


def test_accrue_day_does_not_modify_its_inputs() -> None:
    """The caller's balances and remainders arrays are left as they were."""
    balances = np.array([100, -5, 7], dtype=np.int64)
    remainders = np.array([1, 2, 3], dtype=np.int64)
    result = accrue_day(balances, Decimal("2.5"), remainders)
    assert balances.tolist() == [100, -5, 7]
    assert remainders.tolist() == [1, 2, 3]
    assert result.tolist() == [1 + 100 * 25_000, 2, 3 + 7 * 25_000]


def test_int64_headroom_covers_a_year_of_100m_at_20_percent() -> None:
    """AUD 100M at 20 % accrues a whole year without crediting and stays exact in int64."""
    balances = np.array([10**10, 10**10 - 1], dtype=np.int64)
    remainders = np.zeros(2, dtype=np.int64)
    for _ in range(365):
        remainders = accrue_day(balances, Decimal("20"), remainders)
    cents, left = credit_month(remainders)
    expected = [Fraction(b) * 20 / 100 for b in balances.tolist()]  # a year of ACT/365 days
    assert cents.tolist() == [math.floor(e) for e in expected]
    assert [Fraction(u, UNITS_PER_CENT) for u in left.tolist()] == [
        e - math.floor(e) for e in expected
    ]


def test_accrue_day_raises_instead_of_overflowing() -> None:
    """A product that would leave int64 raises OverflowError; nothing wraps silently."""
    balances = np.array([10**14], dtype=np.int64)
    with pytest.raises(OverflowError):
        accrue_day(balances, Decimal("20"), np.zeros(1, dtype=np.int64))
    near_top = np.array([np.iinfo(np.int64).max - 10], dtype=np.int64)
    with pytest.raises(OverflowError):
        accrue_day(np.array([1], dtype=np.int64), Decimal("0.0011"), near_top)


def test_accrue_day_refuses_mismatched_or_negative_remainders() -> None:
    """Shapes must match and carried remainders cannot be negative."""
    with pytest.raises(ValueError, match="shapes"):
        accrue_day(np.zeros(2, dtype=np.int64), Decimal("1"), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="negative"):
        accrue_day(np.zeros(1, dtype=np.int64), Decimal("1"), np.array([-1], dtype=np.int64))


def test_empty_arrays_are_fine() -> None:
    """A tenant with no savings accounts accrues and credits nothing, without error."""
    empty = np.zeros(0, dtype=np.int64)
    assert accrue_day(empty, Decimal("5"), empty).shape == (0,)
    cents, left = credit_month(empty)
    assert cents.shape == left.shape == (0,)


# --- bonus saver -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deposit_made", "withdrawal_made", "rate"),
    [
        (True, False, Decimal("4.95")),
        (True, True, Decimal("1.10")),
        (False, False, Decimal("1.10")),
        (False, True, Decimal("1.10")),
    ],
)
def test_bonus_saver_rate_truth_table(
    deposit_made: bool, withdrawal_made: bool, rate: Decimal
) -> None:
    """Base 1.10 + bonus 3.85 only with a deposit and no withdrawal this month."""
    result = bonus_saver_rate(
        Decimal("1.10"),
        Decimal("3.85"),
        deposit_made=deposit_made,
        withdrawal_made=withdrawal_made,
    )
    assert result == rate
    assert isinstance(result, Decimal)


def test_bonus_conditions_follow_the_product_list() -> None:
    """Only the listed conditions count; no conditions always earn; unknown ones raise."""
    assert bonus_conditions_met(["DEPOSIT_MONTHLY"], deposit_made=True, withdrawal_made=True)
    assert bonus_conditions_met(["NO_WITHDRAWALS"], deposit_made=False, withdrawal_made=False)
    assert not bonus_conditions_met(["NO_WITHDRAWALS"], deposit_made=True, withdrawal_made=True)
    assert bonus_conditions_met([], deposit_made=False, withdrawal_made=True)
    with pytest.raises(ValueError, match="unknown"):
        bonus_conditions_met(["AGE_UNDER_30"], deposit_made=True, withdrawal_made=False)


def test_bonus_rates_must_be_exact() -> None:
    """A float base or bonus rate is refused like any other rate."""
    with pytest.raises(TypeError):
        bonus_saver_rate(1.1, Decimal("3.85"), deposit_made=True, withdrawal_made=False)  # type: ignore[arg-type]
