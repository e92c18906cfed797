"""Lending: applications, credit decisions, loans, repayments, arrears, default and write-off.

Each credit union gets three loan products at t = 0 (`models.loan_products`)
and a loan book migrated from its previous core (a share of members already
hold a home or personal loan, seasoned up to some years). Then, at each
day's close (23:59:59 local, after the day's salaries and spending; every
lending command is stamped then, so each tenant's chain stays in time
order), per tenant:

1. **Instalments.** Each loan falling due today accrues a month's interest
   (`models.amortization.LoanAccount`, exact to the cent) and the member pays
   or misses: a borrower who is up to date misses with a hazard that rises
   with unemployment, with the repayment-to-income ratio since origination
   (a variable rate rise) and, for home loans, with the loan-to-value ratio
   (house prices fall); a borrower in distress cures with a probability that
   depends on having a job. Either way the payment is made only if the
   member's everyday account, topped up from their savings account, can
   cover it (predicted from the shadow book, as `models.payments` does): a
   lost salary empties the accounts and the instalment is missed. A borrower
   who missed only for lack of funds pays the arrears as soon as the money
   is there (the bounced direct debit is retried daily), and a household
   behind on a loan cuts its other spending meanwhile. A member in arrears
   who lost their job may get a hardship variation: arrears capitalised, a
   few months of reduced payments, then the loan re-amortised over the
   months left.
2. **Arrears and default.** Missed instalments age from their due date
   through 30, 60 and 90+ days past due; at 90 days the loan defaults: it
   stops accruing and goes to collections. After `write_off_months` the
   collections recover what they can (a mortgagee sale at the house price
   index, less costs; a share of a personal loan) and the rest is written off.
3. **Applications.** Each active member applies with a small daily
   probability (a monthly rate); the decision uses the product's
   `creditCriteria`: income, credit score and debt-service ratio (all the
   member's repayments with us plus the new one at the assessment rate, over
   gross income). Approved loans are opened (OpenAccount: `AccountOpened` +
   `LoanFacilityCreated`) and disbursed.

Variable home loans reprice on the first of a month when the cash rate
moves (`LoanAccount.reprice`: same term, new level payment), and the
variable product is upserted with its new rate.

Money movements (every one a PostEntry; the ledger's convention is *debits
minus credits* for every account, so a loan owed is a negative balance and
the platform's loan accounts have ceiling 0 and no floor):

=====================  ===============================  ===============================
movement               DEBIT                            CREDIT
=====================  ===============================  ===============================
migration (t = 0)      `GL_LOAN_FUNDING`                loan account
home loan drawdown     `GL_LOAN_FUNDING` (settlement    loan account
                       paid to the vendor's bank)
personal drawdown      member's everyday account        loan account
personal purchase      `GL_NPP_CLEARING` (the seller)   member's everyday account
interest charged       `GL_INTEREST_INCOME`             loan account
repayment              loan account                     member's everyday account
cover from savings     member's everyday account        member's savings account
discharge (refinance,  loan account                     `GL_LOAN_FUNDING` (payout from
sale, member leaves)                                    another lender or a buyer)
recovery               loan account                     `GL_LOAN_FUNDING` (sale proceeds)
write-off              loan account                     `GL_LOAN_FUNDING`
=====================  ===============================  ===============================

In this member's-eye convention the credit union's income shows as a
*positive* (debit) balance of `GL_INTEREST_INCOME`, the mirror of the CU's
own books, just as savings interest paid makes `GL_INTEREST_EXPENSE`
negative. The platform has no loan-loss GL, so write-offs go to
`GL_LOAN_FUNDING`, the account through which the lent money left: what is
written off is money that will not come back through it. Entries are tagged
(`category`: `write_off`, `recovery`, ...) so losses stay identifiable; a
dedicated `GL_LOAN_LOSSES` would be the cleaner home once the platform has one.

Personal loans are disbursed into the member's account and paid straight
out to the seller (a car, a renovation): the loan funds a purchase, it does
not top up deposits the member could then repay from. A borrower's
repayment replaces part of their other spending (`spend_offset_share`: rent
before a home loan, discretionary spending before a personal loan), so
members' budgets stay calibrated; rate rises are absorbed only in part.

Loan accounts are not deposits: the twin's tap learns them from
`AccountOpened` (product type LOAN) and leaves them out of member deposits.

Credit scores: onboarding draws each member's creditScore into the
CreateCustomer payload without keeping it, and the initial members' events
are published before this model attaches, so the model keeps its own
per-member score drawn the same way (N(720, 90), whole points, 300-1000)
from its own stream.

Outputs: `lending.csv` (per tenant per day: loan book, arrears by bucket
30-59 / 60-89 / 90+ days, defaults, losses, applications, approvals, ...),
`loans.csv` (one row per loan: lent, repaid, interest, written off, status),
KPI series for declared expectations, and expectation items in the report
(principal identity and shadow book vs amortization model to the cent,
approval rate beside its target).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from models.amortization import LoanAccount, add_months, monthly_payment, round_half_even
from models.distributions import LogNormalAmount
from models.loan_products import (
    HOME_FIXED,
    HOME_PRODUCTS,
    HOME_VARIABLE,
    LENDING_SOURCES,
    PERSONAL,
    LendingParams,
    cents,
    loan_products,
    variable_rate,
)
from models.staged import StagedEntries
from models.world import TenantWorld
from sim.context import RunContext
from turingcore.contract import Leg, OpenAccount

__all__ = [
    "LENDING_COLUMNS",
    "LENDING_FILE",
    "LENDING_SOURCES",
    "LOANS_COLUMNS",
    "LOANS_FILE",
    "LendingBook",
    "LendingParams",
    "Loan",
    "arrears_bucket",
    "attach",
    "migrated_balance",
]

INTEREST_INCOME = "GL_INTEREST_INCOME"
LOAN_FUNDING = "GL_LOAN_FUNDING"
PURCHASE_CLEARING = "GL_NPP_CLEARING"
LENDING_FILE = "lending.csv"
LOANS_FILE = "loans.csv"
#: Days past due at which a loan defaults.
DEFAULT_DAYS = 90
#: An approval rate further than this (plus sampling error) from its target fails the check.
APPROVAL_TOLERANCE = 0.15
#: z of a two-sided 99.9% interval (as the twin's statistical checks use).
Z_999 = 3.2905
#: A borrower never cuts other spending below this share of what it was.
MIN_SPEND_FACTOR = 0.2
#: Monthly house price growth assumed for seasoning the migrated home loans (~5% a year).
SEASONING_GROWTH = 0.004
#: Credit scores are whole points in this range (as onboarding draws them).
SCORE_RANGE = (300, 1000)

#: Loan states: live (OPEN, DEFAULTED in collections) and ended (repaid, recovered in
#: full after default, or written off).
OPEN, DEFAULTED = "OPEN", "DEFAULTED"
CLOSED, RECOVERED, WRITTEN_OFF = "CLOSED", "RECOVERED", "WRITTEN_OFF"
_PAY, _DISCHARGE, _HARDSHIP = "pay", "discharge", "hardship"

_TAGS = {
    name: {"channel": "LENDING", "category": name}
    for name in (
        "loan_migration",
        "loan_drawdown",
        "loan_interest",
        "loan_repayment",
        "loan_cover",
        "loan_discharge",
        "recovery",
        "write_off",
    )
}
_PURCHASE_TAGS = {"channel": "NPP", "category": "loan_purchase"}


def arrears_bucket(days_past_due: int) -> int:
    """The reporting bucket of a loan: 0 (under 30 days), 30 (30-59), 60 (60-89) or 90 (90+)."""
    if days_past_due >= 90:
        return 90
    if days_past_due >= 60:
        return 60
    if days_past_due >= 30:
        return 30
    return 0


def migrated_balance(principal_cents: int, annual_rate: Decimal, months: int, paid: int) -> int:
    """Balance of a loan after ``paid`` level instalments, by the closed form, to the cent.

    The balance a migrated loan arrives with: ``P·g^k − A·(g^k − 1)/r`` with
    ``g = 1 + r`` and ``A`` the level payment, computed exactly in fractions
    and rounded half-even. (The legacy core's own month-by-month rounding may
    differ by a few cents; the migrated figure is what this book starts from.)

    Args:
        principal_cents: the amount originally lent.
        annual_rate: percent per annum.
        months: the original term.
        paid: instalments already paid, ``0 <= paid < months``.

    Returns:
        The outstanding balance in cents, positive.
    """
    if not 0 <= paid < months:
        raise ValueError(f"paid must be in [0, {months}), got {paid}")
    payment = monthly_payment(principal_cents, annual_rate, months)
    r = Fraction(annual_rate) / 1200
    if r == 0:
        return principal_cents - payment * paid
    growth = (1 + r) ** paid
    return max(1, round_half_even(principal_cents * growth - payment * (growth - 1) / r))


@dataclass(slots=True, eq=False)
class Loan:
    """One loan on the book: the amortization state plus what the lending model tracks.

    Attributes:
        number: position in the tenant's book (stable, for outputs).
        member: the borrower's member index.
        product: product code.
        account_id: the platform's loan account.
        account: the exact-cents amortization state (balance positive).
        lent_cents: amount drawn (for a migrated loan: the balance migrated).
        opened: drawdown (or migration) date.
        migrated: came with the initial book.
        dsr_at_open: repayments × 12 / gross income at origination.
        net_income_cents: monthly take-home pay at origination (spend offset base).
        rng: the loan's own random stream (exits, distress, hardship), named by
            member, product and drawdown date, so that two scenarios run with one
            seed draw the same fate for the same loan (common random numbers: a
            recession run differs from the baseline by the recession, not by
            reshuffled draws).
        property_cents: security value at ``hpi_at_open`` (home loans; 0 otherwise).
        hpi_at_open: house price index when the property was valued.
        offset_cents: monthly spending the member gave up for this repayment.
        spend_factor: the factor this loan applies to the member's spend scale.
    """

    number: int
    member: int
    product: str
    account_id: str
    account: LoanAccount
    lent_cents: int
    opened: date
    migrated: bool
    dsr_at_open: float
    net_income_cents: int
    rng: np.random.Generator
    property_cents: int = 0
    hpi_at_open: float = 100.0
    offset_cents: int = 0
    spend_factor: float = 1.0
    status: str = OPEN
    distressed: bool = False
    hardship_left: int = 0
    had_hardship: bool = False
    defaulted_on: date | None = None
    principal_repaid_cents: int = 0
    interest_charged_cents: int = 0
    interest_paid_cents: int = 0
    recovered_cents: int = 0
    written_off_cents: int = 0
    principal_written_off_cents: int = 0
    interest_written_off_cents: int = 0
    missed: int = 0

    @property
    def home(self) -> bool:
        return self.product in HOME_PRODUCTS

    @property
    def variable(self) -> bool:
        return self.product == HOME_VARIABLE

    @property
    def outstanding_principal_cents(self) -> int:
        """Balance less interest charged and not yet paid."""
        return self.account.balance_cents - self.account.interest_unpaid_cents


@dataclass(slots=True)
class Flows:
    """What one tenant's lending did in a period (a day, or the run)."""

    applications: int = 0
    approvals: int = 0
    originations: int = 0
    originated_cents: int = 0
    repayments_cents: int = 0
    interest_cents: int = 0
    missed_payments: int = 0
    defaults: int = 0
    losses_cents: int = 0
    recoveries_cents: int = 0
    discharges: int = 0
    hardship_granted: int = 0

    def add(self, other: Flows) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


LENDING_COLUMNS = (
    "date",
    "tenant_id",
    "loans",
    "loan_book_cents",
    "variable_book_cents",
    "arrears_1_cents",
    "arrears_30_cents",
    "arrears_60_cents",
    "arrears_90_cents",
    "variable_arrears_30_plus_cents",
    *(item.name for item in fields(Flows)),
    "hardship_active",
    "variable_rate",
    "house_price_index",
)


LOANS_COLUMNS = (
    "tenant_id",
    "loan",
    "account_id",
    "member",
    "product",
    "opened",
    "migrated",
    "lent_cents",
    "rate",
    "payment_cents",
    "status",
    "balance_cents",
    "principal_repaid_cents",
    "interest_charged_cents",
    "interest_paid_cents",
    "recovered_cents",
    "written_off_cents",
    "missed_payments",
    "defaulted_on",
)


@dataclass(slots=True)
class _Plan:
    """One due loan's decision, made before the batch is submitted."""

    loan: Loan
    due_date: date
    mode: str
    amount: int
    reduced: int
    entry: int | None


def _affordable(income_cents: int, annual_rate: Decimal, months: int, ratio: float) -> int:
    """The largest principal whose level repayment is ``ratio`` of gross income (cents, floor).

    Used to size a drawn amount, not to move money, so float arithmetic is fine.
    """
    payment = ratio * income_cents / 12
    r = float(annual_rate) / 1200
    if r == 0:
        return int(payment * months)
    return int(payment * (1 - (1 + r) ** -months) / r)


def _share_of(amount: int, share: float) -> int:
    """``amount × share`` to the cent (share taken to the basis point), half-even."""
    return round_half_even(Fraction(amount * round(share * 10_000), 10_000))


class LendingBook:
    """One credit union's loans and the lending process that runs them."""

    def __init__(self, world: TenantWorld, params: LendingParams, month: Any) -> None:
        """Start an empty book; `set_up` creates the products and migrates the initial loans.

        Args:
            world: the tenant's shared state (members, ids, shadow book, bus).
            params: the tenant's lending parameters.
            month: the economy's current month (cash rate, house prices and
                unemployment the book starts from).
        """
        self.world = world
        self.params = params
        self.apply_rng = world.rng("lending-applications")
        self.score_rng = world.rng("lending-scores")
        self.scores = np.zeros(0, dtype=np.int64)
        self.loans: list[Loan] = []
        self.by_account: dict[str, Loan] = {}
        self.holding: dict[int, list[Loan]] = {}
        self.due: dict[date, list[Loan]] = {}
        self.collections: dict[date, list[Loan]] = {}
        self.troubled: dict[int, Loan] = {}
        self.cutting: set[int] = set()
        self.variable_loans: dict[int, Loan] = {}
        self.in_hardship: dict[int, Loan] = {}
        self.cash_rate = float(month.cash_rate)
        self.hpi = float(month.house_price_index)
        self.unemployment = float(month.unemployment)
        self.variable_rate = variable_rate(self.cash_rate, params.home.variable_margin)
        self.reprices = 0
        self.book_cents = 0
        self.variable_book_cents = 0
        self.live = 0
        self.today = Flows()
        self.total = Flows()
        self.decisions: dict[str, Counter[str]] = {p: Counter() for p in ("personal", "home")}
        self.rows: list[tuple[Any, ...]] = []
        self.refused = 0
        #: OpenAccount commandId -> learned account id (filled by `on_events`).
        self.pending: dict[str, str | None] = {}
        self.facilities: set[str] = set()
        self.entries = StagedEntries(world)
        self._month: Any = None

    # ------------------------------------------------------------------ platform plumbing

    def on_events(self, events: list[Any]) -> None:
        """Learn the ids of the loan accounts our OpenAccount commands created."""
        pending = self.pending
        for sealed in events:
            event = sealed.event
            if event.causation_id not in pending:
                continue
            if event.event_type == "AccountOpened":
                pending[event.causation_id] = event.entity_id
            elif event.event_type == "LoanFacilityCreated":
                self.facilities.add(event.entity_id)

    def _stage(self, legs: list[Leg], narrative: str, tags: dict[str, str]) -> int:
        """Queue an entry, applying it to the shadow book now (predicted accepted)."""
        return self.entries.stage(legs, narrative, tags)

    def _flush(self, t: float, day: date) -> list[bool]:
        """Submit the queued entries; undo refused ones; keep the loan book straight."""
        done = self.entries.flush(t, day)
        for legs, accepted in done:
            if not accepted:
                self.refused += 1
                continue
            for leg in legs:
                loan = self.by_account.get(leg.account_id)
                if loan is None:
                    continue
                signed = leg.amount if leg.direction == "DEBIT" else -leg.amount
                self.book_cents -= signed
                if loan.variable:
                    self.variable_book_cents -= signed
        return [accepted for _legs, accepted in done]

    def _open_accounts(self, t: float, wanted: list[tuple[int, str]]) -> list[str | None]:
        """OpenAccount on loan products; the new account ids, None where refused."""
        world = self.world
        stamp = world.clock.iso_at(t)
        envelopes = []
        for member, product in wanted:
            customer = world.customer_ids[member]
            if customer is None:
                raise RuntimeError(f"member {member} has no customer id")
            envelope = world.ids.envelope(
                "OpenAccount",
                stamp,
                OpenAccount(
                    customer_id=customer,
                    product_code=product,
                    currency=world.scenario.currency,
                    account_purpose="LENDING",
                ),
            )
            self.pending[envelope.command_id] = None
            envelopes.append(envelope)
        try:
            results = world.bus.submit(world.tenant_id, envelopes)
        finally:
            learned, self.pending = self.pending, {}
            facilities, self.facilities = self.facilities, set()
        accounts: list[str | None] = []
        for envelope, result in zip(envelopes, results, strict=True):
            if not result.accepted:
                self.refused += 1
                accounts.append(None)
                continue
            account = learned.get(envelope.command_id)
            if account is None or account not in facilities:
                raise RuntimeError(
                    f"{world.tenant_id}: no AccountOpened + LoanFacilityCreated seen for "
                    f"{envelope.command_id}"
                )
            accounts.append(account)
        return accounts

    # ------------------------------------------------------------------ members

    def _sync_scores(self) -> None:
        """Draw credit scores for members who joined since (as onboarding draws them)."""
        n = self.world.members.n
        known = len(self.scores)
        if n <= known:
            return
        p = self.params
        low, high = SCORE_RANGE
        drawn = self.score_rng.normal(p.credit_score_mean, p.credit_score_sd, n - known)
        self.scores = np.concatenate(
            [self.scores, np.clip(np.rint(drawn), low, high).astype(np.int64)]
        )

    def _net_monthly(self, income_cents: int) -> int:
        net_ratio = self.world.behaviour.income.net_ratio
        return max(1, round_half_even(Fraction(income_cents) * Fraction(net_ratio) / 12))

    def _set_spend_factor(self, loan: Loan, factor: float) -> None:
        """Replace this loan's factor on the member's spend scale (1.0 releases it)."""
        if factor == loan.spend_factor:
            return
        scale = self.world.members.spend_scale
        scale[loan.member] *= factor / loan.spend_factor
        loan.spend_factor = factor

    def _set_offset(self, loan: Loan, offset_cents: int) -> None:
        """The member spends ``offset_cents`` a month less elsewhere because of this loan."""
        loan.offset_cents = max(0, offset_cents)
        factor = max(MIN_SPEND_FACTOR, 1.0 - loan.offset_cents / loan.net_income_cents)
        self._set_spend_factor(loan, factor)

    def _offset(self, loan: Loan, change_cents: int) -> None:
        """The member's other spending moves with a change of this loan's repayment.

        Rises are absorbed by `rise_absorbed_share` (the rest squeezes the
        member's balance); falls go back to spending in full.
        """
        if change_cents > 0:
            change_cents = _share_of(change_cents, self.params.rise_absorbed_share)
        self._set_offset(loan, loan.offset_cents + change_cents)

    # ------------------------------------------------------------------ the book

    def _book(
        self,
        member: int,
        product: str,
        account_id: str,
        principal: int,
        rate: Decimal,
        months: int,
        start: date,
        *,
        opened: date,
        migrated: bool,
        property_cents: int = 0,
    ) -> Loan:
        """Put a drawn loan on the book (its drawdown entry is posted by the caller)."""
        account = LoanAccount.open(principal, rate, months, start)
        income = int(self.world.members.income_cents[member])
        number = len(self.loans)
        loan = Loan(
            number=number,
            member=member,
            product=product,
            account_id=account_id,
            account=account,
            lent_cents=principal,
            opened=opened,
            migrated=migrated,
            dsr_at_open=account.payment_cents * 12 / income if income > 0 else 0.0,
            net_income_cents=self._net_monthly(income),
            rng=self.world.streams.stream(
                self.world.tenant_id, "lending-loan", f"{member}:{product}:{opened.isoformat()}"
            ),
            property_cents=property_cents,
            hpi_at_open=self.hpi,
        )
        self.loans.append(loan)
        self.by_account[account_id] = loan
        self.holding.setdefault(member, []).append(loan)
        self.due.setdefault(account.next_due, []).append(loan)
        if loan.variable:
            self.variable_loans[loan.number] = loan
        self.live += 1
        self._set_offset(loan, _share_of(account.payment_cents, self.params.spend_offset_share))
        return loan

    def _finish(self, loan: Loan, status: str) -> None:
        """Take a loan off the live book: CLOSED (repaid), RECOVERED or WRITTEN_OFF."""
        loan.status = status
        loan.hardship_left = 0
        self._set_spend_factor(loan, 1.0)
        held = self.holding.get(loan.member, [])
        if loan in held:
            held.remove(loan)
        self._untrouble(loan)
        self.variable_loans.pop(loan.number, None)
        self.in_hardship.pop(loan.number, None)
        self.live -= 1

    def _trouble(self, loan: Loan) -> None:
        """The loan is in arrears (or in default): the member tightens their belt."""
        if loan.number not in self.troubled:
            self.troubled[loan.number] = loan
            self._belt(loan.member)

    def _untrouble(self, loan: Loan) -> None:
        if self.troubled.pop(loan.number, None) is not None:
            self._belt(loan.member)

    def _belt(self, member: int) -> None:
        """Cut the member's other spending while any of their loans is in arrears.

        A household behind on its loan cuts discretionary spending (what
        collections and hardship teams ask for), so a borrower with a job
        catches up within a pay or two; one without income still cannot.
        """
        behind = any(loan.number in self.troubled for loan in self.holding.get(member, ()))
        if behind == (member in self.cutting):
            return
        cut = self.params.arrears_spend_cut
        scale = self.world.members.spend_scale
        if behind:
            self.cutting.add(member)
            scale[member] *= cut
        else:
            self.cutting.discard(member)
            scale[member] /= cut

    def _holds(self, member: int, kind: str) -> bool:
        products = HOME_PRODUCTS if kind == "home" else (PERSONAL,)
        return any(loan.product in products for loan in self.holding.get(member, ()))

    # ------------------------------------------------------------------ set-up

    def set_up(self, t: float) -> None:
        """UpsertProduct the loan products, then migrate the initial loan book (t = 0)."""
        world = self.world
        stamp = world.clock.iso_at(t)
        commands = [
            world.ids.envelope("UpsertProduct", stamp, product)
            for product in loan_products(self.params, self.cash_rate)
        ]
        refused = [r for r in world.bus.submit(world.tenant_id, commands) if not r.accepted]
        if refused:
            raise RuntimeError(
                f"{world.tenant_id}: the platform refused the loan products: "
                + "; ".join(f"{r.rule}: {r.message}" for r in refused)
            )
        self._sync_scores()
        self._migrate(t)

    def _migrate(self, t: float) -> None:
        """A share of members arrive with a seasoned home or personal loan."""
        world, p = self.world, self.params
        members = world.members
        start = world.clock.date_at(t)
        rng = self.apply_rng
        active = np.flatnonzero(members.active)
        wanted: list[tuple[int, str, int, Decimal, int, date, int]] = []
        for kind in ("home", "personal"):
            block = p.home if kind == "home" else p.personal
            criteria = block.criteria
            eligible = [
                int(m)
                for m in active
                if members.employed[m]
                and world.transaction_accounts[m] is not None
                and int(members.income_cents[m]) >= cents(criteria.min_income)
                and int(self.scores[m]) >= criteria.min_credit_score
            ]
            count = min(len(eligible), round(block.initial_share * len(active)))
            if count <= 0:
                continue
            chosen = rng.choice(np.array(eligible), size=count, replace=False).tolist()
            for member in chosen:
                wanted.append(self._seasoned(kind, int(member), start, rng))
        if not wanted:
            return
        accounts = self._open_accounts(t, [(item[0], item[1]) for item in wanted])
        for item, account in zip(wanted, accounts, strict=True):
            if account is None:
                continue
            member, product, balance, rate, months, anchor, property_cents = item
            loan = self._book(
                member,
                product,
                account,
                balance,
                rate,
                months,
                anchor,
                opened=start,
                migrated=True,
                property_cents=property_cents,
            )
            self._stage(
                [Leg(loan.account_id, "CREDIT", balance), Leg(LOAN_FUNDING, "DEBIT", balance)],
                "Loan migrated from the previous core",
                _TAGS["loan_migration"],
            )
        self._flush(t, start)

    def _seasoned(
        self, kind: str, member: int, start: date, rng: np.random.Generator
    ) -> tuple[int, str, int, Decimal, int, date, int]:
        """A migrated loan: (member, product, balance now, rate, months left, anchor, property)."""
        p = self.params
        income = int(self.world.members.income_cents[member])
        day = int(rng.integers(1, 29))
        anchor = date(start.year, start.month, day)
        if day >= start.day:
            anchor = add_months(anchor, -1)
        if kind == "home":
            home = p.home
            fixed = bool(rng.random() < home.fixed_share)
            product = HOME_FIXED if fixed else HOME_VARIABLE
            rate = home.fixed_rate if fixed else self.variable_rate
            term = home.term_months
            age = int(rng.integers(0, home.initial_max_age_months + 1))
            principal = self._home_amount(income, rng)
            lvr = float(rng.uniform(home.lvr_low, home.lvr_high))
            property_cents = round(principal / lvr * (1 + SEASONING_GROWTH) ** age)
        else:
            personal = p.personal
            product, rate = PERSONAL, personal.rate
            term = int(rng.choice(np.array(personal.terms_months)))
            age = int(rng.integers(0, term))
            principal = self._personal_amount(income, rng)
            property_cents = 0
        # The migrated book was underwritten too: at most what the criteria allow.
        block = p.home if kind == "home" else p.personal
        assessed = rate + p.home.assessment_buffer if kind == "home" else rate
        step = 100_000 if kind == "home" else 10_000
        ceiling = _affordable(income, assessed, term, float(block.criteria.max_dti_ratio))
        principal = max(min(principal, ceiling // step * step), step)
        balance = migrated_balance(principal, rate, term, age)
        return member, product, balance, rate, term - age, anchor, property_cents

    def _home_amount(self, income: int, rng: np.random.Generator) -> int:
        home = self.params.home
        multiple = home.income_multiple * math.exp(home.income_multiple_sigma * rng.normal())
        amount = round(income * multiple / 100_000) * 100_000  # whole AUD 1,000
        return int(min(max(amount, cents(home.min_amount)), cents(home.max_amount)))

    def _personal_amount(self, income: int, rng: np.random.Generator) -> int:
        personal = self.params.personal
        median = cents(self.world.behaviour.income.median_annual)
        scale = math.sqrt(min(max(income / median, 0.25), 4.0))
        drawn = LogNormalAmount.from_dollars(personal.mean_amount, personal.amount_cv)
        amount = int(drawn.sample(rng, 1, scale=scale)[0]) // 10_000 * 10_000  # whole AUD 100
        return int(min(max(amount, cents(personal.min_amount)), cents(personal.max_amount)))

    # ------------------------------------------------------------------ the daily run

    def run_day(self, day: date, t: float) -> None:
        """The day's lending, at its close (after the day's salaries and spending).

        A new month's rates first, then instalments due today, catch-ups,
        defaults, collections that end today, and the day's applications.
        """
        self._sync_scores()
        if self._month is not None:
            month, self._month = self._month, None
            self._new_month(month, t)
        self._instalments(day, t)
        self._catch_up(day, t)
        self._defaults(day)
        self._collect(day, t)
        self._applications(day, t)

    def _miss_probability(self, loan: Loan, works: bool) -> float:
        """Monthly probability that a borrower who is up to date misses (see LendingParams)."""
        p = self.params
        members = self.world.members
        hazard = p.home.miss_monthly if loan.home else p.personal.miss_monthly
        if not works:
            hazard *= p.unemployed_multiplier
        hazard *= math.exp(
            p.unemployment_sensitivity * (self.unemployment - p.reference_unemployment)
        )
        income = int(members.income_cents[loan.member])
        if income > 0:
            excess = loan.account.payment_cents * 12 / income - loan.dsr_at_open
            if excess > 0:
                hazard *= math.exp(p.serviceability_sensitivity * excess)
        if loan.home and loan.property_cents > 0:
            value = loan.property_cents * self.hpi / loan.hpi_at_open
            lvr = loan.account.balance_cents / value
            if lvr > 0.8:
                hazard *= math.exp(p.lvr_sensitivity * (lvr - 0.8))
            if lvr > 1.0:
                hazard *= p.negative_equity_multiplier
        score = float(self.scores[loan.member])
        hazard *= math.exp(-p.score_sensitivity * (score - p.credit_score_mean) / p.credit_score_sd)
        return min(1.0, hazard)

    def _instalments(self, day: date, t: float) -> None:
        """Accrue, then pay or miss, every instalment falling due today."""
        due = [loan for loan in self.due.pop(day, []) if loan.status == OPEN]
        if not due:
            return
        p = self.params
        world = self.world
        members = world.members
        employed, active = members.employed, members.active
        plans: list[_Plan] = []
        for loan in due:
            u_exit, u_hazard, u_hardship = loan.rng.random(3).tolist()
            account = loan.account
            due_date = account.next_due
            interest = account.accrue_month()
            loan.interest_charged_cents += interest
            self.today.interest_cents += interest
            if interest:
                self._stage(
                    [
                        Leg(loan.account_id, "CREDIT", interest),
                        Leg(INTEREST_INCOME, "DEBIT", interest),
                    ],
                    "Loan interest",
                    _TAGS["loan_interest"],
                )
            instalment = account.current_due_cents or 0
            arrears = account.arrears_cents
            member = loan.member
            works = bool(employed[member])
            block = p.home if loan.home else p.personal
            if (
                arrears == 0
                and not loan.distressed
                and loan.hardship_left == 0
                and (not active[member] or u_exit < block.discharge_monthly)
            ):
                amount = account.balance_cents
                entry = self._stage(
                    [Leg(loan.account_id, "DEBIT", amount), Leg(LOAN_FUNDING, "CREDIT", amount)],
                    "Loan paid out",
                    _TAGS["loan_discharge"],
                )
                plans.append(_Plan(loan, due_date, _DISCHARGE, amount, 0, entry))
                continue
            mode, intended, reduced = _PAY, 0, 0
            if loan.hardship_left > 0:
                mode = _HARDSHIP
                reduced = _share_of(instalment, p.hardship_payment_share)
                intended = reduced
            else:
                if loan.distressed:
                    cure = p.cure_monthly_employed if works else p.cure_monthly_unemployed
                    if u_hazard < cure:
                        loan.distressed = False
                elif u_hazard < self._miss_probability(loan, works):
                    loan.distressed = True
                if not loan.distressed:
                    intended = instalment + arrears
            amount = 0
            if intended and self._fund(member, intended):
                amount = intended
            elif mode == _PAY and intended and arrears and self._fund(member, instalment):
                amount = instalment
            if (
                amount == 0
                and mode == _PAY
                and not works
                and not loan.had_hardship
                and p.hardship_months > 0
                and u_hardship < p.hardship_share
            ):
                # Hardship variation: arrears capitalised, reduced payments for a while.
                mode = _HARDSHIP
                account.overdue.clear()
                self._untrouble(loan)
                loan.hardship_left = p.hardship_months
                loan.had_hardship = True
                loan.distressed = False
                self.in_hardship[loan.number] = loan
                self.today.hardship_granted += 1
                reduced = _share_of(instalment, p.hardship_payment_share)
                amount = reduced if reduced and self._fund(member, reduced) else 0
            account_id = world.transaction_accounts[member]
            entry = None
            if amount and account_id is not None:
                entry = self._stage(
                    [Leg(loan.account_id, "DEBIT", amount), Leg(account_id, "CREDIT", amount)],
                    "Loan repayment",
                    _TAGS["loan_repayment"],
                )
            plans.append(_Plan(loan, due_date, mode, amount, reduced, entry))
        accepted = self._flush(t, day)
        for plan in plans:
            self._settle(plan, plan.entry is not None and accepted[plan.entry])

    def _fund(self, member: int, amount: int) -> bool:
        """Whether the member's everyday account can pay ``amount`` now.

        A member short in the everyday account covers the gap from their
        savings account if it holds enough (their buffer), by a transfer
        staged before the repayment; otherwise the repayment is not attempted.
        """
        world = self.world
        everyday = world.transaction_accounts[member]
        if everyday is None or amount <= 0:
            return False
        balances = world.shadow.balances
        short = amount - balances.get(everyday, 0)
        if short <= 0:
            return True
        savings = world.savings_accounts[member]
        if savings is None or balances.get(savings, 0) < short:
            return False
        self._stage(
            [Leg(everyday, "DEBIT", short), Leg(savings, "CREDIT", short)],
            "Transfer from savings to cover a loan repayment",
            _TAGS["loan_cover"],
        )
        return True

    def _settle(self, plan: _Plan, paid: bool) -> None:
        """Apply one due loan's answered payment (or its absence) to its amortization state."""
        loan, account = plan.loan, plan.loan.account
        if paid:
            split = account.pay(plan.amount)
            loan.principal_repaid_cents += split.principal_cents
            loan.interest_paid_cents += split.interest_cents
            if plan.mode == _DISCHARGE:
                self.today.discharges += 1
            else:
                self.today.repayments_cents += plan.amount
        else:
            account.miss()
            if plan.mode != _HARDSHIP or plan.reduced > 0:
                loan.missed += 1
                self.today.missed_payments += 1
        if plan.mode == _HARDSHIP:
            # The unpaid part of a hardship instalment is capitalised, not overdue;
            # a missed reduced payment is overdue by the reduced amount only.
            kept = [(d, c) for d, c in account.overdue if d != plan.due_date]
            if not paid and plan.reduced > 0:
                kept.append((plan.due_date, plan.reduced))
            account.overdue[:] = kept
            loan.hardship_left -= 1
            if loan.hardship_left == 0:
                self.in_hardship.pop(loan.number, None)
                before = account.payment_cents
                self._offset(loan, account.reprice(account.annual_rate) - before)
        if account.closed:
            self._finish(loan, CLOSED)
            return
        if account.overdue:
            self._trouble(loan)
        else:
            self._untrouble(loan)
        self.due.setdefault(account.next_due, []).append(loan)

    def _catch_up(self, day: date, t: float) -> None:
        """Borrowers in arrears who are not in distress pay the arrears once they can.

        A repayment missed only for lack of funds (the direct debit bounced)
        is retried every day, so a borrower with a job catches up with the
        next salary instead of rolling to 30 days; one who lost their job, or
        is in distress, does not.
        """
        plans = []
        for loan in self.troubled.values():
            account = loan.account
            if loan.status != OPEN or loan.distressed or loan.hardship_left or not account.overdue:
                continue
            arrears = account.arrears_cents
            everyday = self.world.transaction_accounts[loan.member]
            if everyday is None or not self._fund(loan.member, arrears):
                continue
            entry = self._stage(
                [Leg(loan.account_id, "DEBIT", arrears), Leg(everyday, "CREDIT", arrears)],
                "Loan arrears repayment",
                _TAGS["loan_repayment"],
            )
            plans.append((loan, arrears, entry))
        if not plans:
            return
        accepted = self._flush(t, day)
        for loan, arrears, entry in plans:
            if not accepted[entry]:
                continue
            split = loan.account.pay(arrears)
            loan.principal_repaid_cents += split.principal_cents
            loan.interest_paid_cents += split.interest_cents
            self.today.repayments_cents += arrears
            if loan.account.closed:
                self._finish(loan, CLOSED)
            elif not loan.account.overdue:
                self._untrouble(loan)

    def _defaults(self, day: date) -> None:
        """Loans 90+ days past due default: no more interest, collections until write-off."""
        for loan in list(self.troubled.values()):
            if loan.status != OPEN or loan.account.days_past_due(day) < DEFAULT_DAYS:
                continue
            loan.status = DEFAULTED
            loan.defaulted_on = day
            loan.hardship_left = 0
            self.in_hardship.pop(loan.number, None)
            self.today.defaults += 1
            block = self.params.home if loan.home else self.params.personal
            self.collections.setdefault(add_months(day, block.write_off_months), []).append(loan)

    def _collect(self, day: date, t: float) -> None:
        """Collections that end today: recover what can be recovered, write off the rest."""
        ending = [loan for loan in self.collections.pop(day, []) if loan.status == DEFAULTED]
        if not ending:
            return
        plans = []
        for loan in ending:
            balance = loan.account.balance_cents
            if loan.home:
                value = loan.property_cents * self.hpi / loan.hpi_at_open
                sale_share = 1.0 - self.params.home.sale_cost_share
                recovered = min(balance, max(0, round(value * sale_share)))
            else:
                recovered = _share_of(balance, self.params.personal.recovery_share)
            lost = balance - recovered
            recovery = loss = None
            if recovered:
                recovery = self._stage(
                    [
                        Leg(loan.account_id, "DEBIT", recovered),
                        Leg(LOAN_FUNDING, "CREDIT", recovered),
                    ],
                    "Loan recovery",
                    _TAGS["recovery"],
                )
            if lost:
                loss = self._stage(
                    [Leg(loan.account_id, "DEBIT", lost), Leg(LOAN_FUNDING, "CREDIT", lost)],
                    "Loan written off",
                    _TAGS["write_off"],
                )
            plans.append((loan, recovered, recovery, lost, loss))
        accepted = self._flush(t, day)
        for loan, recovered, recovery, lost, loss in plans:
            account = loan.account
            if recovery is not None and accepted[recovery]:
                split = account.pay(recovered)
                loan.principal_repaid_cents += split.principal_cents
                loan.interest_paid_cents += split.interest_cents
                loan.recovered_cents += recovered
                self.today.recoveries_cents += recovered
            if loss is not None and accepted[loss]:
                loan.principal_written_off_cents += loan.outstanding_principal_cents
                loan.interest_written_off_cents += account.interest_unpaid_cents
                loan.written_off_cents += lost
                account.balance_cents = 0
                account.interest_unpaid_cents = 0
                account.overdue.clear()
                self.today.losses_cents += lost
            if account.balance_cents == 0:
                self._finish(loan, WRITTEN_OFF if loan.written_off_cents else RECOVERED)

    # ------------------------------------------------------------------ applications

    def _applications(self, day: date, t: float) -> None:
        """Today's applications: decide, open the approved loans, disburse them."""
        world, p = self.world, self.params
        members = world.members
        n = members.n
        if n == 0:
            return
        rng = self.apply_rng
        approved: list[tuple[int, str, int, Decimal, int, int]] = []
        for kind, block in (("personal", p.personal), ("home", p.home)):
            daily = -math.expm1(math.log1p(-block.application_monthly) * 12 / 365.25)
            hits = np.flatnonzero((rng.random(n) < daily) & members.active).tolist()
            for member in hits:
                if world.transaction_accounts[member] is None or self._holds(member, kind):
                    continue
                decision = self._decide(kind, member, rng)
                self.today.applications += 1
                self.decisions[kind]["applications"] += 1
                self.decisions[kind][decision[0]] += 1
                if decision[0] == "approved":
                    self.today.approvals += 1
                    approved.append(decision[1])
        if not approved:
            return
        accounts = self._open_accounts(t, [(item[0], item[1]) for item in approved])
        for item, account in zip(approved, accounts, strict=True):
            if account is None:
                continue
            member, product, amount, rate, months, property_cents = item
            loan = self._book(
                member,
                product,
                account,
                amount,
                rate,
                months,
                day,
                opened=day,
                migrated=False,
                property_cents=property_cents,
            )
            self.today.originations += 1
            self.today.originated_cents += amount
            if loan.home:
                self._stage(
                    [Leg(account, "CREDIT", amount), Leg(LOAN_FUNDING, "DEBIT", amount)],
                    "Home loan settlement",
                    _TAGS["loan_drawdown"],
                )
                continue
            everyday = world.transaction_accounts[member]
            assert everyday is not None  # checked before deciding
            self._stage(
                [Leg(account, "CREDIT", amount), Leg(everyday, "DEBIT", amount)],
                "Personal loan drawdown",
                _TAGS["loan_drawdown"],
            )
            self._stage(
                [Leg(everyday, "CREDIT", amount), Leg(PURCHASE_CLEARING, "DEBIT", amount)],
                "Purchase paid from personal loan",
                _PURCHASE_TAGS,
            )
        self._flush(t, day)

    def _decide(
        self, kind: str, member: int, rng: np.random.Generator
    ) -> tuple[str, tuple[int, str, int, Decimal, int, int]]:
        """One application: draw what is asked for and check it against creditCriteria.

        Returns:
            (outcome, loan terms): outcome is ``approved`` or the first
            criterion failed (``declined_income``, ``declined_score``,
            ``declined_dti``); terms are (member, product, amount, rate,
            months, property value).
        """
        p = self.params
        members = self.world.members
        income = int(members.income_cents[member]) if members.employed[member] else 0
        if kind == "home":
            home = p.home
            fixed = bool(rng.random() < home.fixed_share)
            product = HOME_FIXED if fixed else HOME_VARIABLE
            rate = home.fixed_rate if fixed else self.variable_rate
            months = home.term_months
            amount = self._home_amount(int(members.income_cents[member]), rng)
            lvr = float(rng.uniform(home.lvr_low, home.lvr_high))
            property_cents = round(amount / lvr)
            assessed = rate + home.assessment_buffer
            criteria = home.criteria
        else:
            personal = p.personal
            product, rate = PERSONAL, personal.rate
            months = int(rng.choice(np.array(personal.terms_months)))
            amount = self._personal_amount(int(members.income_cents[member]), rng)
            property_cents = 0
            assessed = rate
            criteria = personal.criteria
        terms = (member, product, amount, rate, months, property_cents)
        if income < cents(criteria.min_income):
            return "declined_income", terms
        if int(self.scores[member]) < criteria.min_credit_score:
            return "declined_score", terms
        existing = sum(loan.account.payment_cents for loan in self.holding.get(member, ()))
        repayments = existing + monthly_payment(amount, assessed, months)
        if Decimal(repayments * 12) > criteria.max_dti_ratio * income:
            return "declined_dti", terms
        return "approved", terms

    # ------------------------------------------------------------------ the economy

    def on_month(self, month: Any) -> None:
        """The economy published a new month: applied at the day's lending run.

        Deferred so that every lending command is stamped at the day's close
        (the platform's chain stays in time order whatever the hour).
        """
        self._month = month

    def _new_month(self, month: Any, t: float) -> None:
        """House prices and unemployment move; variable loans reprice if the cash rate moved."""
        self.hpi = float(month.house_price_index)
        self.cash_rate = float(month.cash_rate)
        self.unemployment = float(month.unemployment)
        rate = variable_rate(self.cash_rate, self.params.home.variable_margin)
        if rate == self.variable_rate:
            return
        self.variable_rate = rate
        self.reprices += 1
        world = self.world
        products = loan_products(self.params, self.cash_rate)
        product = next(p for p in products if p.product_code == HOME_VARIABLE)
        (result,) = world.bus.submit(
            world.tenant_id,
            [world.ids.envelope("UpsertProduct", world.clock.iso_at(t), product)],
        )
        if not result.accepted:
            raise RuntimeError(f"{world.tenant_id}: variable rate update refused: {result.message}")
        for loan in self.variable_loans.values():
            if loan.status != OPEN:
                continue
            before = loan.account.payment_cents
            self._offset(loan, loan.account.reprice(rate) - before)

    # ------------------------------------------------------------------ outputs

    def close_day(self, day: date) -> dict[str, Any]:
        """The day's row of `lending.csv` (arrears measured at the end of the day)."""
        buckets = {0: 0, 30: 0, 60: 0, 90: 0}
        arrears_1 = 0
        variable_arrears = 0
        for loan in self.troubled.values():
            account = loan.account
            days = account.days_past_due(day)
            if days <= 0:
                continue
            bucket = arrears_bucket(days)
            buckets[bucket] += account.balance_cents
            if bucket == 0:
                arrears_1 += account.balance_cents
            elif loan.variable:
                variable_arrears += account.balance_cents
        today = self.today
        row: dict[str, Any] = {
            "date": day.isoformat(),
            "tenant_id": self.world.tenant_id,
            "loans": self.live,
            "loan_book_cents": self.book_cents,
            "variable_book_cents": self.variable_book_cents,
            "arrears_1_cents": arrears_1,
            "arrears_30_cents": buckets[30],
            "arrears_60_cents": buckets[60],
            "arrears_90_cents": buckets[90],
            "variable_arrears_30_plus_cents": variable_arrears,
        }
        for item in fields(Flows):
            row[item.name] = getattr(today, item.name)
        row["hardship_active"] = len(self.in_hardship)
        row["variable_rate"] = str(self.variable_rate)
        row["house_price_index"] = round(self.hpi, 4)
        self.rows.append(tuple(row[name] for name in LENDING_COLUMNS))
        self.total.add(today)
        self.today = Flows()
        return row

    def loan_rows(self) -> list[tuple[Any, ...]]:
        """One row per loan for `loans.csv`."""
        return [
            (
                self.world.tenant_id,
                loan.number,
                loan.account_id,
                loan.member,
                loan.product,
                loan.opened.isoformat(),
                int(loan.migrated),
                loan.lent_cents,
                str(loan.account.annual_rate),
                loan.account.payment_cents,
                loan.status,
                loan.account.balance_cents,
                loan.principal_repaid_cents,
                loan.interest_charged_cents,
                loan.interest_paid_cents,
                loan.recovered_cents,
                loan.written_off_cents,
                loan.missed,
                loan.defaulted_on.isoformat() if loan.defaulted_on else "",
            )
            for loan in self.loans
        ]

    def expectations(self) -> list[dict[str, Any]]:
        """Expected beside actual for this tenant's loans (see the module docstring)."""
        tenant = self.world.tenant_id
        loans = self.loans
        lent = sum(loan.lent_cents for loan in loans)
        accounted = sum(
            loan.principal_repaid_cents
            + loan.principal_written_off_cents
            + loan.outstanding_principal_cents
            for loan in loans
        )
        interest_ok = all(
            loan.interest_charged_cents
            == loan.interest_paid_cents
            + loan.interest_written_off_cents
            + loan.account.interest_unpaid_cents
            for loan in loans
        )
        items = [
            {
                "name": "loans: principal repaid + written off + outstanding equals amount lent "
                "(cents)",
                "tenant": tenant,
                "expected": lent,
                "actual": accounted,
                "passed": lent == accounted and interest_ok,
                "detail": f"{len(loans)} loans; interest charged = paid + written off + "
                f"unpaid: {'yes' if interest_ok else 'NO'}",
            }
        ]
        closed = [loan for loan in loans if loan.status == CLOSED]
        differing = [loan for loan in closed if loan.principal_repaid_cents != loan.lent_cents]
        if closed:
            items.append(
                {
                    "name": "fully repaid loans: principal repaid equals amount lent (cents)",
                    "tenant": tenant,
                    "expected": sum(loan.lent_cents for loan in closed),
                    "actual": sum(loan.principal_repaid_cents for loan in closed),
                    "passed": not differing,
                    "detail": f"{len(closed)} loans repaid in full; {len(differing)} differ",
                }
            )
        shadow = self.world.shadow.balances
        model = sum(loan.account.balance_cents for loan in loans)
        ledger = -sum(shadow.get(loan.account_id, 0) for loan in loans)
        mismatched = [
            loan for loan in loans if -shadow.get(loan.account_id, 0) != loan.account.balance_cents
        ]
        items.append(
            {
                "name": "loan balances: shadow book equals the amortization model (cents owed)",
                "tenant": tenant,
                "expected": model,
                "actual": ledger,
                "passed": not mismatched and ledger == self.book_cents,
                "detail": f"{len(loans)} loan accounts; {len(mismatched)} differ; running book "
                f"{self.book_cents}; {self.refused} lending commands refused",
            }
        )
        approval = self._approval_item()
        if approval is not None:
            items.append(approval)
        return items

    def _approval_item(self) -> dict[str, Any] | None:
        """The approval rate beside its target, within a band widened by sampling error.

        The band is the calibration tolerance plus a 99.9% binomial sampling
        margin, so a handful of applications cannot fail a run by chance;
        without applications there is nothing to report.
        """
        p = self.params
        applications = sum(d["applications"] for d in self.decisions.values())
        approvals = sum(d["approved"] for d in self.decisions.values())
        targets = {"personal": p.personal.approval_target, "home": p.home.approval_target}
        detail = "; ".join(
            f"{kind}: {d['approved']}/{d['applications']} approved"
            f" (declined: income {d['declined_income']}, score {d['declined_score']},"
            f" dti {d['declined_dti']})"
            for kind, d in self.decisions.items()
        )
        if applications == 0:
            return None
        target = sum(targets[k] * d["applications"] for k, d in self.decisions.items())
        target /= applications
        rate = approvals / applications
        band = APPROVAL_TOLERANCE + Z_999 * math.sqrt(target * (1 - target) / applications)
        return {
            "name": "loan approval rate beside the configured target",
            "tenant": self.world.tenant_id,
            "expected": f"{target:.3f} +/- {band:.3f}",
            "actual": round(rate, 4),
            "passed": abs(rate - target) <= band,
            "detail": detail,
        }


def _lending_params(world: TenantWorld) -> LendingParams:
    """The tenant's lending parameters: `behaviour.lending` if there, else the defaults."""
    params = getattr(world.behaviour, "lending", None)
    return params if isinstance(params, LendingParams) else LendingParams()


#: Series published for declared expectations (see analysis.expectations), per tenant per day.
SERIES = {
    "loan_book_cents": "loan_book_cents",
    "arrears_30_cents": "arrears_30_cents",
    "arrears_60_cents": "arrears_60_cents",
    "arrears_90_cents": "arrears_90_cents",
    "loan_defaults": "defaults",
    "loan_losses_cents": "losses_cents",
    "loan_applications": "applications",
    "loan_approvals": "approvals",
}


def attach(ctx: RunContext) -> None:
    """Plug lending into a run: products, the migrated book, daily process, outputs.

    Args:
        ctx: the run's context (worlds, bus, economy, hooks).
    """
    books: dict[str, LendingBook] = {}
    state = ctx.economy.state
    for tenant, world in ctx.worlds.items():
        params = _lending_params(world)
        if params.enabled:
            books[tenant] = LendingBook(world, params, state)
    if not books:
        return

    def on_events(tenant: str, events: list[Any]) -> None:
        book = books.get(tenant)
        if book is not None and book.pending:
            book.on_events(events)

    ctx.bus.target.subscribe(on_events)
    for book in books.values():
        book.set_up(ctx.env.now)

    def on_month(month: Any) -> None:
        for book in books.values():
            book.on_month(month)

    ctx.economy.on_month(on_month)

    def day_close(day: date) -> None:
        for tenant, book in books.items():
            book.run_day(day, ctx.env.now)
            row = book.close_day(day)
            for series, column in SERIES.items():
                ctx.record(series, tenant, day, row[column])

    # First among the day-close hooks: lending moves money at the close, and the
    # savings engine must take its end-of-day balances after that, not before.
    ctx.day_hooks.insert(0, day_close)

    def finish(out: Path) -> list[dict[str, Any]]:
        with (out / LENDING_FILE).open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(LENDING_COLUMNS)
            # By date, then tenant, like kpis.csv.
            writer.writerows(
                sorted((r for b in books.values() for r in b.rows), key=lambda r: (r[0], r[1]))
            )
        with (out / LOANS_FILE).open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(LOANS_COLUMNS)
            for book in books.values():
                writer.writerows(book.loan_rows())
        items: list[dict[str, Any]] = []
        for book in books.values():
            items += book.expectations()
        return items

    ctx.at_finish(finish)
