"""Tests for models.lifecycle: employment tracking the economy, wages, churn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.lifecycle import LabourForce, churn, grow_prices, grow_wages
from models.params import Behaviour
from models.transactions import MemberArrays

SEEDS = (1, 2, 3, 4, 5)


def members_for(seed: int, count: int, behaviour: Behaviour) -> MemberArrays:
    members = MemberArrays()
    members.add(np.random.default_rng(seed), behaviour, count)
    return members


def test_unemployment_tracks_the_economy_within_a_month() -> None:
    """After one step at u, the labour force's unemployed share is u within a 99.9% band."""
    behaviour = Behaviour()
    for seed in SEEDS:
        members = members_for(seed, 40_000, behaviour)
        change = LabourForce().step(members, behaviour, np.random.default_rng(seed), 0.05)
        force = change.labour_force
        assert force == int(members.employed.sum()) + change.unemployed
        band = 3.29 * math.sqrt(0.05 * 0.95 / force)
        assert abs(change.unemployment_rate - 0.05) <= band


def test_a_recession_and_recovery_move_the_members_with_it() -> None:
    """Unemployment ramped 4% -> 8% -> 4% is followed month by month (within 1.5 points)."""
    behaviour = Behaviour()
    path = [0.04 + 0.04 * m / 12 for m in range(13)] + [0.08 - 0.04 * m / 12 for m in range(13)]
    for seed in SEEDS[:3]:
        members = members_for(seed, 20_000, behaviour)
        force = LabourForce()
        rng = np.random.default_rng(seed)
        for target in path:
            change = force.step(members, behaviour, rng, target)
            assert abs(change.unemployment_rate - target) < 0.015
        assert change.found_jobs > 0


def test_job_loss_cuts_spending_and_a_new_job_restores_it() -> None:
    """Losing a job multiplies the spend scale by the factor; finding one divides it back."""
    behaviour = Behaviour()
    members = members_for(9, 5_000, behaviour)
    before = members.spend_scale.copy()
    force = LabourForce()
    rng = np.random.default_rng(9)
    was_employed = members.employed.copy()
    force.step(members, behaviour, rng, 0.20)
    lost = was_employed & ~members.employed
    assert lost.any()
    factor = behaviour.income.not_employed_spend_factor
    assert np.allclose(members.spend_scale[lost], before[lost] * factor)
    for _ in range(40):
        force.step(members, behaviour, rng, 0.0)
    back = lost & members.employed
    assert back.sum() == lost.sum()
    assert np.allclose(members.spend_scale[back], before[back])


def test_members_outside_the_labour_force_never_change() -> None:
    """Members who joined without a wage stay without one, whatever the economy does."""
    behaviour = Behaviour()
    members = members_for(3, 10_000, behaviour)
    outside = ~members.employed.copy()
    force = LabourForce()
    rng = np.random.default_rng(3)
    for target in (0.1, 0.02, 0.0):
        force.step(members, behaviour, rng, target)
    assert not members.employed[outside].any()


def test_members_who_joined_later_enter_with_their_status() -> None:
    """The labour force grows with new members; inactive members are left out."""
    behaviour = Behaviour()
    members = members_for(4, 1_000, behaviour)
    force = LabourForce()
    rng = np.random.default_rng(4)
    first = force.step(members, behaviour, rng, 0.05)
    members.add(rng, behaviour, 1_000)
    members.active[:500] = False
    second = force.step(members, behaviour, rng, 0.05)
    assert second.labour_force > first.labour_force * 1.3
    assert second.labour_force < 2 * first.labour_force


def test_an_impossible_unemployment_rate_is_refused() -> None:
    """Rates outside [0, 1) are a programming error, said plainly."""
    behaviour = Behaviour()
    members = members_for(1, 10, behaviour)
    with pytest.raises(ValueError, match="unemployment rate"):
        LabourForce().step(members, behaviour, np.random.default_rng(1), 1.2)


def test_wages_grow_with_inflation_plus_the_real_margin() -> None:
    """Twelve months at 3% CPI grow incomes by (1 + 3.5%/12)^12, in whole cents."""
    behaviour = Behaviour()
    members = members_for(2, 1_000, behaviour)
    start = members.income_cents.copy()
    for _ in range(12):
        grow_wages(members, behaviour, 3.0)
    assert members.income_cents.dtype == np.int64
    growth = members.income_cents / start
    assert np.allclose(growth, (1 + 0.035 / 12) ** 12, rtol=1e-6)


def test_churn_removes_the_annual_share_over_a_year() -> None:
    """Daily churn hazards add up to `churn_annual` of members leaving in a year (99.9%)."""
    behaviour = Behaviour()
    rate = behaviour.lifecycle.churn_annual
    for seed in SEEDS:
        members = members_for(seed, 20_000, behaviour)
        rng = np.random.default_rng(seed)
        left = sum(len(churn(members, behaviour, rng)) for _ in range(365))
        share = left / 20_000
        assert abs(share - rate * 365 / 365.25) <= 3.29 * math.sqrt(rate * (1 - rate) / 20_000)
        assert (~members.active).sum() == left


def test_prices_grow_spending_with_inflation() -> None:
    """Twelve months at 3% CPI multiply every spend scale by (1 + 3%/12)^12."""
    behaviour = Behaviour()
    members = members_for(6, 500, behaviour)
    start = members.spend_scale.copy()
    for _ in range(12):
        grow_prices(members, 3.0)
    assert np.allclose(members.spend_scale / start, (1 + 0.03 / 12) ** 12)
