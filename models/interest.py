"""Exact deposit interest: daily accrual on end-of-day balances, credited monthly.

Savings products accrue interest every day on the end-of-day balance and
credit it once a month (a PostEntry from `GL_INTEREST_EXPENSE`). Over a year
and a loan book's worth of accounts, rounding each day's interest to the
cent would lose or invent real money, so nothing is rounded until the credit,
and what is not credited carries over.

Day count: **ACT/365 (fixed)**. A day's interest is ``balance × rate / 365``
whatever the year, as Australian deposit-takers quote and calculate it; in a
leap year the 366th day earns interest too (the year pays ``366/365`` of the
nominal rate).

Exactness by construction: the sub-cent unit is chosen so that a day's
interest is a whole number of units, never an approximation. A rate is an
exact `Decimal` percentage with at most `RATE_DECIMALS` (4) decimal places,
so ``rate_units = rate × 10^4`` is an integer, and

    daily interest (cents) = balance × rate / 100 / 365
                           = balance × rate_units / (365 × 10^6)

With one unit = ``1 / UNITS_PER_CENT`` cent, ``UNITS_PER_CENT = 365 × 10^6``,
a day's interest is ``balance × rate_units`` units: an integer product, no
division, no rounding. (A decimal unit such as 10^-9 cent could not be exact:
the 365 has the factor 73.)

Crediting rule: **floor to the cent, remainder carried forward.** The credit
is the whole cents accrued so far; the fraction of a cent stays in the
accumulator for next month. Floor rather than nearest because (a) the
credit union never pays interest before it is earned, so the ledger never
needs to claw back a half-cent rounded up, and (b) with the carry, the total
credited after any month equals ``floor(exact interest earned to date)``
exactly: nothing is ever lost, only deferred by less than one cent.

int64 headroom (the vectorised path): a balance up to AUD 100M is
``10^10`` cents and a rate up to 20 % is ``2 × 10^5`` rate units, so one day
adds at most ``2 × 10^15`` units. A remainder after crediting is below
``UNITS_PER_CENT = 3.65 × 10^8``; a 31-day month adds at most
``6.2 × 10^16``, and even a full year without crediting (``7.3 × 10^17``) is
more than ten times below the int64 maximum ``9.22 × 10^18``. `accrue_day`
still checks the bound on every call and raises `OverflowError` rather than
wrap silently.

Bonus savers (the skeleton's SAVER product: ``DEPOSIT_MONTHLY`` and
``NO_WITHDRAWALS``) earn base + bonus for a month in which the conditions
hold (`bonus_saver_rate`). Because units add exactly, a model that only
knows at month end whether the bonus is earned can accrue the bonus part in
a second remainder array at the bonus rate and add it to the base remainders
of the eligible accounts before `credit_month` (discarding it for the rest).

Balances are the member's-eye view (deposits positive). An overdrawn
(negative) end-of-day balance earns nothing here; debit interest is lending.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BONUS_CONDITIONS",
    "DAYS_PER_YEAR",
    "RATE_DECIMALS",
    "UNITS_PER_CENT",
    "DepositAccrual",
    "accrue_day",
    "bonus_conditions_met",
    "bonus_saver_rate",
    "credit_month",
    "daily_interest_exact",
    "daily_interest_units",
    "rate_units",
]

#: ACT/365: the day-count denominator, leap year or not.
DAYS_PER_YEAR: Final = 365
#: Decimal places a rate (in percent) may have and still accrue exactly.
RATE_DECIMALS: Final = 4
_RATE_SCALE: Final = 10**RATE_DECIMALS
#: Sub-cent units per cent: 365 days × 100 (percent) × 10^4 (rate decimals).
UNITS_PER_CENT: Final = DAYS_PER_YEAR * 100 * _RATE_SCALE
_INT64_MAX: Final = int(np.iinfo(np.int64).max)

#: Bonus conditions this module knows, as the products spell them.
BONUS_CONDITIONS: Final = frozenset({"DEPOSIT_MONTHLY", "NO_WITHDRAWALS"})

Int64Array = npt.NDArray[np.int64]


def rate_units(annual_rate: Decimal) -> int:
    """An annual percentage as an integer number of 10^-4 percent.

    Args:
        annual_rate: percent per annum, a finite non-negative `Decimal` with
            at most four decimal places (``Decimal("3.85")`` gives 38,500).

    Returns:
        ``annual_rate × 10^4`` exactly.

    Raises:
        TypeError: if the rate is not a `Decimal` (a float is not exact).
        ValueError: if it is negative, not finite, or has more than four
            decimal places (it could not accrue exactly; refusing beats a
            silent rounding of every account's interest).
    """
    if not isinstance(annual_rate, Decimal):
        raise TypeError(f"annual_rate must be a Decimal percentage, got {type(annual_rate)!r}")
    if not annual_rate.is_finite() or annual_rate < 0:
        raise ValueError(f"annual_rate must be finite and >= 0, got {annual_rate}")
    scaled = annual_rate * _RATE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"annual_rate {annual_rate} has more than {RATE_DECIMALS} decimal places")
    return int(scaled)


def _check_cents(balance_cents: int) -> None:
    """Refuse anything but int cents (bools and floats included)."""
    if not isinstance(balance_cents, int) or isinstance(balance_cents, bool):
        raise TypeError(f"balance_cents must be int cents, got {type(balance_cents)!r}")


def daily_interest_exact(balance_cents: int, annual_rate: Decimal) -> Fraction:
    """One day's interest in cents, as an exact fraction (the reference definition).

    Args:
        balance_cents: end-of-day balance; negative balances earn nothing.
        annual_rate: percent per annum.

    Returns:
        ``max(balance, 0) × rate / 100 / 365`` cents.
    """
    _check_cents(balance_cents)
    rate_units(annual_rate)  # same validation as the integer paths
    return Fraction(max(balance_cents, 0)) * Fraction(annual_rate) / (100 * DAYS_PER_YEAR)


def daily_interest_units(balance_cents: int, annual_rate: Decimal) -> int:
    """One day's interest in sub-cent units (``1 / UNITS_PER_CENT`` cent), exactly.

    Args:
        balance_cents: end-of-day balance; negative balances earn nothing.
        annual_rate: percent per annum, at most four decimal places.

    Returns:
        ``max(balance, 0) × rate_units(annual_rate)``.
    """
    _check_cents(balance_cents)
    return max(balance_cents, 0) * rate_units(annual_rate)


@dataclass(slots=True)
class DepositAccrual:
    """One account's accrued-but-not-credited interest (the scalar path).

    Python integers cannot overflow, so this is also the reference the
    vectorised path is tested against.

    Attributes:
        remainder_units: interest accrued and not yet credited, in units of
            ``1 / UNITS_PER_CENT`` cent (below one cent right after a credit).
    """

    remainder_units: int = 0

    @property
    def accrued(self) -> Fraction:
        """The accrued, uncredited interest in cents, exactly."""
        return Fraction(self.remainder_units, UNITS_PER_CENT)

    def accrue_day(self, balance_cents: int, annual_rate: Decimal) -> int:
        """Accrue one day's interest on an end-of-day balance.

        Args:
            balance_cents: the end-of-day balance.
            annual_rate: the rate in force that day, percent per annum.

        Returns:
            The units accrued for the day.
        """
        units = daily_interest_units(balance_cents, annual_rate)
        self.remainder_units += units
        return units

    def credit_month(self) -> int:
        """Take the whole cents accrued; keep the fraction of a cent for next month.

        Returns:
            Cents to credit (``floor`` of the accrued interest).
        """
        cents, self.remainder_units = divmod(self.remainder_units, UNITS_PER_CENT)
        return cents


def _check_int64(name: str, array: np.ndarray) -> None:
    """Refuse arrays that are not int64 money (float money is never accepted)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.int64:
        raise TypeError(f"{name} must be an int64 numpy array")


def accrue_day(balances_cents: Int64Array, rate: Decimal, remainders: Int64Array) -> Int64Array:
    """Accrue one day's interest for many accounts at one rate, exactly, in int64.

    The day's interest of every account is ``max(balance, 0) × rate_units``
    units (module docstring); adding it to the carried remainders is the
    whole computation, so the result equals `DepositAccrual` account by
    account.

    Args:
        balances_cents: end-of-day balances, int64 cents.
        rate: the rate in force that day, percent per annum.
        remainders: accrued uncredited interest per account, int64 units
            (zeros for new accounts); not modified.

    Returns:
        The new remainders (a new int64 array).

    Raises:
        TypeError: if an array is not int64.
        ValueError: on mismatched shapes or negative remainders.
        OverflowError: if the sum could leave int64 (see the headroom note).
    """
    _check_int64("balances_cents", balances_cents)
    _check_int64("remainders", remainders)
    if balances_cents.shape != remainders.shape:
        raise ValueError(f"shapes differ: {balances_cents.shape} vs {remainders.shape}")
    units = rate_units(rate)
    if remainders.size == 0:
        return remainders.copy()
    if int(remainders.min()) < 0:
        raise ValueError("remainders must not be negative")
    top_balance = max(int(balances_cents.max()), 0)
    if top_balance * units + int(remainders.max()) > _INT64_MAX:
        raise OverflowError(
            f"a balance of {top_balance} cents at {rate}% could overflow int64; credit more often"
        )
    accrued = np.maximum(balances_cents, 0)
    accrued *= units
    accrued += remainders
    return accrued


def credit_month(remainders: Int64Array) -> tuple[Int64Array, Int64Array]:
    """Whole cents to credit per account, and the sub-cent remainders to carry.

    Args:
        remainders: accrued uncredited interest per account, int64 units.

    Returns:
        ``(cents_to_credit, new_remainders)``, both int64: the floor of each
        account's accrued interest in cents and what is left (below one cent).
    """
    _check_int64("remainders", remainders)
    cents, left = np.divmod(remainders, UNITS_PER_CENT)
    return cents, left


def bonus_conditions_met(
    conditions: Iterable[str], *, deposit_made: bool, withdrawal_made: bool
) -> bool:
    """Whether a month's activity meets a bonus saver's conditions.

    Args:
        conditions: the product's ``bonus_conditions`` (e.g. ``DEPOSIT_MONTHLY``:
            at least one deposit this month; ``NO_WITHDRAWALS``: none this month).
        deposit_made: the account received a deposit this month.
        withdrawal_made: money left the account this month.

    Returns:
        True when every condition holds (an empty list always holds).

    Raises:
        ValueError: for a condition this module does not know, so a new
            product condition cannot be silently treated as met.
    """
    met = True
    for condition in conditions:
        if condition == "DEPOSIT_MONTHLY":
            met = met and deposit_made
        elif condition == "NO_WITHDRAWALS":
            met = met and not withdrawal_made
        else:
            raise ValueError(f"unknown bonus condition {condition!r}")
    return met


def bonus_saver_rate(
    base_rate: Decimal,
    bonus_rate: Decimal,
    *,
    deposit_made: bool,
    withdrawal_made: bool,
    conditions: Iterable[str] = ("DEPOSIT_MONTHLY", "NO_WITHDRAWALS"),
) -> Decimal:
    """The rate a bonus saver earns for a month: base, plus bonus if the conditions hold.

    Args:
        base_rate: always paid, percent per annum.
        bonus_rate: added when the conditions are met, percent per annum.
        deposit_made: the account received a deposit this month.
        withdrawal_made: money left the account this month.
        conditions: the product's bonus conditions (default: the skeleton
            SAVER's deposit-monthly and no-withdrawals).

    Returns:
        ``base_rate + bonus_rate`` or ``base_rate``, exact.
    """
    rate_units(base_rate)
    rate_units(bonus_rate)
    met = bonus_conditions_met(
        conditions, deposit_made=deposit_made, withdrawal_made=withdrawal_made
    )
    return base_rate + bonus_rate if met else base_rate
