"""Member lifecycles: jobs lost and found with the economy, wages with inflation.

Monthly, for one tenant's members (vectorised over all of them):

* Labour force: members who had a wage when they joined. (Members who joined
  without one are outside it: retirees, students, carers.)
* Employment tracks the economy: given the national unemployment rate `u`,
  members find jobs at the monthly job-finding rate `f` (ABS gross flows),
  and the separation rate is set so that the expected unemployed share of the
  tenant's labour force next month equals `u`. So a recession that lifts `u`
  from 4% to 8% puts ~4% more of the labour force out of work, drawn at
  random; recovery brings them back at rate `f`.
* A member who loses their job stops receiving salary and spends
  `not_employed_spend_factor` of what they did; finding a job restores both.
* Wages (annual gross income) grow each month by inflation plus the real wage
  margin, in whole cents.

`LabourForce` keeps its own per-member array of who is in the labour force, so
the member arrays' layout is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.params import Behaviour
from models.transactions import MemberArrays


@dataclass(frozen=True, slots=True)
class EmploymentChange:
    """What one month did to a tenant's members (a flat record for outputs)."""

    labour_force: int
    unemployed: int
    lost_jobs: int
    found_jobs: int

    @property
    def unemployment_rate(self) -> float:
        return self.unemployed / self.labour_force if self.labour_force else 0.0


class LabourForce:
    """Who of a tenant's members is in the labour force, and monthly transitions."""

    def __init__(self) -> None:
        self._in_force = np.zeros(0, dtype=bool)

    def _sync(self, members: MemberArrays) -> np.ndarray:
        """Extend to members who joined since the last month (status as they joined)."""
        known = len(self._in_force)
        if members.n > known:
            joined = members.employed[known : members.n].copy()
            self._in_force = np.concatenate([self._in_force, joined])
        return self._in_force

    def step(
        self,
        members: MemberArrays,
        behaviour: Behaviour,
        rng: np.random.Generator,
        unemployment_rate: float,
    ) -> EmploymentChange:
        """One month of job losses and job finds; returns the counts.

        Args:
            members: the tenant's members (employment and spend scale are updated).
            behaviour: job-finding rate and spending factor.
            rng: the tenant's lifecycle stream.
            unemployment_rate: the economy's unemployment rate this month (0-1).
        """
        if not 0 <= unemployment_rate < 1:
            raise ValueError(f"unemployment rate must be in [0, 1), got {unemployment_rate}")
        in_force = self._sync(members) & members.active
        employed = members.employed
        working = np.flatnonzero(in_force & employed)
        idle = np.flatnonzero(in_force & ~employed)
        force = len(working) + len(idle)
        if force == 0:
            return EmploymentChange(0, 0, 0, 0)
        finding = behaviour.lifecycle.job_finding_monthly
        # Expected unemployed next month: U - f*U + s*E = u*L  =>  s = (u*L - (1-f)*U) / E
        wanted = unemployment_rate * force - (1.0 - finding) * len(idle)
        separation = min(max(wanted / len(working), 0.0), 1.0) if len(working) else 0.0
        lose = working[rng.random(len(working)) < separation]
        find = idle[rng.random(len(idle)) < finding]
        factor = behaviour.income.not_employed_spend_factor
        if len(lose):
            employed[lose] = False
            members.spend_scale[lose] *= factor
        if len(find):
            employed[find] = True
            if factor > 0:
                members.spend_scale[find] /= factor
        unemployed = len(idle) + len(lose) - len(find)
        return EmploymentChange(force, unemployed, len(lose), len(find))


def grow_wages(members: MemberArrays, behaviour: Behaviour, inflation: float) -> None:
    """One month of wage growth: (inflation + real margin) / 12 per cent, whole cents.

    Args:
        members: incomes are updated in place (int64 cents, rounded half-even).
        behaviour: the real wage margin.
        inflation: annual CPI inflation in per cent (e.g. 2.8).
    """
    monthly = (inflation + behaviour.lifecycle.real_wage_growth) / 100.0 / 12.0
    if members.n == 0 or monthly == 0:
        return
    incomes = members.income_cents
    incomes[:] = np.maximum(np.rint(incomes * (1.0 + monthly)), 1).astype(np.int64)


def grow_prices(members: MemberArrays, inflation: float) -> None:
    """One month of price growth: every member's spending scales with CPI.

    Args:
        members: spend scales are multiplied by 1 + inflation / 12 per cent.
        inflation: annual CPI inflation in per cent.
    """
    if members.n:
        members.spend_scale[:] *= 1.0 + inflation / 100.0 / 12.0


def churn(members: MemberArrays, behaviour: Behaviour, rng: np.random.Generator) -> np.ndarray:
    """One day of members leaving at the annual churn hazard; returns who left.

    Leavers stop transacting; the caller moves their money out (the contract
    has no account closure, so their accounts stay open at zero).
    """
    rate = behaviour.lifecycle.churn_annual
    if rate <= 0:
        return np.zeros(0, dtype=np.int64)
    active = np.flatnonzero(members.active)
    daily = -np.expm1(np.log1p(-rate) / 365.25)  # the daily hazard giving `rate` a year
    leaving = active[rng.random(len(active)) < daily]
    members.active[leaving] = False
    return leaving
