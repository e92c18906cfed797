"""Tests for models.term_deposits: exact maturity interest, funding, rollover, payout."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from models.term_deposits import maturity_interest
from scenarios.loader import parse_scenario
from sim.twin import RunOptions, Twin
from turingcore.eventlog import EventLogReader

SCENARIO = """
name: td-test
start: 2025-07-01
days: 200
seed: 3
behaviour:
  term_deposits: {opening_rate_monthly: 0.2, term_weights: [1.0, 0.0, 0.0]}
tenants:
  - {id: cu-t, code: CU_T, display_name: Term CU, archetype: small, state: SA,
     members: 60, annual_growth: 0.0, behaviour: {lifecycle: {churn_annual: 0.0}}}
"""


def test_maturity_interest_is_simple_act_365_rounded_half_even() -> None:
    """Interest equals principal x rate x days / 365 exactly, rounded half-even to the cent."""
    rng = np.random.default_rng(11)
    for _ in range(500):
        principal = int(rng.integers(100_000, 100_000_000))
        rate = Decimal(int(rng.integers(0, 800))) / 100
        opened = date(2025, 1, 1)
        days = int(rng.integers(28, 400))
        matures = date.fromordinal(opened.toordinal() + days)
        exact = Fraction(principal) * Fraction(str(rate)) / 100 * days / 365
        assert maturity_interest(principal, rate, opened, matures) == round(exact)


@pytest.fixture(scope="module")
def td_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("td") / "run"
    outcome = Twin(parse_scenario(SCENARIO), 3, RunOptions(out_dir=out, progress=False)).run()
    assert outcome.passed, outcome.summary["invariants"]
    with EventLogReader(out / "events.sqlite") as reader:
        return [json.loads(e.canonical) for e in reader.events("cu-t")]


def test_deposits_open_from_savings_and_mature_with_interest(td_events: list[dict]) -> None:
    """Three-month deposits are funded from savings, earn interest from the expense GL,
    then roll over or pay back to savings; every amount balances."""
    opened = {
        e["entityId"]
        for e in td_events
        if e["eventType"] == "AccountOpened" and e["payload"]["productType"] == "TERM_DEPOSIT"
    }
    assert len(opened) >= 10
    kinds: Counter[str] = Counter()
    for e in td_events:
        if e["eventType"] != "EntryPosted" or not e["payload"]["narrative"].startswith("Term"):
            continue
        legs = {leg["direction"]: leg for leg in e["payload"]["legs"]}
        narrative = e["payload"]["narrative"]
        kinds[narrative] += 1
        if narrative == "Term deposit funding":
            assert legs["DEBIT"]["accountId"] in opened
        elif narrative == "Term deposit interest":
            assert legs["DEBIT"]["accountId"] in opened
            assert legs["CREDIT"]["accountId"] == "GL_INTEREST_EXPENSE"
        else:
            assert legs["CREDIT"]["accountId"] in opened
        assert legs["DEBIT"]["amountCents"] == legs["CREDIT"]["amountCents"] > 0
    assert kinds["Term deposit funding"] == len(opened)
    assert kinds["Term deposit interest"] >= 10
    assert kinds["Term deposit maturity"] >= 1


def test_interest_matches_the_principal_rate_and_term(td_events: list[dict]) -> None:
    """Each first-term interest payment is within the plausible band for 3 months."""
    funded: dict[str, int] = {}
    for e in td_events:
        if e["eventType"] != "EntryPosted":
            continue
        narrative = e["payload"]["narrative"]
        legs = {leg["direction"]: leg for leg in e["payload"]["legs"]}
        if narrative == "Term deposit funding":
            funded[legs["DEBIT"]["accountId"]] = legs["DEBIT"]["amountCents"]
        elif narrative == "Term deposit interest" and legs["DEBIT"]["accountId"] in funded:
            principal = funded.pop(legs["DEBIT"]["accountId"])
            interest = legs["DEBIT"]["amountCents"]
            # 3 months (89-92 days) at the cash rate (a few per cent) plus the spread
            assert principal * 0.001 < interest < principal * 0.03
