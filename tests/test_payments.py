"""Everyday payments: the legs each flow posts, refusals the shadow book predicts, and counts.

Convention under test (docs/ARCHITECTURE.md): balances are debits minus
credits, so a salary DEBITs the member's account (it grows) and a card
purchase CREDITs it (it shrinks).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.params import PayeeParams
from models.payments import CARD_MERCHANTS, CLEARING, PAYEE_POOL, payee_indices
from models.transactions import Flow
from scenarios.loader import parse_scenario
from sim.clock import BusinessCalendar
from turingcore.eventlog import EventLogReader

#: Thin opening balances and heavy card spend: many refusals, several per hour.
STRESS_YAML = """\
name: stress
start: 2025-07-01
days: 4
seed: 5
behaviour:
  opening: {transaction_mean: 20.00, savings_mean: 40.00}
  card_spend: {rate_per_day: 3.0, mean_amount: 60.00}
tenants:
  - {id: cu-thin, code: CU_THIN, display_name: Thin CU, archetype: small, state: NSW,
     members: 30, annual_growth: 0.0}
  - {id: cu-lean, code: CU_LEAN, display_name: Lean CU, archetype: small, state: WA,
     members: 30, annual_growth: 0.0}
"""


def entries(events: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    """EntryPosted events of one channel (PAYROLL, CARD, BPAY, NPP, INTERNAL)."""
    return [
        e
        for e in events
        if e["eventType"] == "EntryPosted" and e["payload"]["tags"]["channel"] == channel
    ]


def legs_by_direction(event: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """DEBIT/CREDIT -> [(accountId, cents)] of an entry."""
    out: dict[str, list[tuple[str, int]]] = {"DEBIT": [], "CREDIT": []}
    for leg in event["payload"]["legs"]:
        out[leg["direction"]].append((leg["accountId"], leg["amountCents"]))
    return out


def member_deltas(events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """entryId -> accountId -> delta cents, from the balance updates."""
    deltas: dict[str, dict[str, int]] = {}
    for e in events:
        if e["eventType"] == "AccountBalanceUpdated":
            payload = e["payload"]
            deltas.setdefault(payload["entryId"], {})[payload["accountId"]] = payload["deltaCents"]
    return deltas


def test_salaries_debit_the_member_account(small_events) -> None:
    """A salary: DEBIT member / CREDIT GL_SALARY_CLEARING; the member's balance grows by it."""
    for tenant, events in small_events.items():
        salaries = entries(events, "PAYROLL")
        assert salaries, tenant
        deltas = member_deltas(events)
        for salary in salaries:
            legs = legs_by_direction(salary)
            (member, amount), (clearing, credited) = legs["DEBIT"][0], legs["CREDIT"][0]
            assert len(salary["payload"]["legs"]) == 2
            assert clearing == CLEARING[Flow.SALARY] == "GL_SALARY_CLEARING"
            assert not member.startswith("GL_")
            assert amount == credited > 0
            assert deltas[salary["payload"]["entryId"]][member] == amount
            assert salary["payload"]["narrative"] == "Salary"


def test_salaries_are_paid_on_business_days_only(small_events) -> None:
    """No salary lands on a weekend or public holiday of the tenant's state."""
    states = {"cu-a": "NSW", "cu-b": "VIC"}
    for tenant, events in small_events.items():
        calendar = BusinessCalendar(states[tenant], 2025, 2026)
        paid_on = {
            datetime.fromisoformat(e["occurredAt"]).date() for e in entries(events, "PAYROLL")
        }
        assert paid_on
        assert all(calendar.is_business_day(day) for day in paid_on), sorted(paid_on)
        assert date(2025, 7, 5) not in paid_on  # a Saturday


def test_card_spend_credits_the_member_account(small_events) -> None:
    """A card purchase: CREDIT member / DEBIT GL_CARD_CLEARING; the balance shrinks by it."""
    merchants = dict(CARD_MERCHANTS)
    for tenant, events in small_events.items():
        cards = entries(events, "CARD")
        assert len(cards) > 50, tenant
        deltas = member_deltas(events)
        for card in cards:
            legs = legs_by_direction(card)
            (member, amount), (clearing, debited) = legs["CREDIT"][0], legs["DEBIT"][0]
            assert clearing == "GL_CARD_CLEARING"
            assert amount == debited > 0
            assert deltas[card["payload"]["entryId"]][member] == -amount
            tags = card["payload"]["tags"]
            assert merchants[tags["merchantMcc"]] == tags["category"]


@pytest.mark.parametrize(
    ("narrative", "member_side", "other"),
    [
        ("BPAY bill payment", "CREDIT", "GL_BPAY_CLEARING"),
        ("NPP payment", "CREDIT", "GL_NPP_CLEARING"),
        ("NPP payment received", "DEBIT", "GL_NPP_CLEARING"),
    ],
)
def test_other_flows_post_to_their_clearing_account(
    small_events, narrative, member_side, other
) -> None:
    """Bills and payments out credit the member; payments in debit it; the GL takes the rest."""
    found = 0
    for events in small_events.values():
        for event in events:
            if event["eventType"] != "EntryPosted" or event["payload"]["narrative"] != narrative:
                continue
            found += 1
            legs = legs_by_direction(event)
            other_side = "DEBIT" if member_side == "CREDIT" else "CREDIT"
            assert legs[other_side][0][0] == other
            assert not legs[member_side][0][0].startswith("GL_")
    assert found > 0


def test_savings_sweeps_move_money_between_a_members_own_accounts(small_events) -> None:
    """A savings sweep: CREDIT the member's everyday account, DEBIT their own savings account."""
    found = 0
    for events in small_events.values():
        opened = {
            e["payload"]["accountId"]: (e["payload"]["customerId"], e["payload"]["productCode"])
            for e in events
            if e["eventType"] == "AccountOpened"
        }
        internal = entries(events, "INTERNAL")  # also card repayments, interest, top-ups
        for sweep in (e for e in internal if e["payload"]["narrative"] == "Transfer to savings"):
            assert sweep["payload"]["tags"]["category"] == "savings"
            found += 1
            legs = legs_by_direction(sweep)
            (everyday, amount), (saver, debited) = legs["CREDIT"][0], legs["DEBIT"][0]
            assert amount == debited > 0
            assert opened[everyday][1] == "EVERYDAY"
            assert opened[saver][1] == "SAVER"
            assert opened[everyday][0] == opened[saver][0]
    assert found > 0


def test_every_entry_is_balanced_and_booked_on_its_day(small_events) -> None:
    """Two legs, debits equal credits, booking and value date the local date it happened."""
    for events in small_events.values():
        for event in events:
            if event["eventType"] != "EntryPosted":
                continue
            payload = event["payload"]
            legs = legs_by_direction(event)
            assert len(payload["legs"]) == 2
            assert sum(c for _, c in legs["DEBIT"]) == sum(c for _, c in legs["CREDIT"])
            local_day = event["occurredAt"][:10]
            assert payload["bookingDate"] == payload["valueDate"] == local_day
            assert payload["metadata"] == {"scenarioId": "small"}


def test_no_member_balance_goes_negative(small_events) -> None:
    """Deposit accounts have no overdraft: every member balance update stays at or above 0."""
    for events in small_events.values():
        loans = {  # a loan or a credit card owed is negative (models.lending, credit_cards)
            e["entityId"]
            for e in events
            if e["eventType"] == "AccountOpened"
            and e["payload"]["productType"] in ("LOAN", "CREDIT_CARD")
        }
        for event in events:
            if event["eventType"] == "AccountBalanceUpdated":
                payload = event["payload"]
                if not payload["accountId"].startswith("GL_") and payload["accountId"] not in loans:
                    assert payload["balanceCents"] >= 0, event["seq"]


# --------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def stress_run(run_scenario, tmp_path_factory):  # noqa: ANN201
    """Four days of thin balances and heavy card spend."""
    scenario = parse_scenario(STRESS_YAML, "stress.yaml")
    return run_scenario(scenario, tmp_path_factory.mktemp("stress") / "run")


def refusal_expectations(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item
        for item in summary["expectations"]
        if item["name"] == "insufficient-funds refusals predicted by the shadow book"
    ]


@pytest.mark.parametrize("which", ["small", "stress"])
def test_insufficient_funds_refusals_are_predicted(which, small_run, stress_run) -> None:
    """Refusals happen, and the shadow book predicted each one: expected == actual, no misses."""
    run = small_run if which == "small" else stress_run
    items = refusal_expectations(run.summary)
    assert len(items) == 2
    for item in items:
        refused = run.summary["tenants"][item["tenant"]]["rejections"].get("OVERDRAFT_LIMIT", 0)
        assert refused > 0, item["tenant"]
        assert item["passed"] is True, item
        assert item["expected"] == item["actual"] == refused
        assert item["detail"].startswith("0 predictions missed")
    assert run.outcome.passed


def test_stress_run_refuses_a_lot_and_still_balances(stress_run) -> None:
    """Heavy refusals (several a day per tenant): the shadow book still equals the read model."""
    for tenant, data in stress_run.summary["tenants"].items():
        assert data["rejections"]["OVERDRAFT_LIMIT"] >= 20, tenant
    shadow = [
        item
        for item in stress_run.summary["expectations"]
        if item["name"].startswith("shadow book equals read model")
    ]
    assert [item["passed"] for item in shadow] == [True, True]


def stored_rejections(run_dir: Path) -> Counter[tuple[str, str, str]]:
    """(local date, tenant, rule) -> refusals recorded by the platform's event log."""
    with EventLogReader(run_dir / "events.sqlite") as reader:
        rows = reader.rejections()
    return Counter((row[4][:10], row[0], row[5]) for row in rows)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("which", ["small", "stress"])
def test_rejections_csv_counts_refusals_by_rule(which, small_run, stress_run) -> None:
    """rejections.csv: per day, tenant and rule, exactly what the platform refused."""
    run = small_run if which == "small" else stress_run
    rows = csv_rows(run.dir / "rejections.csv")
    table = Counter({(r["date"], r["tenant_id"], r["rule"]): int(r["count"]) for r in rows})
    assert table == stored_rejections(run.dir)
    for tenant, data in run.summary["tenants"].items():
        by_rule = Counter()
        for (_day, who, rule), count in table.items():
            if who == tenant:
                by_rule[rule] += count
        assert dict(by_rule) == data["rejections"]
    kpis = csv_rows(run.dir / "kpis.csv")
    for row in kpis:
        day_total = sum(
            count
            for (day, who, _rule), count in table.items()
            if (day, who) == (row["date"], row["tenant_id"])
        )
        assert int(row["rejections"]) == day_total


def test_refused_payments_leave_no_events(stress_run, events_in) -> None:
    """A refused command causes no event: its commandId is no event's causationId."""
    with EventLogReader(stress_run.dir / "events.sqlite") as reader:
        refused = {(row[0], row[1]) for row in reader.rejections()}
    assert refused
    for tenant in ("cu-thin", "cu-lean"):
        causes = {e["causationId"] for e in events_in(stress_run.dir, tenant)}
        assert not {cid for who, cid in refused if who == tenant} & causes


def test_card_spend_matches_its_analytic_mean(small_run, stress_run) -> None:
    """The mean card spend per member-day lies in its 99.9% band, per tenant, in both runs."""
    for run in (small_run, stress_run):
        items = [
            item
            for item in run.summary["expectations"]
            if item["name"] == "mean card spend attempted per member-day (cents)"
        ]
        assert len(items) == 2
        assert all(item["passed"] and item["expected"] > 0 for item in items), items


def test_a_run_across_the_daylight_saving_change(run_scenario, small_scenario, tmp_path) -> None:
    """Over Sydney's 23-hour day (5 Oct 2025): the run passes, every day has its KPI row,
    entries are booked on their local date and offsets switch from +10:00 to +11:00."""
    scenario = small_scenario.model_copy(update={"start": date(2025, 10, 4)}).with_overrides(days=2)
    run = run_scenario(scenario, tmp_path / "run", 7)
    assert run.outcome.passed
    days = sorted({row["date"] for row in csv_rows(run.dir / "kpis.csv")})
    assert days == ["2025-10-04", "2025-10-05"]
    with EventLogReader(run.dir / "events.sqlite") as reader:
        stored = [json.loads(e.canonical) for e in reader.events("cu-a")]
    posted = [e for e in stored if e["eventType"] == "EntryPosted"]
    assert {e["payload"]["bookingDate"] for e in posted} == {"2025-10-04", "2025-10-05"}
    assert all(e["payload"]["bookingDate"] == e["occurredAt"][:10] for e in posted)
    offsets = [e["occurredAt"][19:] for e in stored]
    assert offsets[0] == "+10:00"
    assert offsets[-1] == "+11:00"
    moments = [datetime.fromisoformat(e["occurredAt"]) for e in stored]
    assert moments == sorted(moments)


# --------------------------------------------------------------------------- NPP payees


def test_a_members_regular_payees_are_few_and_their_own() -> None:
    """Without one-off payments a member pays only their `regular` payees, none of another's."""
    rng = np.random.default_rng(3)
    params = PayeeParams(regular=4, one_off_share=0.0)
    members = np.repeat(np.arange(50, dtype=np.int32), 200)
    payees = payee_indices(rng, members, params)
    assert payees.min() >= 0
    assert payees.max() < PAYEE_POOL
    sets = [set(payees[members == m].tolist()) for m in range(50)]
    assert all(len(own) == 4 for own in sets)
    assert len(set.union(*sets)) > 150  # members mostly do not share payees


def test_regular_payees_follow_zipf_weights() -> None:
    """Slot j is paid with weight 1/(j+1): the most-paid payee gets 12/25 of 4 slots' payments."""
    rng = np.random.default_rng(4)
    n = 100_000
    payees = payee_indices(
        rng, np.zeros(n, dtype=np.int32), PayeeParams(regular=4, one_off_share=0)
    )
    counts = sorted(np.unique(payees, return_counts=True)[1].tolist(), reverse=True)
    expected = [n * w / (25 / 12) for w in (1, 1 / 2, 1 / 3, 1 / 4)]
    for seen, mean in zip(counts, expected, strict=True):
        sd = (mean * (1 - mean / n)) ** 0.5
        assert abs(seen - mean) < 3.3 * sd, (counts, expected)


def test_one_off_payees_come_at_their_share() -> None:
    """A share `one_off_share` of payments go outside the member's regular payees (99.9% band)."""
    rng = np.random.default_rng(5)
    n = 200_000
    params = PayeeParams(regular=3, one_off_share=0.08)
    payees = payee_indices(rng, np.full(n, 7, dtype=np.int32), params)
    regular = set(
        payee_indices(
            rng, np.full(500, 7, dtype=np.int32), PayeeParams(regular=3, one_off_share=0)
        ).tolist()
    )
    outside = int(np.count_nonzero(~np.isin(payees, list(regular))))
    # a one-off payee can land on a regular one: 3 of the pool's slots
    share = 0.08 * (1 - 3 / PAYEE_POOL)
    sd = (n * share * (1 - share)) ** 0.5
    assert abs(outside - n * share) < 3.3 * sd
