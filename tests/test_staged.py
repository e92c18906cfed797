"""models.staged: entries applied to the shadow book as staged, refused ones undone."""

from __future__ import annotations

from datetime import timedelta

from test_members import Onboarded

from models.staged import StagedEntries
from scenarios.loader import parse_scenario
from sim.target import read_model_balances
from turingcore.contract import Leg


def test_a_refused_entry_is_reverted_and_counted_and_the_rest_stand(small_yaml: str) -> None:
    """Two entries staged at one instant: the second overdraws and is refused. The shadow
    book saw both while staging, keeps only the first after the flush, and equals the
    platform's balances; the refusal counts as one prediction miss."""
    bank = Onboarded(parse_scenario(small_yaml))
    world = bank.world
    start = world.scenario.start
    bank.join(start, 3)
    account = world.transaction_accounts[0]
    assert account is not None
    held = world.shadow.balance(account)
    assert held > 100
    entries = StagedEntries(world)
    spend = [Leg(account, "CREDIT", 100), Leg("GL_CARD_CLEARING", "DEBIT", 100)]
    too_much = [Leg(account, "CREDIT", held), Leg("GL_CARD_CLEARING", "DEBIT", held)]
    assert entries.stage(spend, "small spend", {"channel": "CARD"}) == 0
    assert entries.stage(too_much, "too much", {"channel": "CARD"}) == 1
    assert world.shadow.balance(account) == held - 100 - held
    misses = world.totals.prediction_misses
    t = bank.clock.day_start(start + timedelta(days=1))
    done = entries.flush(t, start + timedelta(days=1))
    assert done == [(spend, True), (too_much, False)]
    assert world.totals.prediction_misses == misses + 1
    assert world.shadow.balance(account) == held - 100
    assert read_model_balances(bank.target, world.tenant_id)[account] == held - 100
    assert entries.flush(t, start + timedelta(days=1)) == []
