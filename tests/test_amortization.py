"""Tests of models.amortization: the schedule is the annuity formula, exact to the cent.

Property tests draw many random loans (principal AUD 1,000 to 2,000,000, rate
0 to 15 % in basis points, term 12 to 360 months) from fixed numpy seeds, so
every run checks the same loans and a failure names a reproducible one. The
references in these tests are computed independently of the module (high
precision `Decimal`, or `Fraction` algebra) wherever the module's own helper
would otherwise be checked against itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

from models.amortization import (
    Instalment,
    LoanAccount,
    Split,
    accumulation_factor,
    add_months,
    annuity_payment_exact,
    last_payment_bound,
    monthly_payment,
    monthly_rate,
    reprice,
    round_half_even,
    schedule,
)

START = date(2025, 1, 31)


def random_loans(seed: int, count: int) -> Iterator[tuple[int, Decimal, int]]:
    """(principal cents, annual rate, months) drawn over the issue's ranges from a fixed seed."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        principal = int(rng.integers(100_000, 200_000_001))
        rate = Decimal(int(rng.integers(0, 1501))) / 100
        months = int(rng.integers(12, 361))
        yield principal, rate, months


def reference_payment(principal: int, rate: Decimal, months: int) -> int:
    """The annuity P·r/(1-(1+r)^-n) in 80-digit Decimal, rounded half-even to the cent."""
    with localcontext() as ctx:
        ctx.prec = 80
        r = rate / Decimal(1200)
        if r == 0:
            exact = Decimal(principal) / Decimal(months)
        else:
            exact = Decimal(principal) * r / (1 - (1 + r) ** -months)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# --- rounding and the payment ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(1, 2), 0),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 2),
        (Fraction(-1, 2), 0),
        (Fraction(-3, 2), -2),
        (Fraction(7, 3), 2),
        (Fraction(8, 3), 3),
        (Fraction(-7, 3), -2),
        (Fraction(10), 10),
    ],
)
def test_round_half_even_goes_to_nearest_and_ties_to_even(value: Fraction, rounded: int) -> None:
    """Non-ties go to the nearest integer; exact halves go to the even neighbour, both signs."""
    assert round_half_even(value) == rounded


@pytest.mark.parametrize(
    ("principal", "rate", "months", "payment"),
    [
        (50_000_000, Decimal("6"), 360, 299_775),  # AUD 500k, 6 %, 30 y: AUD 2,997.75
        (10_000_000, Decimal("5.00"), 360, 53_682),  # AUD 100k, 5 %, 30 y: AUD 536.82
        (1_000_000, Decimal("0"), 12, 83_333),  # zero rate: P / n
        (2_000_000, Decimal("12"), 12, 177_698),  # AUD 20k, 12 %, 1 y: AUD 1,776.98
    ],
)
def test_monthly_payment_matches_published_figures(
    principal: int, rate: Decimal, months: int, payment: int
) -> None:
    """Repayments agree with the figures any loan calculator quotes for these loans."""
    assert monthly_payment(principal, rate, months) == payment


def test_monthly_payment_is_the_annuity_formula_rounded_half_even_over_random_loans() -> None:
    """Over 400 random loans the payment equals an independent 80-digit evaluation, rounded."""
    for principal, rate, months in random_loans(seed=1, count=400):
        assert monthly_payment(principal, rate, months) == reference_payment(
            principal, rate, months
        ), (principal, rate, months)


def test_exact_annuity_satisfies_the_present_value_equation() -> None:
    """The exact payment discounted at r over n months is worth exactly the principal."""
    for principal, rate, months in random_loans(seed=2, count=50):
        a_star = annuity_payment_exact(principal, rate, months)
        r = Fraction(rate) / 1200
        present_value = sum(a_star / (1 + r) ** k for k in range(1, months + 1))
        assert present_value == principal, (principal, rate, months)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((100_000, 6.0, 12), TypeError),
        ((100_000, Decimal("-0.01"), 12), ValueError),
        ((100_000, Decimal("NaN"), 12), ValueError),
        ((100_000, Decimal("Infinity"), 12), ValueError),
        ((0, Decimal("6"), 12), ValueError),
        ((-5, Decimal("6"), 12), ValueError),
        ((100_000.0, Decimal("6"), 12), TypeError),
        ((True, Decimal("6"), 12), TypeError),
        ((100_000, Decimal("6"), 0), ValueError),
        ((100_000, Decimal("6"), 12.0), TypeError),
    ],
)
def test_invalid_loans_are_refused(args: tuple[object, object, object], error: type) -> None:
    """Float rates or money, negative or non-finite rates and empty terms raise, not round."""
    with pytest.raises(error):
        monthly_payment(*args)  # type: ignore[arg-type]


# --- the schedule ------------------------------------------------------------------------------


def assert_schedule_invariants(
    rows: list[Instalment], principal: int, rate: Decimal, months: int, start: date
) -> None:
    """Every row's arithmetic, the balance chain, level payments and the exact close."""
    r = Fraction(rate) / 1200
    payment = monthly_payment(principal, rate, months)
    assert 1 <= len(rows) <= months
    assert sum(row.principal for row in rows) == principal
    assert rows[0].opening_balance == principal
    assert rows[-1].closing_balance == 0
    for index, row in enumerate(rows):
        assert row.number == index + 1
        assert row.due_date == add_months(start, index + 1)
        assert row.interest == round_half_even(row.opening_balance * r)
        assert row.payment == row.interest + row.principal
        assert row.closing_balance == row.opening_balance - row.principal
        assert row.principal >= 0
        if index:
            assert row.opening_balance == rows[index - 1].closing_balance
    for row in rows[:-1]:
        assert row.payment == payment
        assert row.closing_balance > 0
    last = rows[-1]
    assert last.payment == last.opening_balance + last.interest
    if len(rows) < months:  # early payoff: only when balance + interest fits in one payment
        assert last.payment <= payment


def test_schedule_sums_and_chains_exactly_over_random_loans() -> None:
    """For 300 random loans: principal sums to the amount lent and every row is consistent."""
    full_term = 0
    for principal, rate, months in random_loans(seed=3, count=300):
        rows = schedule(principal, rate, months, START)
        assert_schedule_invariants(rows, principal, rate, months, START)
        full_term += len(rows) == months
    assert full_term == 300  # in the ranges no loan pays off early


def test_last_payment_identity_and_bound_over_random_loans() -> None:
    """L - A = (A* - A)·s_n + Σ e_k·g^(n-k) exactly, hence |L - A| <= (|A* - A| + ½)·s_n.

    This is the identity proved in the module docstring, re-derived here from
    each schedule's own interest-rounding errors with exact fractions.
    """
    for principal, rate, months in random_loans(seed=4, count=60):
        rows = schedule(principal, rate, months, START)
        assert len(rows) == months
        r = Fraction(rate) / 1200
        g = 1 + r
        a_star = annuity_payment_exact(principal, rate, months)
        payment = monthly_payment(principal, rate, months)
        compounded_errors = Fraction(0)
        for row in rows:  # Horner: Σ e_k g^(n-k)
            compounded_errors = compounded_errors * g + (row.interest - row.opening_balance * r)
        s_n = accumulation_factor(rate, months)
        drift = rows[-1].payment - payment
        assert drift == (a_star - payment) * s_n + compounded_errors, (principal, rate, months)
        assert abs(drift) <= last_payment_bound(principal, rate, months)
        assert abs(drift) < s_n or s_n == 0


def test_accumulation_factor_is_the_sum_of_powers() -> None:
    """s_n equals Σ_{j<n} (1+r)^j exactly, and n at a zero rate."""
    for rate, months in [(Decimal("6.24"), 37), (Decimal("15"), 12), (Decimal("0.01"), 5)]:
        g = 1 + Fraction(rate) / 1200
        assert accumulation_factor(rate, months) == sum(g**j for j in range(months))
    assert accumulation_factor(Decimal("0"), 240) == 240


def test_zero_rate_last_payment_is_within_months_cents() -> None:
    """At 0 % there is no interest and the last payment is off by n·(P/n - A), under n cents."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        principal = int(rng.integers(100_000, 200_000_001))
        months = int(rng.integers(12, 361))
        rows = schedule(principal, Decimal("0.00"), months, START)
        assert_schedule_invariants(rows, principal, Decimal("0"), months, START)
        assert all(row.interest == 0 for row in rows)
        payment = monthly_payment(principal, Decimal("0"), months)
        drift = rows[-1].payment - payment
        assert drift == months * (Fraction(principal, months) - payment)
        assert abs(drift) < months


def test_positive_rates_can_drift_past_months_cents_but_stay_within_the_bound() -> None:
    """AUD 1,000 over 30 years at 15 %: the last payment is 3,092 cents off, > 360, <= bound.

    Pins the docstring's claim that "< months cents" holds only at a zero rate:
    one cent on the level payment moves the last payment by s_n (~6,920) cents.
    """
    rows = schedule(100_000, Decimal("15"), 360, START)
    payment = monthly_payment(100_000, Decimal("15"), 360)
    assert len(rows) == 360
    assert payment == 1264
    assert rows[-1].payment - payment == 3092
    assert last_payment_bound(100_000, Decimal("15"), 360) >= 3092


def test_tiny_long_loan_pays_off_a_month_early_and_stays_exact() -> None:
    """AUD 1,000 over 30 years at 12 %: rounding overpays by over a payment, so 359 instalments."""
    rows = schedule(100_000, Decimal("12"), 360, START)
    assert len(rows) == 359
    assert_schedule_invariants(rows, 100_000, Decimal("12"), 360, START)
    assert rows[-1].payment < monthly_payment(100_000, Decimal("12"), 360)


def test_one_month_loan_is_principal_plus_interest() -> None:
    """A one-instalment loan repays everything plus one month's interest at once."""
    rows = schedule(1_000_000, Decimal("12"), 1, date(2025, 3, 15))
    assert rows == [Instalment(1, date(2025, 4, 15), 1_000_000, 1_010_000, 10_000, 1_000_000, 0)]


# --- dates -------------------------------------------------------------------------------------


def test_due_dates_keep_the_drawdown_day_clamped_to_month_end() -> None:
    """A loan drawn on 31 Jan 2024 pays on 29 Feb, 31 Mar, 30 Apr, ... 28 Feb 2025."""
    rows = schedule(1_200_000, Decimal("6"), 13, date(2024, 1, 31))
    dates = [row.due_date for row in rows]
    assert dates[:4] == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31)]
    assert dates[-1] == date(2025, 2, 28)


@pytest.mark.parametrize(
    ("start", "months", "day", "expected"),
    [
        (date(2025, 1, 15), 0, None, date(2025, 1, 15)),
        (date(2025, 1, 15), 12, None, date(2026, 1, 15)),
        (date(2025, 3, 31), -1, None, date(2025, 2, 28)),
        (date(2025, 2, 28), 1, 31, date(2025, 3, 31)),
        (date(2025, 12, 31), 2, None, date(2026, 2, 28)),
    ],
)
def test_add_months(start: date, months: int, day: int | None, expected: date) -> None:
    """Month arithmetic rolls years, counts backwards and honours an explicit anchor day."""
    assert add_months(start, months, day) == expected


def test_add_months_refuses_impossible_anchor_day() -> None:
    """A day of month outside 1..31 is a bug, not something to clamp."""
    with pytest.raises(ValueError, match="day"):
        add_months(START, 1, 32)


# --- the loan account --------------------------------------------------------------------------


def test_account_paid_in_full_reproduces_the_schedule_over_random_loans() -> None:
    """Charging interest and paying the instalment due each month gives schedule() row by row.

    The random loans are joined by the early-payoff loan (AUD 1,000, 12 %, 30 y),
    which the account must also close after 359 instalments.
    """
    loans = [*random_loans(seed=6, count=60), (100_000, Decimal("12"), 360)]
    for principal, rate, months in loans:
        loan = LoanAccount.open(principal, rate, months, START)
        rows = schedule(principal, rate, months, START)
        for row in rows:
            assert loan.next_due == row.due_date
            opening = loan.balance_cents
            interest = loan.accrue_month()
            due = loan.current_due_cents
            assert due is not None
            split = loan.pay(due)
            assert (opening, due, interest, split) == (
                row.opening_balance,
                row.payment,
                row.interest,
                Split(row.interest, row.principal),
            )
            assert loan.balance_cents == row.closing_balance
        assert loan.closed
        assert loan.remaining_months == months - len(rows)
        assert loan.arrears_cents == 0


def test_repricing_keeps_the_remaining_schedule_consistent() -> None:
    """After k payments and a rate move, the rest is the schedule of the balance left.

    The new payment is `reprice(balance, new rate, n - k)`, the remaining
    instalments equal `schedule` of that balance from the k-th due date on the
    loan's own anchor day, the loan still closes exactly at zero, and the
    principal repaid over both legs sums to the amount lent.
    """
    rng = np.random.default_rng(7)
    for principal, rate, months in random_loans(seed=8, count=60):
        k = int(rng.integers(1, months))
        new_rate = Decimal(int(rng.integers(0, 1501))) / 100
        loan = LoanAccount.open(principal, rate, months, START)
        repaid = 0
        for _ in range(k):
            loan.accrue_month()
            due = loan.current_due_cents
            assert due is not None
            repaid += loan.pay(due).principal_cents
        balance = loan.balance_cents
        assert balance == schedule(principal, rate, months, START)[k - 1].closing_balance
        new_payment = loan.reprice(new_rate)
        assert new_payment == reprice(balance, new_rate, months - k)
        assert new_payment == monthly_payment(balance, new_rate, months - k)
        rest = schedule(balance, new_rate, months - k, add_months(START, k), day=START.day)
        for row in rest:
            assert loan.next_due == row.due_date
            interest = loan.accrue_month()
            due = loan.current_due_cents
            assert (interest, due) == (row.interest, row.payment)
            assert due is not None
            repaid += loan.pay(due).principal_cents
            assert loan.balance_cents == row.closing_balance
        assert loan.closed
        assert repaid == principal


def test_reprice_at_an_unchanged_rate_moves_the_payment_only_by_the_drift_so_far() -> None:
    """Re-amortising at the same rate: |new - A| <= 1 + |D_k| / a_m, with D_k the drift.

    D_k = B_k - B*_k is the schedule's balance minus the exact annuity's after k
    months (bounded by (|A* - A| + ½)·s_k) and a_m the annuity factor of the m
    months left; the two halves of a cent are the two roundings.
    """
    rng = np.random.default_rng(9)
    for principal, rate, months in random_loans(seed=9, count=100):
        k = int(rng.integers(1, months))
        m = months - k
        rows = schedule(principal, rate, months, START)
        balance = rows[k - 1].closing_balance
        new = reprice(balance, rate, m)
        r = Fraction(rate) / 1200
        g = 1 + r
        a_star = annuity_payment_exact(principal, rate, months)
        payment = monthly_payment(principal, rate, months)
        s_k = accumulation_factor(rate, k)
        drift = balance - (principal * g**k - a_star * s_k)
        assert abs(drift) <= (abs(a_star - payment) + Fraction(1, 2)) * s_k
        a_m = Fraction(m) if r == 0 else (1 - g**-m) / r
        assert abs(new - payment) <= 1 + abs(drift) / a_m, (principal, rate, months, k)


def test_missed_payments_age_into_arrears_and_are_cleared_oldest_first() -> None:
    """Three misses give 3 instalments and ~90 days past due; paying them back clears arrears."""
    loan = LoanAccount.open(30_000_000, Decimal("6.24"), 300, date(2025, 1, 15))
    payment = loan.payment_cents
    first_due = loan.next_due
    for _ in range(3):
        interest = loan.accrue_month()
        missed = loan.miss()
        assert missed.total_cents == payment
        assert missed.interest_cents >= interest
    assert loan.missed_payments == 3
    assert loan.arrears_cents == 3 * payment
    assert loan.days_past_due(first_due) == 0
    assert loan.days_past_due(loan.next_due) == (loan.next_due - first_due).days == 89
    assert loan.days_past_due(first_due - timedelta(days=5)) == 0
    loan.accrue_month()
    loan.pay(2 * payment)  # settles the two oldest; the current instalment goes overdue
    assert loan.missed_payments == 2
    assert loan.overdue[0][0] == date(2025, 4, 15)
    unpaid_interest = loan.interest_unpaid_cents
    extra = loan.pay(2 * payment)  # between due dates: clears the rest, nothing opened
    assert extra == Split(unpaid_interest, 2 * payment - unpaid_interest)
    assert loan.current_due_cents is None
    assert loan.arrears_cents == 0
    assert loan.days_past_due(loan.next_due) == 0


def test_reprice_with_arrears_reamortises_only_what_is_not_yet_due() -> None:
    """Arrears are due now, so a rate move spreads only balance - arrears over the months left."""
    loan = LoanAccount.open(40_000_000, Decimal("5.84"), 360, START)
    for _ in range(2):
        loan.accrue_month()
        loan.miss()
    assert loan.arrears_cents > 0
    new_payment = loan.reprice(Decimal("6.09"))
    assert new_payment == reprice(loan.balance_cents - loan.arrears_cents, Decimal("6.09"), 358)
    assert loan.annual_rate == Decimal("6.09")
    with pytest.raises(TypeError):
        loan.reprice(6.34)  # type: ignore[arg-type]
    assert loan.annual_rate == Decimal("6.09")


def test_random_pay_and_miss_sequences_conserve_money() -> None:
    """Random full, partial, missed and catch-up payments: every cent is accounted for.

    Balance = amount lent + interest charged - payments; splits sum to the
    payments and their interest parts to the interest paid; arrears and the
    open instalment never exceed the balance; and paying whatever is due
    from the end of the term on repays the loan exactly.
    """
    rng = np.random.default_rng(10)
    for principal, rate, months in random_loans(seed=11, count=40):
        loan = LoanAccount.open(principal, rate, months, START)
        charged = paid = interest_paid = 0
        for _ in range(months):
            charged += loan.accrue_month()
            due = loan.current_due_cents
            assert due is not None
            assert loan.arrears_cents + due <= loan.balance_cents
            action = rng.random()
            if action < 0.15 or due == 0:
                loan.miss()
                continue
            amount = due + loan.arrears_cents if action < 0.8 else int(rng.integers(1, due + 1))
            split = loan.pay(min(amount, loan.balance_cents))
            paid += split.total_cents
            interest_paid += split.interest_cents
            assert loan.balance_cents == principal + charged - paid
            if loan.closed:
                break
        while not loan.closed:  # past the term: everything left falls due
            charged += loan.accrue_month()
            split = loan.pay(loan.balance_cents)
            paid += split.total_cents
            interest_paid += split.interest_cents
        assert paid == principal + charged
        assert interest_paid == charged
        assert loan.interest_unpaid_cents == 0
        assert loan.overdue == []


def test_account_guards_its_cycle() -> None:
    """Accruing twice, missing with nothing open, overpaying or repricing mid-cycle raise."""
    loan = LoanAccount.open(1_000_000, Decimal("6"), 12, START)
    with pytest.raises(RuntimeError):
        loan.miss()
    loan.accrue_month()
    with pytest.raises(RuntimeError):
        loan.accrue_month()
    with pytest.raises(RuntimeError):
        loan.reprice(Decimal("7"))
    with pytest.raises(ValueError, match="exceeds"):
        loan.pay(loan.balance_cents + 1)
    with pytest.raises(ValueError, match="positive"):
        loan.pay(0)
    with pytest.raises(TypeError):
        loan.pay(10.0)  # type: ignore[arg-type]
    loan.pay(loan.balance_cents)
    assert loan.closed
    with pytest.raises(ValueError, match="repaid"):
        loan.accrue_month()


def test_monthly_rate_is_exact() -> None:
    """6.24 % p.a. is exactly 0.52 % a month: 13/2500, with no float anywhere."""
    assert monthly_rate(Decimal("6.24")) == Fraction(13, 2500)
