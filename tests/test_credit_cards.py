"""Tests for models.credit_cards: statement, minimum payment and interest to the cent, the limit.

The exact rules are pinned on hand-worked examples; then a small run is
checked against a reference rebuilt independently from the stored events:
each card's end-of-day balances are folded from its entries, interest is
summed with Fractions at ``purchase_rate / 365`` a day and rounded half-even
at each statement, the interest-free rule is re-derived from the repayments
seen on due dates, and the platform's read model keeps every card within
its limit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from platform_builders import new_bank

from models.amortization import round_half_even
from models.card_products import CardParams, card_product_code, card_products
from models.credit_cards import (
    CARD_COLUMNS,
    CARDS_FILE,
    CardModel,
    limit_for,
    minimum_payment,
    statement_interest,
)
from models.interest import UNITS_PER_CENT, rate_units
from scenarios.loader import parse_scenario
from sim.twin import RunOptions, Twin
from turingcore.eventlog import EventLogReader

# --------------------------------------------------------------------------- exact rules


@pytest.mark.parametrize(
    ("closing", "expected"),
    [
        (0, 0),
        (-500, 0),  # a credit balance: nothing to pay
        (1, 1),
        (1_999, 1_999),  # under $25: the whole balance
        (2_500, 2_500),
        (100_000, 2_500),  # $1,000: 2% is $20, so the $25 floor
        (125_000, 2_500),  # $1,250: 2% is exactly $25
        (130_000, 2_600),  # $1,300: 2% is $26
        (134_999, 2_600),  # 2% is $26.9998, rounded down to the dollar
        (135_000, 2_700),
        (5_000_000, 100_000),  # $50,000: $1,000
    ],
)
def test_minimum_payment_is_two_percent_down_to_the_dollar_or_25(
    closing: int, expected: int
) -> None:
    """CommBank/NAB rule: max(2% of closing rounded down to the dollar, $25), capped at closing."""
    assert minimum_payment(closing, Decimal(2), 2_500) == expected


def test_minimum_payment_with_another_percentage_and_floor() -> None:
    """2.5% or $75 (CommBank's business cards), exact for a fractional percentage."""
    assert minimum_payment(400_000, Decimal("2.5"), 7_500) == 10_000
    assert minimum_payment(300_000, Decimal("2.5"), 7_500) == 7_500
    assert minimum_payment(6_000, Decimal("2.5"), 7_500) == 6_000


def test_statement_interest_rounds_half_even() -> None:
    """Half a cent goes to the even cent: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2; otherwise nearest."""
    half = UNITS_PER_CENT // 2
    assert statement_interest(half) == 0
    assert statement_interest(3 * half) == 2
    assert statement_interest(5 * half) == 2
    assert statement_interest(half + 1) == 1
    assert statement_interest(half - 1) == 0


def test_a_month_of_interest_on_1000_dollars() -> None:
    """$1,000 owed for 30 days at 12.99%: 100,000 x 0.1299 x 30 / 365 = 1,067.67 c -> 1,068 c."""
    units = 30 * 100_000 * rate_units(Decimal("12.99"))
    exact = Fraction(100_000) * Fraction("12.99") / 100 * 30 / 365
    assert statement_interest(units) == round_half_even(exact) == 1_068


def test_limit_tiers_follow_income() -> None:
    """The largest tier not above 15% of gross income, and at least the smallest."""
    params = CardParams()
    assert limit_for(10_000_00, params) == 2_000_00  # 15% is $1,500: the smallest tier
    assert limit_for(40_000_00, params) == 5_000_00  # $6,000
    assert limit_for(67_000_00, params) == 10_000_00  # $10,050
    assert limit_for(100_000_00, params) == 15_000_00
    assert limit_for(500_000_00, params) == 25_000_00


def test_card_params_refuse_unordered_tiers() -> None:
    """Tiers must increase; revolver shares must be ordered."""
    with pytest.raises(ValueError, match="increasing"):
        CardParams(limits=(Decimal(5000), Decimal(2000)))
    with pytest.raises(ValueError, match="revolver_share_low"):
        CardParams(revolver_share_low=0.5, revolver_share_high=0.2)


# --------------------------------------------------------------------------- the platform's limit


def test_the_platform_enforces_a_card_products_limit() -> None:
    """A card spend CREDITs the card; the platform refuses one that would pass minus the limit."""
    bank = new_bank(customers=1)
    cmd = bank.cmd
    products = card_products(CardParams(limits=(Decimal(10),)))
    assert [p.product_code for p in products] == [card_product_code(1_000)] == ["CREDIT_CARD_10"]
    bank.accept(cmd.envelope("UpsertProduct", products[0]))
    bank.accept(cmd.open_account(bank.customers[0], "CREDIT_CARD_10"))
    card = bank.platform.accounts(bank.tenant_id, limit=100)["accounts"][-1]["accountId"]
    spend = [(card, "CREDIT", 600), ("GL_CARD_CLEARING", "DEBIT", 600)]
    bank.accept(cmd.post(spend))
    bank.refuse(
        cmd.post([(card, "CREDIT", 401), ("GL_CARD_CLEARING", "DEBIT", 401)]), "OVERDRAFT_LIMIT"
    )
    bank.accept(cmd.post([(card, "CREDIT", 400), ("GL_CARD_CLEARING", "DEBIT", 400)]))
    assert bank.balances()[card] == -1_000  # owed: the whole limit
    bank.refuse(
        cmd.post([(card, "CREDIT", 1), ("GL_CARD_CLEARING", "DEBIT", 1)]), "OVERDRAFT_LIMIT"
    )
    bank.accept(cmd.post([(card, "DEBIT", 250), (bank.accounts[0], "CREDIT", 250)]))  # repayment
    assert bank.balances()[card] == -750


# --------------------------------------------------------------------------- a small run

SCENARIO = """
name: cards-test
start: 2025-07-01
days: 100
seed: 11
behaviour:
  lifecycle: {churn_annual: 0.6}
  credit_cards: {holding_share: 1.0, min_income: 1000.00,
                 limits: [1000, 3000, 8000], limit_income_ratio: 0.05}
tenants:
  - {id: cu-c, code: CU_C, display_name: Card CU, archetype: small, state: NSW,
     members: 70, annual_growth: 0.0}
expectations:
  - {name: cards are held, kpi: cards, tenant: all, at: 2025-10-01, min: 20}
  - {name: cards are used but not maxed, kpi: card_utilisation, tenant: cu-c,
     at: 2025-10-01, min: 0.01, max: 0.95}
  - {name: some balances revolve, kpi: card_revolving_share, tenant: all, at: 2025-10-01,
     min: 0.01, max: 1}
  - {name: interest is charged, kpi: card_interest_cents, tenant: all, at: 2025-10-01, min: 1}
  - {name: cards are spent on, kpi: card_spend_cents, tenant: all, at: 2025-10-01, min: 1}
"""
RATE = Fraction("12.99")
INTEREST = "Card interest"
PAYOUT = "Card paid out: member left"
REPAYMENT = "Credit card repayment"


@pytest.fixture(scope="module")
def card_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], CardModel]:
    out = tmp_path_factory.mktemp("cards") / "run"
    twin = Twin(parse_scenario(SCENARIO), 11, RunOptions(out_dir=out, progress=False))
    outcome = twin.run()
    (model,) = [
        owner
        for hook in twin.context.finish_hooks
        if isinstance(owner := getattr(hook, "__self__", None), CardModel)
    ]
    return out, outcome.summary, model


def stored(run: Path) -> list[dict[str, Any]]:
    with EventLogReader(run / "events.sqlite") as reader:
        return [json.loads(e.canonical) for e in reader.events("cu-c")]


def test_the_run_passes_with_cards_on_the_book(card_run: tuple[Path, dict, CardModel]) -> None:
    """Every invariant and expectation holds, the declared card bands included."""
    _run, summary, model = card_run
    assert summary["passed"], [e for e in summary["expectations"] if e["passed"] is False]
    declared = {e["name"]: e for e in summary["expectations"]}
    for name in ("cards are held", "cards are used but not maxed", "some balances revolve"):
        assert declared[name]["passed"] is True, declared[name]
    book = model.books["cu-c"]
    assert len(book.cards) >= 20
    assert any(c.full_payer for c in book.cards)
    assert any(not c.full_payer for c in book.cards)
    assert any(not c.open for c in book.cards), "churn should close some cards"


def test_interest_and_statements_equal_an_exact_reference_from_the_events(
    card_run: tuple[Path, dict, CardModel],
) -> None:
    """Per card and statement: interest charged = half-even(exact ACT/365 accrual), to the cent.

    The reference folds each card's balance from the stored entries (the day's
    interest and payout entries come after the day's accrual), charges nothing
    while the previous statement was paid in full by its due date (or for a new
    card without a balance brought forward), defers what the limit has no room
    for, and re-derives each closing balance and minimum payment.
    """
    run, _summary, model = card_run
    cards = {c.account: c for c in model.books["cu-c"].cards}
    moves: dict[tuple[str, date], list[tuple[str, int]]] = defaultdict(list)
    opened: dict[str, date] = {}
    for event in stored(run):
        day = date.fromisoformat(event["occurredAt"][:10])
        if event["eventType"] == "AccountOpened" and event["entityId"] in cards:
            opened[event["entityId"]] = day
        if event["eventType"] != "EntryPosted":
            continue
        payload = event["payload"]
        for leg in payload["legs"]:
            if leg["accountId"] in cards:
                sign = 1 if leg["direction"] == "DEBIT" else -1
                moves[(leg["accountId"], day)].append(
                    (payload["narrative"], sign * leg["amountCents"])
                )
    checked = charged = 0
    for account, card in cards.items():
        balance, accrued, deferred = 0, Fraction(0), 0
        free, closing, due, minimum = True, 0, None, 0
        day = opened[account]
        while day < date(2025, 10, 9):
            today = moves.get((account, day), [])
            if any(text == "Card balance brought forward" for text, _ in today):
                free = False
            before = [cents for text, cents in today if text not in (INTEREST, PAYOUT)]
            balance += sum(before)
            leaving = any(text == PAYOUT for text, _ in today)
            if due == day and not leaving:  # a leaver pays the card out instead
                paid = sum(cents for text, cents in today if text == REPAYMENT)
                free, due = paid >= closing, None
            accrued += Fraction(max(-balance, 0)) * RATE / 100 / 365
            expected_interest = 0
            if day.day == card.statement_day or leaving:
                interest = 0 if free else round_half_even(accrued)
                accrued = Fraction(0)
                wanted = interest + deferred
                room = card.limit + (balance if not leaving else 0)
                expected_interest = max(0, min(wanted, room))
                deferred = wanted - expected_interest
            actual_interest = -sum(cents for text, cents in today if text == INTEREST)
            assert actual_interest == expected_interest, (account, day)
            charged += actual_interest
            balance += sum(cents for text, cents in today if text in (INTEREST, PAYOUT))
            if leaving:
                assert balance == 0, (account, day)
                break
            if day.day == card.statement_day:
                closing = max(-balance, 0)
                minimum = minimum_payment(closing, Decimal(2), 2_500)
                if closing > 0:
                    due = day + timedelta(days=25)
                else:
                    free = True
                checked += 1
            day += timedelta(days=1)
        if card.open:
            assert (card.closing, card.minimum) == (closing, minimum), account
            assert card.deferred == deferred, account
    assert checked >= 3 * len(cards) // 2
    assert charged > 0


def test_repayments_fall_on_due_dates_and_full_payers_clear_the_statement(
    card_run: tuple[Path, dict, CardModel],
) -> None:
    """Repayments come from the everyday account on the due date; full payers pay the closing."""
    run, _summary, model = card_run
    cards = {c.account: c for c in model.books["cu-c"].cards}
    repayments = []
    for event in stored(run):
        if event["eventType"] != "EntryPosted" or event["payload"]["narrative"] != REPAYMENT:
            continue
        legs = {leg["direction"]: leg for leg in event["payload"]["legs"]}
        assert legs["DEBIT"]["accountId"] in cards
        assert not legs["CREDIT"]["accountId"].startswith("GL_")
        assert legs["DEBIT"]["amountCents"] == legs["CREDIT"]["amountCents"] > 0
        card = cards[legs["DEBIT"]["accountId"]]
        day = date.fromisoformat(event["occurredAt"][:10])
        assert (day - timedelta(days=25)).day == card.statement_day
        repayments.append(card)
    assert any(c.full_payer for c in repayments)
    assert any(not c.full_payer for c in repayments)


def test_cards_stay_within_their_limits_and_take_purchases(
    card_run: tuple[Path, dict, CardModel],
) -> None:
    """Card purchases CREDIT the card, DEBIT GL_CARD_CLEARING; no balance passes minus the limit."""
    run, summary, model = card_run
    limits = {c.account: c.limit for c in model.books["cu-c"].cards}
    purchases = 0
    lowest: dict[str, int] = {}
    for event in stored(run):
        payload = event["payload"]
        if event["eventType"] == "AccountBalanceUpdated" and payload["accountId"] in limits:
            account = payload["accountId"]
            lowest[account] = min(lowest.get(account, 0), payload["balanceCents"])
        if event["eventType"] == "EntryPosted" and payload["narrative"] == "Card purchase":
            legs = {leg["direction"]: leg["accountId"] for leg in payload["legs"]}
            if legs["CREDIT"] in limits:
                assert legs["DEBIT"] == "GL_CARD_CLEARING"
                purchases += 1
    assert purchases > 100
    assert all(lowest[a] >= -limits[a] for a in lowest)
    assert any(lowest[a] < -limits[a] // 2 for a in lowest), "some card should be well used"
    (item,) = [e for e in summary["expectations"] if e["name"].startswith("credit cards within")]
    assert item["passed"] is True
    assert item["actual"] == 0


def test_cards_csv_and_member_deposits_leave_cards_out(
    card_run: tuple[Path, dict, CardModel],
) -> None:
    """cards.csv has a row a day; member deposits are deposit accounts only (no cards, loans)."""
    run, summary, model = card_run
    lines = (run / CARDS_FILE).read_text().splitlines()
    assert lines[0].split(",") == list(CARD_COLUMNS)
    assert len(lines) == 1 + 100
    kinds: dict[str, str] = {}
    balances: dict[str, int] = {}
    for event in stored(run):
        if event["eventType"] == "AccountOpened":
            kinds[event["entityId"]] = event["payload"]["productType"]
        elif event["eventType"] == "AccountBalanceUpdated":
            balances[event["payload"]["accountId"]] = event["payload"]["balanceCents"]
    deposits = sum(
        cents
        for account, cents in balances.items()
        if kinds.get(account) in ("DEPOSIT", "TERM_DEPOSIT")
    )
    assert any(kind == "CREDIT_CARD" for kind in kinds.values())
    assert summary["tenants"]["cu-c"]["deposits_cents"] == deposits
    last = lines[-1].split(",")
    row = dict(zip(CARD_COLUMNS, last, strict=True))
    live = [c for c in model.books["cu-c"].cards if c.open]
    owed = sum(max(-balances.get(c.account, 0), 0) for c in live)
    assert int(row["balances_cents"]) == owed
    assert int(row["cards"]) == len(live)
