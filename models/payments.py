"""Everyday payments: a tenant's whole day drawn at once, submitted hour by hour.

Each simulated day the tenant's memoryless flows (salaries, card spend, BPAY
bills, NPP payments in and out, savings sweeps) are drawn for all members
with numpy (`models.transactions.draw_day`), turned into PostEntry commands,
and submitted in hourly batches at the hour they happen, so a real-time run
paces them and an outage (later) can interrupt them. One process serves every
tenant: each hour's batches of all tenants go to the bus together, which over
HTTP sends them concurrently (per-tenant order kept).

Before submitting, the twin predicts from its shadow book whether each
payment will be refused for insufficient funds; the prediction is compared
with the platform's answer (an expectation in the report). The shadow book
then follows exactly what the platform acknowledged.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
from faker import Faker

from models.distributions import LogNormalAmount
from models.identity import AustralianBankingProvider
from models.params import PayeeParams
from models.transactions import Flow, draw_day, expected_amount_per_member_day, flow_params
from models.world import TenantWorld
from sim.contract import TWIN_ACTOR
from turingcore.contract import CommandResult, Envelope, Leg, PostEntry

#: The GL account standing for the outside party of each flow.
CLEARING = {
    Flow.SALARY: "GL_SALARY_CLEARING",
    Flow.CARD: "GL_CARD_CLEARING",
    Flow.BPAY: "GL_BPAY_CLEARING",
    Flow.NPP_OUT: "GL_NPP_CLEARING",
    Flow.NPP_IN: "GL_NPP_CLEARING",
}
NARRATIVE = {
    Flow.SALARY: "Salary",
    Flow.CARD: "Card purchase",
    Flow.BPAY: "BPAY bill payment",
    Flow.NPP_OUT: "NPP payment",
    Flow.NPP_IN: "NPP payment received",
    Flow.SAVINGS: "Transfer to savings",
}
#: Merchant category codes drawn for card spend, with their category names.
CARD_MERCHANTS = (
    ("5411", "groceries"),
    ("5812", "restaurants"),
    ("5541", "fuel"),
    ("5814", "fast_food"),
    ("5912", "pharmacy"),
    ("5999", "retail"),
    ("4111", "transport"),
    ("5311", "department_store"),
)
#: Outside accounts (BSB and number) a tenant's members pay over NPP.
PAYEE_POOL = 4096
#: Odd multipliers that spread members' regular payees over the pool: member m's
#: slot j is pool[(m * MEMBER_SPREAD + j * SLOT_SPREAD) % PAYEE_POOL], so a
#: member's slots are distinct (SLOT_SPREAD is odd, the pool a power of two) and
#: neighbouring members' payees lie far apart; two members sharing a payee now
#: and then (the same landlord) is realistic.
MEMBER_SPREAD = 2_654_435_761
SLOT_SPREAD = 40_503


def payee_indices(rng: np.random.Generator, members: np.ndarray, params: PayeeParams) -> np.ndarray:
    """The pool index of each row's NPP payee: mostly one of the member's regular payees.

    Slot j of the member's `params.regular` payees is drawn with weight
    1 / (j + 1); with probability `params.one_off_share` the payee is instead
    drawn uniformly from the whole pool (someone the member has not paid
    before, most likely). Three draws per row, in a fixed order.

    Args:
        rng: the tenant's merchant/payee stream.
        members: member index of every row of the day.
        params: the tenant's payee parameters.

    Returns:
        int64 pool indices, one per row (only NPP-out rows use theirs).
    """
    n = len(members)
    weights = 1.0 / np.arange(1, params.regular + 1)
    cumulative = np.cumsum(weights / weights.sum())
    slot = np.minimum(np.searchsorted(cumulative, rng.random(n), side="right"), params.regular - 1)
    regular = (members.astype(np.int64) * MEMBER_SPREAD + slot * SLOT_SPREAD) % PAYEE_POOL
    one_off = rng.random(n) < params.one_off_share
    stranger = rng.integers(0, PAYEE_POOL, n)
    return np.where(one_off, stranger, regular)


class PaymentBook:
    """Per-tenant constants of the payment path: shared tag dicts, counterparties."""

    def __init__(self, world: TenantWorld) -> None:
        faker = Faker("en_AU")
        faker.seed_instance(world.streams.child_seed(world.tenant_id, "counterparties"))
        faker.add_provider(AustralianBankingProvider)
        self.card_tags = [
            {"channel": "CARD", "category": category, "merchantMcc": mcc}
            for mcc, category in CARD_MERCHANTS
        ]
        self.npp_tags = [
            {
                "channel": "NPP",
                "category": "transfer",
                "counterparty": f"{faker.bsb()} {faker.account_number()}",
            }
            for _ in range(PAYEE_POOL)
        ]
        self.fixed_tags = {
            Flow.SALARY: {"channel": "PAYROLL", "category": "salary"},
            Flow.BPAY: {"channel": "BPAY", "category": "bills"},
            Flow.NPP_IN: {"channel": "NPP", "category": "transfer_in"},
            Flow.SAVINGS: {"channel": "INTERNAL", "category": "savings"},
        }


class _TenantPayments:
    """One tenant's payment streams and the current day's draws."""

    def __init__(self, world: TenantWorld) -> None:
        self.world = world
        self.book = PaymentBook(world)
        self.rng = world.rng("transactions")
        self.tag_rng = world.rng("merchants")
        self.card_rng = world.rng("card-choice")
        self.card_share = world.behaviour.credit_cards.spend_share
        self.bounds: list[int] = []

    def draw(self, day: Any) -> None:
        """The day's payments of every member, cut into hours."""
        world = self.world
        self.day = day
        self.start = world.clock.day_start(day)
        length = world.clock.day_length(day)
        day_index = (day - world.scenario.start).days
        draws = draw_day(self.rng, world.behaviour, world.members, day, day_index, world.calendar)
        _record_card_expectation(world, day, draws)
        seconds = np.minimum(draws.second, int(length) - 1)
        self.bounds = np.searchsorted(seconds, np.arange(25) * 3600).tolist()
        self.rows = (
            seconds.tolist(),
            draws.flow.tolist(),
            draws.member.tolist(),
            draws.amount_cents.tolist(),
        )
        book = self.book
        self.merchant = self.tag_rng.integers(0, len(book.card_tags), len(draws)).tolist()
        self.counterparty = payee_indices(
            self.tag_rng, draws.member, world.behaviour.npp_payees
        ).tolist()
        # Which card purchases a cardholder puts on the credit card (drawn only
        # once the tenant has cards, so a run without them draws as before).
        self.on_card = (
            (self.card_rng.random(len(draws)) < self.card_share).tolist() if world.card_of else None
        )

    def has(self, hour: int) -> bool:
        return self.bounds[hour] < self.bounds[hour + 1]

    def build(self, hour: int) -> tuple[list[Envelope], list[tuple[str, str, int, bool]]]:
        return _build_slice(
            self.world,
            self.book,
            self.day,
            self.start,
            self.rows,
            self.merchant,
            self.counterparty,
            self.on_card,
            self.bounds[hour],
            self.bounds[hour + 1],
        )


def hourly_payments(env: Any, worlds: Sequence[TenantWorld]) -> Generator[Any, Any, None]:
    """Every tenant's payments, hour by hour, until the scenario ends.

    Each hour every tenant with payments in it builds one batch; the batches
    go to the bus together (`CommandBus.submit_many`: over HTTP they are in
    flight at once, each tenant's order kept) and each tenant then reconciles
    its shadow book, in scenario order. Tenants draw from their own streams,
    so one tenant's payments never depend on another's.
    """
    if not worlds:
        return
    tenants = [_TenantPayments(world) for world in worlds]
    first = worlds[0]
    clock, scenario, bus = first.clock, first.scenario, first.bus
    day = clock.date_at(env.now)
    while day < scenario.end:
        for tenant in tenants:
            tenant.draw(day)
        start = clock.day_start(day)
        for hour in range(24):
            due = [tenant for tenant in tenants if tenant.has(hour)]
            if not due:
                continue
            at = start + hour * 3600
            if at > env.now:
                yield env.timeout(at - env.now)
            built = [(tenant.world, *tenant.build(hour)) for tenant in due]
            answers = bus.submit_many([(w.tenant_id, envelopes) for w, envelopes, _m in built])
            for (world, _envelopes, moves), results in zip(built, answers, strict=True):
                _reconcile(world, moves, results)
        day += timedelta(days=1)


def _record_card_expectation(world: TenantWorld, day: Any, draws: Any) -> None:
    """Analytic expected card spend beside what was drawn, for the report."""
    members = world.members
    active = members.active
    n_active = int(np.count_nonzero(active))
    if n_active == 0:
        return
    scale = members.spend_scale[active]
    mean_scale = float(scale.mean())
    expected = expected_amount_per_member_day(world.behaviour, Flow.CARD, day, mean_scale)
    params = flow_params(world.behaviour, Flow.CARD)
    amount = LogNormalAmount.from_dollars(params.mean_amount, params.cv)
    rate = expected / (amount.mean * mean_scale) if mean_scale > 0 else 0.0
    second_moment = amount.raw_moment(2) * float(np.mean(scale * scale))
    totals = world.totals
    totals.card_member_days += n_active
    totals.card_expected_cents += expected * n_active
    totals.card_expected_variance += rate * second_moment * n_active
    card = draws.flow == int(Flow.CARD)
    totals.card_spend_cents += int(draws.amount_cents[card].sum())
    totals.member_days += n_active


def _build_slice(
    world: TenantWorld,
    book: PaymentBook,
    day: Any,
    day_start: float,
    rows: tuple[list[int], list[int], list[int], list[int]],
    merchant: list[int],
    counterparty: list[int],
    on_card: list[bool] | None,
    low: int,
    high: int,
) -> tuple[list[Envelope], list[tuple[str, str, int, bool]]]:
    """Build and predict one hour of a tenant's payments (the hot loop).

    A cardholder's purchase drawn `on_card` goes on their credit card when the
    card has room for it (so the platform accepts it), else on the debit card.
    """
    seconds, flows, members, amounts = rows
    tenant_id = world.tenant_id
    iso_at = world.clock.iso_at
    next_ids = world.ids.next
    transaction_accounts = world.transaction_accounts
    savings_accounts = world.savings_accounts
    card_of = world.card_of
    shadow = world.shadow
    balances = shadow.balances
    metadata = world.metadata
    currency = world.scenario.currency
    card_tags, npp_tags, fixed_tags = book.card_tags, book.npp_tags, book.fixed_tags
    envelopes: list[Envelope] = []
    moves: list[tuple[str, str, int, bool]] = []
    salary, npp_in, savings = Flow.SALARY, Flow.NPP_IN, Flow.SAVINGS
    card, npp_out = Flow.CARD, Flow.NPP_OUT
    for i in range(low, high):
        member = members[i]
        account = transaction_accounts[member]
        if account is None:
            continue
        flow = flows[i]
        amount = amounts[i]
        if flow in (salary, npp_in):
            debit, credit = account, CLEARING[flow]
            legs = [Leg(account, "DEBIT", amount), Leg(credit, "CREDIT", amount)]
            expected = True
        else:
            if flow == savings:
                debit = savings_accounts[member]
                if debit is None:
                    continue
            else:
                debit = CLEARING[flow]
            credit = account
            if on_card is not None and flow == card and on_card[i]:
                held = card_of.get(member)
                if held is not None and balances.get(held[0], 0) + held[1] >= amount:
                    credit = held[0]
            legs = [Leg(credit, "CREDIT", amount), Leg(debit, "DEBIT", amount)]
            expected = credit != account or balances.get(account, 0) >= amount
        if flow == card:
            tags = card_tags[merchant[i]]
        elif flow == npp_out:
            tags = npp_tags[counterparty[i]]
        else:
            tags = fixed_tags[flow]
        if expected:
            shadow.transfer(debit, credit, amount)
        command_id, key = next_ids()
        envelopes.append(
            Envelope(
                command_id,
                tenant_id,
                "PostEntry",
                TWIN_ACTOR,
                iso_at(day_start + seconds[i]),
                PostEntry(day, day, currency, legs, NARRATIVE[flow], tags, metadata),
                key,
            )
        )
        moves.append((debit, credit, amount, expected))
    return envelopes, moves


def _reconcile(
    world: TenantWorld,
    moves: list[tuple[str, str, int, bool]],
    results: Sequence[CommandResult],
) -> None:
    """Count predicted refusals; correct the shadow book where the prediction missed."""
    shadow = world.shadow
    totals = world.totals
    for (debit, credit, amount, expected), result in zip(moves, results, strict=True):
        accepted = result.status == "ACCEPTED"
        if accepted == expected:
            if not accepted:
                totals.predicted_rejections += 1
            continue
        totals.prediction_misses += 1
        if accepted:
            shadow.transfer(debit, credit, amount)
        else:
            shadow.reverse(debit, credit, amount)
