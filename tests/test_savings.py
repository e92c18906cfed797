"""Tests for models.savings: exact daily accrual, monthly credit, bonus rule."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

from models.savings import _saver_rates
from scenarios.loader import parse_scenario
from sim.twin import RunOptions, Twin
from turingcore.eventlog import EventLogReader

SCENARIO = """
name: savings-test
start: 2025-07-01
days: 62
seed: 5
tenants:
  - {id: cu-s, code: CU_S, display_name: Saver CU, archetype: small, state: VIC,
     members: 40, annual_growth: 0.0, behaviour: {lifecycle: {churn_annual: 0.0}}}
"""


@pytest.fixture(scope="module")
def savings_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("savings") / "run"
    options = RunOptions(out_dir=out, progress=False)
    outcome = Twin(parse_scenario(SCENARIO), 5, options).run()
    assert outcome.passed
    return out


def stored_entries(run: Path) -> list[dict]:
    with EventLogReader(run / "events.sqlite") as reader:
        bodies = [json.loads(e.canonical) for e in reader.events("cu-s")]
    return [b for b in bodies if b["eventType"] in ("EntryPosted", "FundsPosted")]


def test_interest_equals_an_exact_reference_rebuilt_from_the_events(savings_run: Path) -> None:
    """Each month's credit is floor(exact ACT/365 accrual + carried remainder), per account.

    The reference is independent of the engine: end-of-day balances are folded
    from the stored events (a day's own interest credit excluded, as it earns
    from the next day), interest is summed with Fractions at the base rate,
    plus the bonus rate when the month ended above its start.
    """
    base, bonus = (Fraction(str(r)) for r in _saver_rates())
    entries = stored_entries(savings_run)
    savers = {
        leg["accountId"]
        for e in entries
        if e["payload"].get("narrative") == "Interest"
        for leg in e["payload"]["legs"]
        if leg["direction"] == "DEBIT"
    }
    assert len(savers) >= 20
    moves: dict[date, list[tuple[str, int, bool]]] = defaultdict(list)
    credited: dict[tuple[str, date], int] = {}
    for e in entries:
        day = date.fromisoformat(e["occurredAt"][:10])
        interest = e["payload"].get("narrative") == "Interest"
        legs = e["payload"]["legs"]
        for leg in legs:
            sign = 1 if leg["direction"] == "DEBIT" else -1
            if leg["accountId"] in savers:
                moves[day].append((leg["accountId"], sign * leg["amountCents"], interest))
                if interest:
                    credited[(leg["accountId"], day)] = leg["amountCents"]
    balance: dict[str, int] = defaultdict(int)
    accrued: dict[str, Fraction] = defaultdict(Fraction)
    bonus_accrued: dict[str, Fraction] = defaultdict(Fraction)
    month_start: dict[str, int] = {}
    month_ends = [date(2025, 7, 31), date(2025, 8, 31)]
    checked = 0
    for ordinal in range(date(2025, 7, 1).toordinal(), date(2025, 9, 1).toordinal()):
        day = date.fromordinal(ordinal)
        for account in savers:
            month_start.setdefault(account, balance[account])  # before the 1st's moves
        for account, delta, interest in moves[day]:
            if not interest:
                balance[account] += delta
        for account in savers:
            held = max(balance[account], 0)
            accrued[account] += Fraction(held) * base / 100 / 365
            bonus_accrued[account] += Fraction(held) * bonus / 100 / 365
        if day in month_ends:
            for account in savers:
                total = accrued[account]
                if balance[account] > month_start[account]:
                    total += bonus_accrued[account]
                cents = int(total)  # floor: whole cents are credited, the rest carries
                assert credited.get((account, day), 0) == cents, (account, day)
                accrued[account] = total - cents
                bonus_accrued[account] = Fraction(0)
                checked += 1
        for account, delta, interest in moves[day]:
            if interest:
                balance[account] += delta
        if day in month_ends:
            month_start = {account: balance[account] for account in savers}
    assert checked == 2 * len(savers)


def test_interest_comes_from_the_interest_expense_gl(savings_run: Path) -> None:
    """Every interest entry debits a savings account and credits GL_INTEREST_EXPENSE."""
    entries = stored_entries(savings_run)
    interest = [e for e in entries if e["payload"].get("narrative") == "Interest"]
    assert interest
    for e in interest:
        legs = {leg["direction"]: leg for leg in e["payload"]["legs"]}
        assert legs["CREDIT"]["accountId"] == "GL_INTEREST_EXPENSE"
        assert legs["DEBIT"]["amountCents"] == legs["CREDIT"]["amountCents"] > 0
        assert e["occurredAt"][11:19] == "23:59:59"
