"""Term deposits: 3, 6 and 12 months, paid at maturity, rolled over or paid out.

Each month a small share of members with savings to spare lock part of it
away: the twin opens a TERM_DEPOSIT account (OpenAccount, no initial deposit)
and moves the money from the member's savings account (PostEntry: DEBIT the
term deposit, CREDIT savings). The rate is fixed at opening: the cash rate of
the month plus a term spread. At maturity the interest, simple interest
ACT/365 on the principal rounded half-even to the cent, is paid into the
deposit from `GL_INTEREST_EXPENSE`; then the deposit either rolls over for
the same term at the new rate or is paid back to savings.

Ids the platform assigns come from its event stream (`AccountOpened` caused
by our OpenAccount), as everywhere else in the twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from models.amortization import add_months
from models.params import TermDepositParams
from models.world import TenantWorld
from sim.context import RunContext
from turingcore.contract import Constraints, Interest, Leg, OpenAccount, PostEntry, UpsertProduct

INTEREST_EXPENSE = "GL_INTEREST_EXPENSE"
TERMS = (3, 6, 12)


def term_deposit_products() -> list[UpsertProduct]:
    """One product per term (rates shown are indicative; each deposit fixes its own)."""
    return [
        UpsertProduct(
            product_code=f"TD_{months}M",
            name=f"{months}-month Term Deposit",
            product_type="TERM_DEPOSIT",
            category="TERM_DEPOSIT",
            interest=Interest(
                rate=Decimal("4.00"),
                calculation_method="SIMPLE_ACT_365",
                payment_frequency="AT_MATURITY",
            ),
            constraints=Constraints(
                min_balance=0,
                allow_overdraft=False,
                term_months_default=months,
                term_months_options=[months],
            ),
        )
        for months in TERMS
    ]


@dataclass(slots=True)
class Deposit:
    """One term deposit the twin is tracking."""

    member: int
    account: str
    principal: int
    rate: Decimal
    months: int
    opened: date
    matures: date


def maturity_interest(principal_cents: int, rate: Decimal, opened: date, matures: date) -> int:
    """Simple interest ACT/365 on the principal, rounded half-even to the cent."""
    days = (matures - opened).days
    exact = Decimal(principal_cents) * rate / Decimal(100) * Decimal(days) / Decimal(365)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class TermDeposits:
    """One tenant's term deposits."""

    def __init__(self, world: TenantWorld, params: TermDepositParams) -> None:
        self.world = world
        self.params = params
        self.rng = world.rng("term-deposits")
        self.open: list[Deposit] = []
        self.opened_ids: dict[str, str] = {}
        self.interest_paid = 0
        self.matured = 0
        self.rolled = 0

    def on_event(self, causation_id: str, account_id: str) -> None:
        self.opened_ids[causation_id] = account_id

    def timestamp(self, day: date) -> str:
        """The day-close second: these commands run at close, after the day's payments."""
        clock = self.world.clock
        return clock.iso_at(clock.day_start(day) + clock.day_length(day) - 1)

    def open_new(self, day: date, cash_rate: float) -> None:
        """This month's new term deposits, funded from members' savings."""
        world, params = self.world, self.params
        members = world.members
        candidates = [
            i
            for i in np.flatnonzero(members.active & members.has_savings).tolist()
            if world.savings_accounts[i] is not None
        ]
        if not candidates:
            return
        chosen = [
            i
            for i, u in zip(candidates, self.rng.random(len(candidates)), strict=True)
            if u < params.opening_rate_monthly
        ]
        plans = []
        for member in chosen:
            savings = world.savings_accounts[member]
            amount = int(world.shadow.balance(savings) * params.share_of_savings)
            if amount < params.min_amount_cents:
                continue
            term_index = int(
                self.rng.choice(3, p=np.array(params.term_weights) / sum(params.term_weights))
            )
            plans.append((member, savings, amount, term_index))
        if not plans:
            return
        stamp = self.timestamp(day)
        opens = [
            world.ids.envelope(
                "OpenAccount",
                stamp,
                OpenAccount(
                    customer_id=world.customer_ids[member],
                    product_code=f"TD_{TERMS[term]}M",
                    currency=world.scenario.currency,
                    account_purpose="TERM_DEPOSIT",
                ),
            )
            for member, _savings, _amount, term in plans
        ]
        results = world.bus.submit(world.tenant_id, opens)
        funding, opened = [], []
        for plan, envelope, result in zip(plans, opens, results, strict=True):
            account = self.opened_ids.pop(envelope.command_id, None)
            if not result.accepted or account is None:
                continue
            member, savings, amount, term = plan
            months = TERMS[term]
            rate = Decimal(str(round(max(cash_rate + self.params.spreads[term], 0.0), 2)))
            opened.append(
                Deposit(member, account, amount, rate, months, day, add_months(day, months))
            )
            funding.append(
                self._entry(day, stamp, account, savings, amount, "Term deposit funding")
            )
        self._submit_moves(funding, opened, lambda deposit: self.open.append(deposit))

    def _entry(self, day: date, stamp: str, debit: str, credit: str, amount: int, text: str) -> Any:
        world = self.world
        return world.ids.envelope(
            "PostEntry",
            stamp,
            PostEntry(
                day,
                day,
                world.scenario.currency,
                [Leg(debit, "DEBIT", amount), Leg(credit, "CREDIT", amount)],
                text,
                {"channel": "INTERNAL", "category": "term_deposit"},
                world.metadata,
            ),
        )

    def _submit_moves(self, envelopes: list[Any], items: list[Any], on_accept: Any) -> None:
        if not envelopes:
            return
        world = self.world
        results = world.bus.submit(world.tenant_id, envelopes)
        for envelope, item, result in zip(envelopes, items, results, strict=True):
            if result.accepted:
                legs = envelope.payload.legs
                world.shadow.transfer(legs[0].account_id, legs[1].account_id, legs[0].amount)
                on_accept(item)

    def mature(self, day: date, cash_rate: float) -> None:
        """Pay interest on deposits maturing today; roll over or pay out."""
        due = [d for d in self.open if d.matures <= day]
        if not due:
            return
        self.open = [d for d in self.open if d.matures > day]
        stamp = self.timestamp(day)
        interest_entries, paid = [], []
        for deposit in due:
            interest = maturity_interest(
                deposit.principal, deposit.rate, deposit.opened, deposit.matures
            )
            if interest > 0:
                interest_entries.append(
                    self._entry(
                        day,
                        stamp,
                        deposit.account,
                        INTEREST_EXPENSE,
                        interest,
                        "Term deposit interest",
                    )
                )
                paid.append((deposit, interest))

        def credited(item: tuple[Deposit, int]) -> None:
            deposit, interest = item
            deposit.principal += interest
            self.interest_paid += interest

        self._submit_moves(interest_entries, paid, credited)
        roll = self.rng.random(len(due)) < self.params.rollover_share
        payouts, paying = [], []
        for deposit, rolls in zip(due, roll.tolist(), strict=True):
            self.matured += 1
            member_gone = not self.world.members.active[deposit.member]
            if rolls and not member_gone:
                term = TERMS.index(deposit.months)
                deposit.rate = Decimal(
                    str(round(max(cash_rate + self.params.spreads[term], 0.0), 2))
                )
                deposit.opened, deposit.matures = day, add_months(day, deposit.months)
                self.open.append(deposit)
                self.rolled += 1
                continue
            savings = self.world.savings_accounts[deposit.member]
            balance = self.world.shadow.balance(deposit.account)
            if savings is None or balance <= 0:
                continue
            payouts.append(
                self._entry(day, stamp, savings, deposit.account, balance, "Term deposit maturity")
            )
            paying.append(deposit)
        self._submit_moves(payouts, paying, lambda _deposit: None)


def attach(ctx: RunContext) -> None:
    """Set up the term deposit products and run the tenants' deposits monthly."""
    books: dict[str, TermDeposits] = {}
    for tenant, world in ctx.worlds.items():
        books[tenant] = TermDeposits(world, world.behaviour.term_deposits)
        stamp = world.clock.iso_at(0.0)
        commands = [world.ids.envelope("UpsertProduct", stamp, p) for p in term_deposit_products()]
        for result in world.bus.submit(tenant, commands):
            if not result.accepted:
                raise RuntimeError(f"{tenant}: term deposit product refused: {result.message}")

    def on_events(tenant: str, events: list[Any]) -> None:
        book = books.get(tenant)
        if book is None:
            return
        for sealed in events:
            event = sealed.event
            payload = event.payload
            if (
                event.event_type == "AccountOpened"
                and isinstance(payload, dict)
                and payload.get("productType") == "TERM_DEPOSIT"
            ):
                book.on_event(event.causation_id, event.entity_id)

    ctx.bus.target.subscribe(on_events)
    state = {"cash_rate": float(ctx.economy.state.cash_rate)}

    def on_month(month: Any) -> None:
        state["cash_rate"] = float(month.cash_rate)

    ctx.economy.on_month(on_month)

    def day_close(day: date) -> None:
        for tenant, book in books.items():
            book.mature(day, state["cash_rate"])
            if day.day == 1:
                book.open_new(day, state["cash_rate"])
            balance = sum(book.world.shadow.balance(d.account) for d in book.open)
            ctx.record("term_deposits_cents", tenant, day, balance)

    ctx.at_day_close(day_close)
