"""Principal-and-interest loans, exact to the cent.

The lending model needs the repayment a lender would quote, the schedule that
repayment produces, and a small state object to carry one loan through paid,
part-paid and missed months. Everything here is pure integer / rational
arithmetic: money is integer cents, the annual rate is an exact `Decimal`
percentage (``Decimal("6.24")`` is 6.24 % p.a.) and the monthly rate is the
exact fraction ``r = annual / 12 / 100`` (nominal annual rate compounded
monthly, as the annuity formula of the issue states).

Rounding rule (one rule, used everywhere): **round half to even to the
nearest cent.**

- The level repayment is the exact annuity ``A* = P·r / (1 − (1 + r)^−n)``
  (a `Fraction`), rounded to the nearest cent. Nearest rather than round-up
  because the error of the level payment is multiplied by the accumulation
  factor ``s_n`` (see below) in the final payment: nearest keeps
  ``|A − A*| ≤ ½`` and so halves the worst drift that the last payment must
  absorb, and it is the payment the closed form states. With round-up the
  loan also could not "extend past its term" in our model anyway, because the
  final instalment always clears the balance.
- Each month's interest is ``round(balance · r)``, nearest cent. Half-even
  rather than half-up because ties (``balance · r`` ending in exactly half a
  cent) do occur for rates with two decimals, and half-up would add a
  systematic +¼ cent per tie across a loan book; half-even is unbiased. It is
  also what `round()` and `models.distributions` use.
- The last instalment is ``opening balance + interest``, so every loan closes
  at exactly zero and the principal repaid sums to the amount lent.

How far the last instalment ``L`` is from the level payment ``A`` (the
bound, with its proof). Write ``g = 1 + r``, ``B_k`` for the balance after
instalment ``k`` and ``e_k = I_k − B_{k−1}·r`` for the rounding error of the
``k``-th interest charge (``|e_k| ≤ ½``). The exact schedule of the real-valued
annuity has ``B*_k = B*_{k−1}·g − A*`` with ``B*_n = 0``, hence
``B*_{n−1}·g = A*``. The difference ``D_k = B_k − B*_k`` obeys
``D_k = D_{k−1}·g + e_k + (A* − A)`` with ``D_0 = 0``, and
``L = B_{n−1}·g + e_n = A* + D_{n−1}·g + e_n``. Unrolling,

    L − A = (A* − A)·s_n + Σ_{k=1..n} e_k·g^(n−k),   s_n = (g^n − 1)/r  (= n if r = 0)

so ``|L − A| ≤ (|A* − A| + ½)·s_n ≤ s_n`` cents. At a zero rate there is no
interest rounding and ``s_n = n``, so ``|L − A| = n·|A* − A| ≤ n/2 < n``: the
"less than `months` cents" bound. At a positive rate ``s_n > n`` (30 years at
15 % gives ``s_n ≈ 6,920``) and no cent-rounded level payment can do better
than about ``s_n/2`` in the worst case, because moving ``A`` by one cent moves
``L`` by exactly ``s_n`` cents. For a typical home loan (AUD 500k, 6 %,
30 years, ``s_n ≈ 1,005``) the last instalment is within about AUD 10 of the
others. `last_payment_bound` returns ``(|A* − A| + ½)·s_n``.

Early payoff. If the accumulated rounding exceeds a whole repayment (only for
loans tiny against their term and rate, e.g. AUD 1,000 over 30 years at 15 %),
the balance plus interest falls to at most one repayment before month ``n``;
that instalment is then the last (it clears the balance) and the schedule is
shorter than ``months``. The identity above holds whenever the schedule runs
its full term.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "Instalment",
    "LoanAccount",
    "Split",
    "accumulation_factor",
    "add_months",
    "annuity_payment_exact",
    "last_payment_bound",
    "monthly_payment",
    "monthly_rate",
    "reprice",
    "round_half_even",
    "schedule",
]


# --- exact helpers -----------------------------------------------------------------------------


def round_half_even(value: Fraction) -> int:
    """Round an exact rational to the nearest integer, ties to even.

    Written out (rather than `round(value)`) so the rule every cent in this
    module depends on is visible and pinned by its own tests.

    Args:
        value: any rational number.

    Returns:
        The nearest integer; exactly-half values go to the even neighbour.
    """
    return _div_half_even(value.numerator, value.denominator)


def _div_half_even(numerator: int, denominator: int) -> int:
    """``round_half_even(numerator / denominator)`` in integers (denominator > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def monthly_rate(annual_rate: Decimal) -> Fraction:
    """The exact monthly rate ``annual / 12 / 100`` of an annual percentage.

    A `Decimal` converts to a `Fraction` exactly, so no binary float ever
    touches the rate; floats are refused because ``0.1`` is not one tenth.

    Args:
        annual_rate: percent per annum, finite and not negative.

    Returns:
        The monthly rate as a fraction (``Decimal("6")`` gives ``1/200``).

    Raises:
        TypeError: if the rate is not a `Decimal`.
        ValueError: if it is not finite or is negative.
    """
    if not isinstance(annual_rate, Decimal):
        raise TypeError(f"annual_rate must be a Decimal percentage, got {type(annual_rate)!r}")
    if not annual_rate.is_finite() or annual_rate < 0:
        raise ValueError(f"annual_rate must be finite and >= 0, got {annual_rate}")
    return Fraction(annual_rate) / 1200


def _check_loan(principal_cents: int, months: int) -> None:
    """Refuse amounts and terms that cannot describe a loan (bools are not ints here)."""
    if not isinstance(principal_cents, int) or isinstance(principal_cents, bool):
        raise TypeError(f"principal_cents must be int cents, got {type(principal_cents)!r}")
    if principal_cents <= 0:
        raise ValueError(f"principal_cents must be positive, got {principal_cents}")
    if not isinstance(months, int) or isinstance(months, bool):
        raise TypeError(f"months must be an int, got {type(months)!r}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")


def accumulation_factor(annual_rate: Decimal, months: int) -> Fraction:
    """``s_n = ((1 + r)^n − 1) / r`` (``n`` at a zero rate), exactly.

    It is the factor by which an error in the level payment reaches the last
    instalment (module docstring), so it sizes the last-payment bound.

    Args:
        annual_rate: percent per annum.
        months: the number of monthly instalments ``n``.

    Returns:
        The accumulated value of ``n`` payments of 1, as a fraction.
    """
    r = monthly_rate(annual_rate)
    if r == 0:
        return Fraction(months)
    return ((1 + r) ** months - 1) / r


def annuity_payment_exact(principal_cents: int, annual_rate: Decimal, months: int) -> Fraction:
    """The real-valued annuity ``P·r / (1 − (1 + r)^−n)`` in cents, as an exact fraction.

    Computed as ``P·r·g^n / (g^n − 1)`` with ``g = 1 + r`` in `Fraction`s, so
    even 360 months of compounding carries no rounding at all (the numbers
    are a few thousand digits long, which Python integers handle in
    microseconds). At a zero rate the limit ``P / n`` is used.

    Args:
        principal_cents: amount lent, positive cents.
        annual_rate: percent per annum.
        months: term in monthly instalments, at least 1.

    Returns:
        The exact level payment in cents.
    """
    _check_loan(principal_cents, months)
    r = monthly_rate(annual_rate)
    if r == 0:
        return Fraction(principal_cents, months)
    growth = (1 + r) ** months
    return principal_cents * r * growth / (growth - 1)


def monthly_payment(principal_cents: int, annual_rate: Decimal, months: int) -> int:
    """The level monthly repayment in cents: the annuity formula rounded half-even.

    Args:
        principal_cents: amount lent, positive cents.
        annual_rate: percent per annum (``Decimal("6.24")``); zero gives ``P / n``.
        months: term in monthly instalments, at least 1.

    Returns:
        ``round_half_even(annuity_payment_exact(...))``; the last instalment of
        `schedule` absorbs what this rounding (and the interest rounding) leaves.
    """
    return round_half_even(annuity_payment_exact(principal_cents, annual_rate, months))


def reprice(balance_cents: int, new_annual_rate: Decimal, remaining_months: int) -> int:
    """The new level repayment of a variable loan after its rate moves.

    Australian variable loans keep their term and re-amortise the outstanding
    balance over the months left, so this is the same annuity on the
    remaining balance and term.

    Args:
        balance_cents: outstanding balance (not yet due), positive cents.
        new_annual_rate: the loan's new rate, percent per annum.
        remaining_months: instalments still to come, at least 1.

    Returns:
        The new repayment in cents, rounded as `monthly_payment`.
    """
    return monthly_payment(balance_cents, new_annual_rate, remaining_months)


def last_payment_bound(principal_cents: int, annual_rate: Decimal, months: int) -> Fraction:
    """The proven bound ``(|A* − A| + ½)·s_n`` on ``|last instalment − level payment|``.

    At a zero rate the interest term vanishes and the bound is ``n·|A* − A|``
    (at most ``n/2``). See the module docstring for the proof; it applies to
    schedules that run their full term.

    Args:
        principal_cents: amount lent, positive cents.
        annual_rate: percent per annum.
        months: term in months.

    Returns:
        The bound in cents, exact.
    """
    exact = annuity_payment_exact(principal_cents, annual_rate, months)
    error = abs(exact - round_half_even(exact))
    s_n = accumulation_factor(annual_rate, months)
    if monthly_rate(annual_rate) == 0:
        return error * s_n
    return (error + Fraction(1, 2)) * s_n


# --- dates -------------------------------------------------------------------------------------


def add_months(start: date, months: int, day: int | None = None) -> date:
    """The date ``months`` calendar months after ``start``, on ``day``, clamped to month end.

    Instalments fall on the same day of every month as the loan was drawn;
    a loan drawn on the 31st pays on the 30th in April and on the 28th or 29th
    in February, then goes back to the 31st. Passing the anchor ``day``
    explicitly keeps that anchor when counting on from an already clamped date.

    Args:
        start: the date to count from.
        months: whole months to add (may be 0 or negative).
        day: day of month to aim for; ``start.day`` if omitted.

    Returns:
        The due date.
    """
    anchor = start.day if day is None else day
    if not 1 <= anchor <= 31:
        raise ValueError(f"day must be in 1..31, got {anchor}")
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor, last_day))


# --- schedule ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instalment:
    """One row of a repayment schedule; every amount is integer cents.

    Attributes:
        number: 1-based instalment number.
        due_date: the day it falls due.
        opening_balance: balance owed before this month's interest.
        payment: amount paid (``interest + principal``).
        interest: this month's interest, ``round_half_even(opening_balance · r)``.
        principal: the part of the payment that reduces the balance.
        closing_balance: ``opening_balance − principal``.
    """

    number: int
    due_date: date
    opening_balance: int
    payment: int
    interest: int
    principal: int
    closing_balance: int


def schedule(
    principal_cents: int,
    annual_rate: Decimal,
    months: int,
    start: date,
    *,
    day: int | None = None,
) -> list[Instalment]:
    """The full principal-and-interest schedule of a loan drawn on ``start``.

    Every instalment but the last pays the level `monthly_payment`; the last
    pays ``opening balance + interest`` and so closes the loan at exactly
    zero, which makes the principal column sum to the amount lent.

    Args:
        principal_cents: amount lent, positive cents.
        annual_rate: percent per annum.
        months: term in monthly instalments.
        start: drawdown date; instalment ``k`` falls due ``k`` months later.
        day: anchor day of month for due dates (``start.day`` if omitted), for
            continuing an existing loan's schedule from a clamped due date.

    Returns:
        The instalments in order: ``months`` of them, or fewer in the
        early-payoff case described in the module docstring.
    """
    _check_loan(principal_cents, months)
    rate = monthly_rate(annual_rate)
    num, den = rate.numerator, rate.denominator
    payment = monthly_payment(principal_cents, annual_rate, months)
    anchor = start.day if day is None else day
    rows: list[Instalment] = []
    balance = principal_cents
    for number in range(1, months + 1):
        interest = _div_half_even(balance * num, den)
        owed = balance + interest
        last = number == months or owed <= payment
        paid = owed if last else payment
        rows.append(
            Instalment(
                number=number,
                due_date=add_months(start, number, anchor),
                opening_balance=balance,
                payment=paid,
                interest=interest,
                principal=paid - interest,
                closing_balance=owed - paid,
            )
        )
        balance = owed - paid
        if last:
            break
    return rows


# --- one loan's state --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Split:
    """How an amount divides between interest and principal (cents).

    Attributes:
        interest_cents: the part that pays (or was due as) interest.
        principal_cents: the part that reduces (or was due as) principal.
    """

    interest_cents: int
    principal_cents: int

    @property
    def total_cents(self) -> int:
        """The whole amount, ``interest_cents + principal_cents``."""
        return self.interest_cents + self.principal_cents


@dataclass(slots=True)
class LoanAccount:
    """One amortising loan as the lending model carries it month by month.

    Pure arithmetic, no platform calls: the lending model turns the amounts
    returned here into PostEntry commands. Each due date runs
    ``accrue_month()`` (interest is charged onto the balance and the
    instalment falls due) and then exactly one of ``pay(amount)`` or
    ``miss()``. Paid in full every month, the account reproduces `schedule`
    row for row.

    Payments go to interest first, then principal (the split returned), and
    settle the oldest overdue instalment first, then the current one; any
    excess is a prepayment that shortens the loan. A shortfall becomes an
    overdue entry dated on the instalment's due date, so arrears age from the
    oldest unpaid due date (30/60/90+ days past due). Interest is charged on
    the whole balance including arrears; penalty interest and fees are the
    lending model's business.

    Attributes:
        balance_cents: everything owed, positive, interest charged included.
        annual_rate: current rate, percent per annum.
        remaining_months: instalments not yet fallen due.
        payment_cents: current level repayment.
        next_due: due date of the next (or currently open) instalment.
        due_day: anchor day of month of the due dates.
        interest_unpaid_cents: interest charged and not yet paid.
        overdue: unpaid instalments, oldest first, as ``(due date, cents)``.
        current_due_cents: the open instalment's amount, ``None`` between
            due dates.
    """

    balance_cents: int
    annual_rate: Decimal
    remaining_months: int
    payment_cents: int
    next_due: date
    due_day: int
    interest_unpaid_cents: int = 0
    overdue: list[tuple[date, int]] = field(default_factory=list)
    current_due_cents: int | None = None

    @classmethod
    def open(
        cls, principal_cents: int, annual_rate: Decimal, months: int, start: date
    ) -> LoanAccount:
        """A newly drawn loan: full balance, level payment, first instalment a month on.

        Args:
            principal_cents: amount lent, positive cents.
            annual_rate: percent per annum.
            months: term in monthly instalments.
            start: drawdown date (its day of month anchors the due dates).

        Returns:
            The account, with nothing yet due.
        """
        payment = monthly_payment(principal_cents, annual_rate, months)
        return cls(
            balance_cents=principal_cents,
            annual_rate=annual_rate,
            remaining_months=months,
            payment_cents=payment,
            next_due=add_months(start, 1),
            due_day=start.day,
        )

    # -- derived views --------------------------------------------------------------------------

    @property
    def arrears_cents(self) -> int:
        """Amount past due: the sum of the overdue instalments."""
        return sum(amount for _, amount in self.overdue)

    @property
    def missed_payments(self) -> int:
        """How many instalments are (wholly or partly) unpaid past their due date."""
        return len(self.overdue)

    @property
    def closed(self) -> bool:
        """Whether the loan is fully repaid."""
        return self.balance_cents == 0

    def days_past_due(self, as_of: date) -> int:
        """Days since the oldest unpaid due date (0 when up to date).

        Args:
            as_of: the day the arrears are measured on.

        Returns:
            ``(as_of − oldest overdue due date).days``, never negative.
        """
        if not self.overdue:
            return 0
        return max(0, (as_of - self.overdue[0][0]).days)

    # -- the monthly cycle ----------------------------------------------------------------------

    def accrue_month(self) -> int:
        """Charge this month's interest onto the balance and open the instalment due.

        The instalment is the level payment, or the whole balance not already
        overdue when this is the last month (or that balance is no more than
        one payment), which is how the final instalment absorbs the rounding.

        Returns:
            The interest charged, cents (``round_half_even(balance · r)``).

        Raises:
            RuntimeError: if the previous instalment was neither paid nor missed.
            ValueError: if the loan is already repaid.
        """
        if self.current_due_cents is not None:
            raise RuntimeError("the open instalment must be paid or missed first")
        if self.balance_cents <= 0:
            raise ValueError("the loan is repaid; nothing accrues")
        rate = monthly_rate(self.annual_rate)
        interest = _div_half_even(self.balance_cents * rate.numerator, rate.denominator)
        self.balance_cents += interest
        self.interest_unpaid_cents += interest
        not_yet_due = self.balance_cents - self.arrears_cents
        if self.remaining_months <= 1 or not_yet_due <= self.payment_cents:
            self.current_due_cents = not_yet_due
        else:
            self.current_due_cents = self.payment_cents
        return interest

    def pay(self, amount_cents: int) -> Split:
        """Receive a repayment: oldest arrears first, then the open instalment, then prepay.

        Called after `accrue_month` it settles (fully or partly) the open
        instalment and moves to the next due date; an unpaid remainder of the
        instalment becomes overdue. Called between due dates it is an extra
        repayment that reduces arrears and then the balance.

        Args:
            amount_cents: positive cents, at most the balance.

        Returns:
            The interest/principal split of the amount (interest first).

        Raises:
            ValueError: for a non-positive amount or more than is owed.
        """
        if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
            raise TypeError(f"amount_cents must be int cents, got {type(amount_cents)!r}")
        if amount_cents <= 0:
            raise ValueError(f"amount_cents must be positive, got {amount_cents}")
        if amount_cents > self.balance_cents:
            raise ValueError(f"payment {amount_cents} exceeds the balance {self.balance_cents}")
        interest = min(amount_cents, self.interest_unpaid_cents)
        self.interest_unpaid_cents -= interest
        self.balance_cents -= amount_cents
        left = amount_cents
        while left and self.overdue:
            due_date, owed = self.overdue[0]
            settled = min(left, owed)
            left -= settled
            if settled == owed:
                self.overdue.pop(0)
            else:
                self.overdue[0] = (due_date, owed - settled)
        if self.current_due_cents is not None:
            shortfall = self.current_due_cents - min(left, self.current_due_cents)
            if shortfall:
                self.overdue.append((self.next_due, shortfall))
            self._advance()
        return Split(interest, amount_cents - interest)

    def miss(self) -> Split:
        """Record that the open instalment was not paid: it all becomes overdue.

        Returns:
            The split the missed instalment would have had if paid
            (interest first), i.e. what has just gone into arrears.

        Raises:
            RuntimeError: if no instalment is open (call `accrue_month` first).
        """
        due = self.current_due_cents
        if due is None:
            raise RuntimeError("no instalment is open; call accrue_month first")
        if due:
            self.overdue.append((self.next_due, due))
        interest = min(due, self.interest_unpaid_cents)
        self._advance()
        return Split(interest, due - interest)

    def reprice(self, new_annual_rate: Decimal) -> int:
        """Move to a new rate and re-amortise what is not yet due over the months left.

        Arrears are due now, so they are left out of the re-amortised balance.
        Must be called between due dates.

        Args:
            new_annual_rate: percent per annum.

        Returns:
            The new level payment in cents (unchanged if nothing is left to
            amortise or the term has run out).
        """
        if self.current_due_cents is not None:
            raise RuntimeError("reprice between due dates, not with an instalment open")
        monthly_rate(new_annual_rate)  # validates before anything changes
        self.annual_rate = new_annual_rate
        not_yet_due = self.balance_cents - self.arrears_cents
        if not_yet_due > 0 and self.remaining_months > 0:
            self.payment_cents = reprice(not_yet_due, new_annual_rate, self.remaining_months)
        return self.payment_cents

    def _advance(self) -> None:
        """Close the open instalment and step to the next due date."""
        self.current_due_cents = None
        self.remaining_months = max(0, self.remaining_months - 1)
        self.next_due = add_months(self.next_due, 1, self.due_day)
