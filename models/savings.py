"""Savings interest: accrued daily, credited monthly, exact to the sub-cent.

Every day at close, each SAVER account earns interest on its end-of-day
balance at the product's base rate, and separately at its bonus rate, both
ACT/365 in exact sub-cent units (`models.interest`). On the last day of the
month, accounts that met the bonus conditions (approximated as: the balance
ended the month higher than it started, i.e. money went in and no net
withdrawal) add their bonus accrual; the whole cents are credited by one
PostEntry per account (DEBIT the savings account, CREDIT
`GL_INTEREST_EXPENSE`: the credit union's interest cost, in the ledger's
debits-minus-credits convention), and the sub-cent remainders carry to the
next month. The twin is the credit union's interest engine here: it accrues
on its own shadow book, which the invariants prove equal to the platform's.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from models.interest import accrue_day, credit_month
from models.products import SAVER, skeleton_products
from models.world import TenantWorld
from sim.context import RunContext
from turingcore.contract import Leg, PostEntry

INTEREST_EXPENSE = "GL_INTEREST_EXPENSE"


def _saver_rates() -> tuple[Decimal, Decimal]:
    """(base, bonus) annual % of the SAVER product the tenants are set up with."""
    saver = next(p for p in skeleton_products() if p.product_code == SAVER)
    interest = saver.interest
    return interest.base_rate or Decimal(0), interest.bonus_rate or Decimal(0)


class SavingsInterest:
    """One tenant's accrual state: account ids, remainders, month-start balances."""

    def __init__(self, world: TenantWorld) -> None:
        self.world = world
        self.base_rate, self.bonus_rate = _saver_rates()
        self.accounts: list[str] = []
        self.base = np.zeros(0, dtype=np.int64)
        self.bonus = np.zeros(0, dtype=np.int64)
        self.month_start = np.zeros(0, dtype=np.int64)
        self.credited_cents = 0
        self.credits = 0

    def _sync_accounts(self) -> None:
        """Add savings accounts opened since yesterday (new members)."""
        known = set(self.accounts)
        new = [a for a in self.world.savings_accounts if a is not None and a not in known]
        if not new:
            return
        self.accounts.extend(new)
        zeros = np.zeros(len(new), dtype=np.int64)
        self.base = np.concatenate([self.base, zeros])
        self.bonus = np.concatenate([self.bonus, zeros])
        # Opened this month: it started the month at zero, so its opening
        # deposit counts as this month's deposit.
        self.month_start = np.concatenate([self.month_start, zeros])

    def _balances(self, accounts: list[str]) -> np.ndarray:
        balances = self.world.shadow.balances
        return np.fromiter((balances.get(a, 0) for a in accounts), np.int64, len(accounts))

    def day_close(self, day: date) -> None:
        """Accrue today's interest; on the month's last day, credit it."""
        if len(self.accounts) != sum(1 for a in self.world.savings_accounts if a is not None):
            self._sync_accounts()
        if not self.accounts:
            return
        balances = self._balances(self.accounts)
        self.base = accrue_day(balances, self.base_rate, self.base)
        self.bonus = accrue_day(balances, self.bonus_rate, self.bonus)
        if (day + timedelta(days=1)).month != day.month:
            self._credit(day, balances)

    def _credit(self, day: date, balances: np.ndarray) -> None:
        eligible = balances > self.month_start
        total = self.base + np.where(eligible, self.bonus, 0)
        cents, remainders = credit_month(total)
        # Remainders carry: base and bonus parts are kept together from here.
        self.base = remainders
        self.bonus = np.zeros_like(self.bonus)
        world = self.world
        # Booked at the day-close second: the day's accrual (already done) used
        # the balance before the credit, which earns interest from tomorrow.
        timestamp = world.clock.iso_at(world.clock.day_start(day) + world.clock.day_length(day) - 1)
        payees = np.flatnonzero(cents > 0).tolist()
        amounts = cents.tolist()
        commands, moves = [], []
        for i in payees:
            account, amount = self.accounts[i], int(amounts[i])
            commands.append(
                world.ids.envelope(
                    "PostEntry",
                    timestamp,
                    PostEntry(
                        day,
                        day,
                        world.scenario.currency,
                        [Leg(account, "DEBIT", amount), Leg(INTEREST_EXPENSE, "CREDIT", amount)],
                        "Interest",
                        {"channel": "INTERNAL", "category": "interest"},
                        world.metadata,
                    ),
                )
            )
            moves.append((account, amount))
        if commands:
            results = world.bus.submit(world.tenant_id, commands)
            for (account, amount), result in zip(moves, results, strict=True):
                if result.accepted:
                    world.shadow.transfer(account, INTEREST_EXPENSE, amount)
                    self.credited_cents += amount
                    self.credits += 1
        self.month_start = self._balances(self.accounts)


def attach(ctx: RunContext) -> None:
    """Accrue and credit savings interest for every tenant of the run."""
    engines = {tenant: SavingsInterest(world) for tenant, world in ctx.worlds.items()}

    def day_close(day: date) -> None:
        for engine in engines.values():
            engine.day_close(day)

    def day_close_and_record(day: date) -> None:
        day_close(day)
        for tenant, engine in engines.items():
            ctx.record("interest_credited_cents", tenant, day, engine.credited_cents)

    for engine in engines.values():
        engine._sync_accounts()
    ctx.at_day_close(day_close_and_record)
