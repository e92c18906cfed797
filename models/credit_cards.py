"""Credit cards: limit, spend, monthly statement, minimum payment, interest, repayment.

Products: one CREDIT_CARD product per limit tier (`models.card_products`),
whose limit is the platform's overdraft limit on the card account. Because
every account's balance is debits minus credits, a purchase CREDITs the card
account and what the member owes is minus its balance; the platform refuses
any entry that would take a card below minus its limit (`OVERDRAFT_LIMIT`).

Who holds a card: at the start, and as members join, each eligible member
(employed, income at least `min_income`) opens a card with probability
`holding_share` (OpenAccount on the tier their income earns). Each card gets
a statement day (1 to 28) and a repayment habit drawn once: full payer, or
revolver paying a fixed share of each closing balance (never less than the
minimum). Revolvers on the book at the start carry a balance brought forward.

Spend: the everyday payment path (`models.payments`) puts a cardholder's
card purchase on the credit card with probability `spend_share` when the
card has room for it (`TenantWorld.card_of`), otherwise on the debit card.

Each day at close, in this order:

1. **Repayments due today**: the member pays from the everyday account
   (topped up from savings when short) the whole closing balance (full
   payers) or their share of it; a payment below the minimum is a missed
   payment. Paying the whole closing balance by the due date keeps the card
   interest-free for the next statement period.
2. **Accrual**: every card accrues interest on its end-of-day owed balance
   at ``purchase_rate / 365`` a day (ACT/365), exactly, in the sub-cent units
   of `models.interest` (one unit is 1 / 365,000,000 cent).
3. **Statements** of cards whose statement day is today: the cycle's
   accrued interest (the days since the last statement, today included) is
   rounded half-even to the cent and charged, unless the card is in its
   interest-free period (the previous statement was paid in full by its due
   date; a new card starts interest-free, a revolver brought forward does
   not). Either way the sub-cent remainder is dropped: each statement's
   interest is its own half-even rounding. The closing balance is then
   what is owed, the minimum payment is `minimum_payment` of it, and the
   due date is `due_days` later.
4. **Leavers**: a member who left pays the card off from another
   institution (`GL_NPP_CLEARING`), the final cycle's interest included.

The platform never lets a card go over its limit, so interest that would
take a card past it is *deferred*: charged (in full, first) at the next
statement with room for it. Deferred interest is owed, only not yet posted;
it is reported (`deferred_cents`) and never lost.

Money movements (every one a PostEntry):

=====================  ===============================  ===============================
movement               DEBIT                            CREDIT
=====================  ===============================  ===============================
purchase               `GL_CARD_CLEARING`               card account
balance brought fwd    `GL_CARD_CLEARING`               card account
interest charged       `GL_INTEREST_INCOME`             card account
repayment              card account                     member's everyday account
cover from savings     member's everyday account        member's savings account
payout (member left)   card account                     `GL_NPP_CLEARING`
=====================  ===============================  ===============================

Outputs: `cards.csv` (per tenant per day: cards, limits, balances owed,
revolving balances, spend, interest, repayments, statements, missed
payments, deferred interest), KPI series for declared expectations, and an
expectation item per tenant: no card over its limit in the platform's read
model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from models.amortization import round_half_even
from models.card_products import CardParams, card_product_code, card_products
from models.interest import UNITS_PER_CENT, accrue_day
from models.staged import StagedEntries
from models.world import TenantWorld
from sim.context import RunContext
from sim.target import read_model_balances
from turingcore.contract import Leg, OpenAccount

CARD_CLEARING = "GL_CARD_CLEARING"
INTEREST_INCOME = "GL_INTEREST_INCOME"
PAYOUT_CLEARING = "GL_NPP_CLEARING"
CARDS_FILE = "cards.csv"
#: Repayment shares are held in basis points so that money stays integer.
BASIS_POINTS = 10_000
_REPAY_TAGS = {"channel": "INTERNAL", "category": "card_repayment"}
_COVER_TAGS = {"channel": "INTERNAL", "category": "savings"}
_INTEREST_TAGS = {"channel": "INTERNAL", "category": "card_interest"}
_PAYOUT_TAGS = {"channel": "NPP", "category": "closure"}
_BROUGHT_TAGS = {"channel": "INTERNAL", "category": "card_balance_brought_forward"}


# --------------------------------------------------------------------------- exact rules


def minimum_payment(closing_owed_cents: int, percent: Decimal, floor_cents: int) -> int:
    """The minimum payment of a statement, in cents (CommBank's and NAB's rule).

    The greater of `percent` of the closing balance rounded down to the whole
    dollar and `floor_cents`; the whole balance when it is smaller than
    that; nothing when nothing is owed.

    Args:
        closing_owed_cents: what the member owes at the statement (positive).
        percent: the minimum payment percentage (2 means 2%), exact.
        floor_cents: the smallest minimum payment, cents.

    Returns:
        The minimum payment, between 0 and `closing_owed_cents`.
    """
    if closing_owed_cents <= 0:
        return 0
    share = Fraction(closing_owed_cents) * Fraction(percent) / 100
    whole_dollars = (share.numerator // (share.denominator * 100)) * 100
    return min(closing_owed_cents, max(whole_dollars, floor_cents))


def statement_interest(accrued_units: int) -> int:
    """A cycle's interest in cents: its exact accrual rounded half-even.

    Args:
        accrued_units: the cycle's accrual in `models.interest` units
            (``owed cents × rate × 10^4`` per day; UNITS_PER_CENT per cent).
    """
    return round_half_even(Fraction(accrued_units, UNITS_PER_CENT))


def limit_for(income_cents: int, params: CardParams) -> int:
    """The largest tier not above `limit_income_ratio` × income (at least the smallest)."""
    cap = income_cents * params.limit_income_ratio
    eligible = [limit for limit in params.limits_cents if limit <= cap]
    return eligible[-1] if eligible else params.limits_cents[0]


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class Card:
    """One credit card the twin runs (the platform holds its balance)."""

    index: int
    member: int
    account: str
    limit: int
    statement_day: int
    full_payer: bool
    repay_bp: int
    interest_free: bool
    deferred: int = 0
    closing: int = 0
    minimum: int = 0
    due: date | None = None
    open: bool = True
    statements: int = 0
    interest_charged: int = 0


@dataclass(slots=True)
class CardDay:
    """One tenant's card flows for one day (a row of cards.csv, with the day's stocks)."""

    interest_cents: int = 0
    repayments_cents: int = 0
    payouts_cents: int = 0
    brought_forward_cents: int = 0
    statements: int = 0
    missed_payments: int = 0
    opened: int = 0
    closed: int = 0


CARD_COLUMNS = (
    "date",
    "tenant_id",
    "cards",
    "limits_cents",
    "balances_cents",
    "revolving_cents",
    "spend_cents",
    *(f.name for f in fields(CardDay)),
    "deferred_cents",
)


class CardBook:
    """One credit union's credit cards."""

    def __init__(self, world: TenantWorld, params: CardParams) -> None:
        self.world = world
        self.params = params
        self.rng = world.rng("credit-cards")
        self.cards: list[Card] = []
        self.by_day: dict[int, list[Card]] = {}
        self.due: dict[date, list[Card]] = {}
        self.accounts: list[str] = []
        self.units = np.zeros(0, dtype=np.int64)
        self.known_members = 0
        self.pending: dict[str, str] = {}
        self.today = CardDay()
        self.rows: list[dict[str, Any]] = []
        self.owed_yesterday = 0
        self.entries = StagedEntries(world)

    # ------------------------------------------------------------------ platform plumbing

    def on_events(self, events: list[Any]) -> None:
        """Learn the ids of the card accounts our OpenAccount commands created."""
        for sealed in events:
            event = sealed.event
            if event.event_type == "AccountOpened" and event.causation_id in self.pending:
                self.pending[event.causation_id] = event.entity_id

    def _stage(self, legs: list[Leg], narrative: str, tags: dict[str, str]) -> None:
        """Queue an entry, applying it to the shadow book now (predicted accepted)."""
        self.entries.stage(legs, narrative, tags)

    def _flush(self, t: float, day: date) -> list[bool]:
        """Submit the queued entries in order; undo refused ones in the shadow book."""
        return [accepted for _legs, accepted in self.entries.flush(t, day)]

    def owed(self, card: Card) -> int:
        """What the member owes on the card now (the shadow book, equal to the platform's)."""
        return -self.world.shadow.balance(card.account)

    # ------------------------------------------------------------------ opening

    def set_up(self, t: float) -> None:
        """The card products, then cards (some brought forward with balances) for first members."""
        world = self.world
        stamp = world.clock.iso_at(t)
        products = card_products(self.params)
        commands = [world.ids.envelope("UpsertProduct", stamp, p) for p in products]
        for result in world.bus.submit(world.tenant_id, commands):
            if not result.accepted:
                raise RuntimeError(f"{world.tenant_id}: card product refused: {result.message}")
        self._enrol(t, world.clock.date_at(t), seasoned=True)

    def _enrol(self, t: float, day: date, seasoned: bool) -> None:
        """Members who joined since the last call decide on a card; holders get one."""
        world, params = self.world, self.params
        members = world.members
        first, last = self.known_members, members.n
        self.known_members = last
        if last <= first:
            return
        # Five draws per candidate, whatever happens, so outcomes never shift the stream.
        draws = self.rng.random((last - first, 5))
        income = members.income_cents
        wanted = []
        for offset, member in enumerate(range(first, last)):
            hold, day_u, payer_u, share_u, utilisation_u = draws[offset].tolist()
            eligible = (
                members.active[member]
                and members.employed[member]
                and int(income[member]) >= params.min_income_cents
                and world.customer_ids[member] is not None
                and world.transaction_accounts[member] is not None
            )
            if not eligible or hold >= params.holding_share:
                continue
            low, high = params.revolver_share_low, params.revolver_share_high
            wanted.append(
                (
                    member,
                    limit_for(int(income[member]), params),
                    1 + int(day_u * 28),
                    payer_u < params.full_payer_share,
                    int((low + (high - low) * share_u) * BASIS_POINTS),
                    utilisation_u,
                )
            )
        if not wanted:
            return
        stamp = world.clock.iso_at(t)
        envelopes = []
        for member, limit, *_rest in wanted:
            envelope = world.ids.envelope(
                "OpenAccount",
                stamp,
                OpenAccount(
                    customer_id=world.customer_ids[member],
                    product_code=card_product_code(limit),
                    currency=world.scenario.currency,
                    account_purpose="CREDIT_CARD",
                ),
            )
            self.pending[envelope.command_id] = ""
            envelopes.append(envelope)
        try:
            results = world.bus.submit(world.tenant_id, envelopes)
        finally:
            learned, self.pending = self.pending, {}
        new_accounts = []
        for envelope, result, plan in zip(envelopes, results, wanted, strict=True):
            account = learned.get(envelope.command_id)
            if not result.accepted or not account:
                continue
            member, limit, statement_day, full_payer, repay_bp, utilisation_u = plan
            card = Card(
                index=len(self.cards),
                member=member,
                account=account,
                limit=limit,
                statement_day=statement_day,
                full_payer=full_payer,
                repay_bp=repay_bp,
                interest_free=full_payer or not seasoned,
            )
            self.cards.append(card)
            self.by_day.setdefault(statement_day, []).append(card)
            self.accounts.append(account)
            new_accounts.append(account)
            world.card_of[member] = (account, limit)
            world.shadow.open(account)
            self.today.opened += 1
            if seasoned and not full_payer:
                low = self.params.initial_utilisation_low
                high = self.params.initial_utilisation_high
                share = int((low + (high - low) * utilisation_u) * BASIS_POINTS)
                brought = limit * share // BASIS_POINTS
                if brought > 0:
                    legs = [Leg(CARD_CLEARING, "DEBIT", brought), Leg(account, "CREDIT", brought)]
                    self._stage(legs, "Card balance brought forward", _BROUGHT_TAGS)
                    self.today.brought_forward_cents += brought
        self.units = np.concatenate([self.units, np.zeros(len(new_accounts), dtype=np.int64)])
        self._flush(t, day)

    # ------------------------------------------------------------------ the day

    def run_day(self, day: date, t: float) -> None:
        """Close the day: new cards, repayments due, accrual, statements, leavers."""
        self._enrol(t, day, seasoned=False)
        self._repayments(day, t)
        self._accrue()
        self._statements(day, t)
        self._leavers(day, t)

    def _repayments(self, day: date, t: float) -> None:
        due = self.due.pop(day, [])
        if not due:
            return
        world = self.world
        shadow = world.shadow
        active = world.members.active
        plans = []
        for card in due:
            card.due = None
            if not card.open or card.closing <= 0 or not active[card.member]:
                continue  # a member who left pays the card out instead (`_leavers`)
            target = card.closing
            if not card.full_payer:
                target = max(card.minimum, card.closing * card.repay_bp // BASIS_POINTS)
            amount = min(target, self.owed(card))
            if amount <= 0:
                continue
            everyday = world.transaction_accounts[card.member]
            savings = world.savings_accounts[card.member]
            if everyday is None:
                continue
            short = amount - shadow.balance(everyday)
            if short > 0 and savings is not None:
                cover = min(short, shadow.balance(savings))
                if cover > 0:
                    legs = [Leg(everyday, "DEBIT", cover), Leg(savings, "CREDIT", cover)]
                    self._stage(legs, "Transfer from savings", _COVER_TAGS)
            paid = min(amount, shadow.balance(everyday))
            if paid > 0:
                legs = [Leg(card.account, "DEBIT", paid), Leg(everyday, "CREDIT", paid)]
                self._stage(legs, "Credit card repayment", _REPAY_TAGS)
            plans.append((card, max(paid, 0)))
        self._flush(t, day)
        for card, paid in plans:
            self.today.repayments_cents += paid
            if paid < card.minimum:
                self.today.missed_payments += 1
            card.interest_free = paid >= card.closing

    def _accrue(self) -> None:
        """One day's exact interest on every card's end-of-day owed balance."""
        if not self.accounts:
            return
        balances = self.world.shadow.balances
        owed = np.fromiter(
            (-balances.get(a, 0) for a in self.accounts), np.int64, len(self.accounts)
        )
        self.units = accrue_day(owed, self.params.purchase_rate, self.units)

    def _charge(self, card: Card, interest: int) -> None:
        """Stage `interest` (plus anything deferred) on the card, as far as its limit allows."""
        wanted = interest + card.deferred
        room = card.limit - self.owed(card)
        charged = max(0, min(wanted, room))
        card.deferred = wanted - charged
        if charged > 0:
            legs = [Leg(INTEREST_INCOME, "DEBIT", charged), Leg(card.account, "CREDIT", charged)]
            self._stage(legs, "Card interest", _INTEREST_TAGS)
            card.interest_charged += charged
            self.today.interest_cents += charged

    def _statements(self, day: date, t: float) -> None:
        today = [c for c in self.by_day.get(day.day, ()) if c.open]
        if not today:
            return
        units = self.units
        for card in today:
            interest = 0 if card.interest_free else statement_interest(int(units[card.index]))
            units[card.index] = 0
            self._charge(card, interest)
        self._flush(t, day)
        params = self.params
        floor, percent = params.min_payment_floor_cents, params.min_payment_percent
        due = day + timedelta(days=params.due_days)
        for card in today:
            card.closing = max(self.owed(card), 0)
            card.minimum = minimum_payment(card.closing, percent, floor)
            card.statements += 1
            self.today.statements += 1
            if card.closing > 0:
                card.due = due
                self.due.setdefault(due, []).append(card)
            else:
                card.interest_free = True  # nothing to pay: paid in full

    def _leavers(self, day: date, t: float) -> None:
        """Members who left pay their cards off from elsewhere, the final cycle's interest too.

        The balance is paid out first, so the final interest (and anything
        deferred) always has room under the limit; then that is paid out too.
        """
        active = self.world.members.active
        leaving = [c for c in self.cards if c.open and not active[c.member]]
        if not leaving:
            return
        self._pay_out(leaving)
        self._flush(t, day)
        for card in leaving:
            interest = 0 if card.interest_free else statement_interest(int(self.units[card.index]))
            self.units[card.index] = 0
            self._charge(card, interest)
        self._flush(t, day)
        self._pay_out(leaving)
        self._flush(t, day)
        for card in leaving:
            card.open = False
            card.due = None
            self.world.card_of.pop(card.member, None)
            self.today.closed += 1

    def _pay_out(self, cards: list[Card]) -> None:
        for card in cards:
            owed = self.owed(card)
            if owed > 0:
                legs = [Leg(card.account, "DEBIT", owed), Leg(PAYOUT_CLEARING, "CREDIT", owed)]
                self._stage(legs, "Card paid out: member left", _PAYOUT_TAGS)
                self.today.payouts_cents += owed

    # ------------------------------------------------------------------ outputs

    def close_day(self, day: date) -> dict[str, Any]:
        """Today's cards.csv row (stocks at the end of the day, the day's flows)."""
        live = [c for c in self.cards if c.open]
        owed = {c.index: max(self.owed(c), 0) for c in live}
        balances = sum(owed.values())
        today = self.today
        # Spend is what the cards' balances moved by that repayments, payouts,
        # interest and balances brought forward do not explain: purchases.
        signed = sum(self.owed(c) for c in self.cards)
        moved = signed - self.owed_yesterday
        spend = (
            moved
            + today.repayments_cents
            + today.payouts_cents
            - today.interest_cents
            - today.brought_forward_cents
        )
        row: dict[str, Any] = {
            "date": day.isoformat(),
            "tenant_id": self.world.tenant_id,
            "cards": len(live),
            "limits_cents": sum(c.limit for c in live),
            "balances_cents": balances,
            "revolving_cents": sum(owed[c.index] for c in live if not c.interest_free),
            "spend_cents": spend,
        }
        for item in fields(CardDay):
            row[item.name] = getattr(today, item.name)
        row["deferred_cents"] = sum(c.deferred for c in live)
        self.rows.append(row)
        self.owed_yesterday = signed
        self.today = CardDay()
        return row

    def limit_item(self, target: Any) -> dict[str, Any]:
        """Expected vs actual: no card over its limit in the platform's read model."""
        world = self.world
        balances = read_model_balances(target, world.tenant_id)
        over = [c.account for c in self.cards if balances.get(c.account, 0) < -c.limit]
        used = [-balances.get(c.account, 0) / c.limit for c in self.cards if c.open and c.limit > 0]
        return {
            "name": "credit cards within their limits (platform read model)",
            "tenant": world.tenant_id,
            "expected": 0,
            "actual": len(over),
            "passed": not over,
            "detail": f"{len(self.cards)} cards checked; highest utilisation "
            f"{max(used, default=0.0):.1%}" + (f"; first over its limit {over[0]}" if over else ""),
        }


#: Series published for declared expectations (see analysis.expectations), per tenant per day.
SERIES = {
    "card_accounts": "cards",
    "card_limits_cents": "limits_cents",
    "card_balances_cents": "balances_cents",
    "card_revolving_cents": "revolving_cents",
    "card_spend_cents": "spend_cents",
    "card_interest_cents": "interest_cents",
    "card_repayments_cents": "repayments_cents",
    "card_missed_payments": "missed_payments",
}


def _card_params(world: TenantWorld) -> CardParams:
    params = getattr(world.behaviour, "credit_cards", None)
    return params if isinstance(params, CardParams) else CardParams()


class CardModel:
    """Every tenant's card book, the stream listener and the run's outputs."""

    def __init__(self, ctx: RunContext, books: dict[str, CardBook]) -> None:
        self.ctx = ctx
        self.books = books

    def on_events(self, tenant: str, events: list[Any]) -> None:
        """Subscribed to the platform's stream: card account ids for our OpenAccounts."""
        book = self.books.get(tenant)
        if book is not None and book.pending:
            book.on_events(events)

    def day_close(self, day: date) -> None:
        for tenant, book in self.books.items():
            book.run_day(day, self.ctx.env.now)
            row = book.close_day(day)
            for series, column in SERIES.items():
                self.ctx.record(series, tenant, day, row[column])

    def finish(self, out: Path) -> list[dict[str, Any]]:
        """Write cards.csv; return the limit check per tenant."""
        rows = sorted(
            (row for book in self.books.values() for row in book.rows),
            key=lambda row: (row["date"], row["tenant_id"]),
        )
        with (out / CARDS_FILE).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CARD_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return [book.limit_item(self.ctx.bus.target) for book in self.books.values()]


def attach(ctx: RunContext) -> None:
    """Plug credit cards into a run: products, first cardholders, the daily close, outputs.

    The model is reachable afterwards as the owner of its finish hook
    (`CardModel.finish`), which is how tests read the cards' terms.
    """
    books = {
        tenant: CardBook(world, _card_params(world))
        for tenant, world in ctx.worlds.items()
        if _card_params(world).enabled
    }
    if not books:
        return
    model = CardModel(ctx, books)
    ctx.bus.target.subscribe(model.on_events)
    for book in books.values():
        book.set_up(ctx.env.now)
    # Before savings takes its end-of-day balances (repayments may draw on
    # savings); lending, attached after us, puts its own hook ahead of this one.
    ctx.day_hooks.insert(0, model.day_close)
    ctx.at_finish(model.finish)
