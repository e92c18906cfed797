"""The Australian economy as a monthly process: a regime chain driving four macro series.

Lending and member models need a small set of macro numbers that move together
the way Australia's do: the RBA cash rate (variable loans reprice off it), the
unemployment rate (members lose jobs and fall into arrears), CPI inflation
(incomes are indexed) and a house price index (loan-to-value of home loans).
This module makes those four series, one value per month, on the first of the
month, from one injected `numpy.random.Generator`.

The model
---------
* **Regime.** A two-state Markov chain, ``expansion`` / ``recession``, with
  monthly switching probabilities. Australia's recessions are rare and short
  (1982-83, 1990-91, 2020), so the defaults give a mean expansion of ten years
  and a mean recession of nine months; `RegimeParams.stationary` gives the
  long-run share of months in each regime.
* **Cash rate** (per cent). A *desired* rate follows a monthly AR(1)
  (discretised Ornstein-Uhlenbeck): ``r' = r + speed * (level[regime] - r) +
  volatility * z``, floored at the effective lower bound. The *published* rate,
  the one in `MacroMonth`, moves like the RBA board does: in whole ticks
  (0.25 points) on the grid ``floor + k * tick`` (0.10, 0.35, ... 3.85, 4.10,
  4.35: every target since 2020), and only once the desired rate is at least
  one tick away. So loans reprice a few times a year, not every month. A
  scripted ``path`` (e.g. the RBA's published history) pins it instead.
* **Unemployment** (per cent). AR(1) toward a regime-dependent level with a
  regime-dependent speed: it rises fast in recessions and falls slowly after
  them ("up the escalator, down the stairs"), bounded by a floor and a ceiling.
* **Inflation** (CPI, per cent year on year). AR(1) toward the middle of the
  RBA's 2-3% target band in expansions, lower in recessions.
* **House price index** (starts at 100). Log-normal monthly growth with a
  regime-dependent mean: ``H' = H * (1 + g[regime]) * exp(sigma * z - sigma**2 / 2)``,
  so the expected monthly growth is exactly ``g`` and the index stays positive.

Each month the regime moves first, then every series moves toward the *new*
regime's level, so a recession pulls from its first month. Analytic long-run
means (`MacroParams.long_run_cash_rate`, `regime_ar1_mean`, ...) follow from
that order and are what tests compare simulated paths with.

Scripted shocks and paths
-------------------------
A `Shock` moves one series linearly from its value in the month before the
shock (the *anchor*) to a target over ``over_months`` months; during the ramp
the stochastic dynamics of that series are overridden, afterwards it either
continues stochastically from the target or, with ``hold``, stays there. A
``regime`` shock forces the regime instead. Precedence for each series each
month: an active shock, then (cash rate only) the scripted path, then the
stochastic model. A later shock on the same series supersedes an earlier one.
Dates take effect on the first first-of-month on or after them, because the
economy only changes on the first of a month (an RBA decision on 18 February
shows in the March value).

Random numbers: every month draws exactly one uniform (regime) and four
standard normals (one per series) whether or not a series is scripted. So
scenarios that differ only by a shock share every other random path for the
same seed (common random numbers): the recession run differs from the baseline
by the recession, not by reshuffled noise.

Limits (deliberate simplifications)
-----------------------------------
* The series are coupled only through the regime: a rate rise does not by
  itself lower house prices or raise unemployment; the RBA does not react to
  inflation. A scenario that wants those links scripts them as shocks.
* Two regimes only; no distinction between a mild slowdown and a deep
  recession, no duration dependence (a recession is as likely to end in its
  tenth month as in its second).
* Gaussian monthly noise: no fat tails, no momentum in house prices, no
  seasonality; the analytic means ignore the floors and the tick grid, which
  matter only when a level sits within a few standard deviations of a floor.
* Headline CPI only (the RBA targets it but watches the trimmed mean).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from models.params import Params

if TYPE_CHECKING:
    import simpy

    from sim.clock import VirtualClock

__all__ = [
    "MACRO_SOURCES",
    "CashRateParams",
    "Economy",
    "HousePriceParams",
    "InflationParams",
    "MacroMonth",
    "MacroParams",
    "RatePoint",
    "RegimeLevels",
    "RegimeParams",
    "RegimeSpeeds",
    "Shock",
    "UnemploymentParams",
    "effective_month",
    "parameter_rows",
    "regime_ar1_mean",
]

Regime = Literal["expansion", "recession"]
ShockKind = Literal["unemployment", "cash_rate", "house_prices", "inflation", "regime"]
REGIMES: tuple[Regime, Regime] = ("expansion", "recession")

#: Fraction of the gap to the long-run level closed in one month (0 < speed <= 1).
Speed = Annotated[float, Field(gt=0, le=1)]
#: A rate in per cent (cash rate, unemployment): bounded to catch unit mistakes (0.04 vs 4).
Percent = Annotated[float, Field(ge=0, le=100)]


class MacroBase(Params):
    """Frozen, no unknown keys, and no NaN or infinity: a NaN would poison every later month."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RegimeLevels(MacroBase):
    """A level that depends on the regime (a long-run rate, a monthly growth)."""

    expansion: float
    recession: float

    def of(self, regime: Regime) -> float:
        """The value for ``regime``."""
        return self.expansion if regime == "expansion" else self.recession


class RegimeSpeeds(MacroBase):
    """A mean-reversion speed per regime: lets a series rise fast and fall slowly."""

    expansion: Speed
    recession: Speed

    def of(self, regime: Regime) -> float:
        """The value for ``regime``."""
        return self.expansion if regime == "expansion" else self.recession


def effective_month(day: dt.date) -> dt.date:
    """The first first-of-month on or after ``day``: when a dated instruction takes effect.

    The economy only changes on the first of a month, and an instruction must
    never act before its date, so a mid-month date counts from the next month.
    """
    if day.day == 1:
        return day
    return _add_months(day.replace(day=1), 1)


def _add_months(month: dt.date, n: int) -> dt.date:
    """The first of the month ``n`` months after the first-of-month ``month``."""
    index = month.year * 12 + (month.month - 1) + n
    return dt.date(index // 12, index % 12 + 1, 1)


def _months_between(origin: dt.date, month: dt.date) -> int:
    """Whole months from the month of ``origin`` to the month of ``month`` (may be negative)."""
    return (month.year - origin.year) * 12 + (month.month - origin.month)


class RegimeParams(MacroBase):
    """The expansion/recession Markov chain, stepped once a month.

    Attributes:
        expansion_to_recession: monthly probability an expansion turns into a
            recession (mean expansion length is its inverse, in months).
        recession_to_expansion: monthly probability a recession ends.
        start: the regime of the first month.
    """

    expansion_to_recession: float = Field(default=1 / 120, ge=0, le=1)
    recession_to_expansion: float = Field(default=1 / 9, ge=0, le=1)
    start: Regime = "expansion"

    def switch_probability(self, regime: Regime) -> float:
        """Probability of leaving ``regime`` in one month."""
        if regime == "expansion":
            return self.expansion_to_recession
        return self.recession_to_expansion

    def stationary(self) -> dict[Regime, float]:
        """Long-run share of months in each regime: ``pi_r = p_er / (p_er + p_re)``.

        Raises:
            ValueError: if neither regime can be left (no unique long run).
        """
        p_er, p_re = self.expansion_to_recession, self.recession_to_expansion
        if p_er + p_re == 0:
            raise ValueError("no stationary distribution: neither regime can ever be left")
        recession = p_er / (p_er + p_re)
        return {"expansion": 1.0 - recession, "recession": recession}

    def mean_duration(self, regime: Regime) -> float:
        """Expected length of a spell of ``regime`` in months (geometric), inf if absorbing."""
        p = self.switch_probability(regime)
        return math.inf if p == 0 else 1.0 / p


class RatePoint(MacroBase):
    """One point of a scripted cash rate path: the rate from ``date`` on (per cent)."""

    date: dt.date
    rate: Percent


class CashRateParams(MacroBase):
    """The RBA cash rate target: mean-reverting to a regime level, moved in ticks, or scripted.

    Attributes:
        start: the published rate in the first month.
        long_run: level the desired rate reverts to, per regime.
        speed: fraction of the gap to ``long_run`` closed per month.
        volatility: standard deviation of the desired rate's monthly shock (points).
        floor: effective lower bound; neither the desired nor the published rate goes below.
        tick: size of a board move; the published rate lives on ``floor + k * tick``
            and moves only when the desired rate is a tick or more away.
            0 publishes the desired rate itself (continuous).
        path: scripted rates; each holds from its date (effective the first
            first-of-month on or after it) until the next point.
        interpolate: move linearly, month by month, between path points instead
            of stepping.
        after_path: after the last point, ``hold`` it or go back to ``stochastic``.
    """

    start: Percent = 3.85
    long_run: RegimeLevels = RegimeLevels(expansion=3.5, recession=1.0)
    speed: Speed = 0.08
    volatility: float = Field(default=0.12, ge=0, le=5)
    floor: Percent = 0.10
    tick: float = Field(default=0.25, ge=0, le=5)
    path: tuple[RatePoint, ...] = ()
    interpolate: bool = False
    after_path: Literal["hold", "stochastic"] = "hold"

    @model_validator(mode="after")
    def _consistent(self) -> CashRateParams:
        if self.start < self.floor:
            raise ValueError(f"start {self.start} is below the floor {self.floor}")
        months = [effective_month(point.date) for point in self.path]
        for before, after in zip(months, months[1:], strict=False):
            if after <= before:
                raise ValueError(
                    "path dates must increase and fall in different months once moved to "
                    f"the first of a month: {before} then {after}"
                )
        low = [point for point in self.path if point.rate < self.floor]
        if low:
            raise ValueError(
                f"path rate {low[0].rate} on {low[0].date} is below the floor {self.floor}; "
                "lower cash_rate.floor to script it"
            )
        return self


class UnemploymentParams(MacroBase):
    """The unemployment rate: AR(1) to a regime level, fast up in recessions, slow down after.

    Attributes:
        start: rate in the first month (per cent of the labour force).
        target: level it reverts to, per regime.
        speed: fraction of the gap closed per month, per regime.
        volatility: standard deviation of the monthly shock (points).
        floor: lowest value the stochastic model or a ``by`` shock can reach.
        ceiling: highest value.
    """

    start: Percent = 4.1
    target: RegimeLevels = RegimeLevels(expansion=4.25, recession=7.5)
    speed: RegimeSpeeds = RegimeSpeeds(expansion=0.04, recession=0.12)
    volatility: float = Field(default=0.08, ge=0, le=5)
    floor: Percent = 2.0
    ceiling: Percent = 20.0

    @model_validator(mode="after")
    def _consistent(self) -> UnemploymentParams:
        if not self.floor < self.ceiling:
            raise ValueError(f"floor {self.floor} must be below ceiling {self.ceiling}")
        if not self.floor <= self.start <= self.ceiling:
            raise ValueError(f"start {self.start} is outside [{self.floor}, {self.ceiling}]")
        return self


class InflationParams(MacroBase):
    """CPI inflation, per cent year on year: AR(1) to the target band's middle, lower in recessions.

    Attributes:
        start: annual CPI inflation in the first month.
        target_low: bottom of the RBA target band.
        target_high: top of the band; expansions revert to the middle.
        recession_offset: added to the middle in recessions (demand falls, so does inflation).
        speed: fraction of the gap closed per month.
        volatility: standard deviation of the monthly shock (points).
    """

    start: float = Field(default=3.8, ge=-20, le=100)
    target_low: float = 2.0
    target_high: float = 3.0
    recession_offset: float = -1.0
    speed: Speed = 0.06
    volatility: float = Field(default=0.15, ge=0, le=5)

    @model_validator(mode="after")
    def _band(self) -> InflationParams:
        if not self.target_low <= self.target_high:
            raise ValueError(f"target_low {self.target_low} is above target_high")
        return self

    @property
    def levels(self) -> RegimeLevels:
        """The long-run level per regime: band middle, plus the offset in recessions."""
        middle = (self.target_low + self.target_high) / 2.0
        return RegimeLevels(expansion=middle, recession=middle + self.recession_offset)


class HousePriceParams(MacroBase):
    """A dwelling price index (start = 100) with regime-dependent monthly growth.

    Attributes:
        start: index value in the first month.
        growth: expected growth per month, per cent, per regime.
        volatility: standard deviation of monthly log growth, per cent.
    """

    start: float = Field(default=100.0, gt=0)
    growth: RegimeLevels = RegimeLevels(expansion=0.5, recession=-1.0)
    volatility: float = Field(default=0.6, ge=0, le=50)

    @model_validator(mode="after")
    def _growth_above_minus_100(self) -> HousePriceParams:
        if min(self.growth.expansion, self.growth.recession) <= -100:
            raise ValueError("monthly growth must be above -100 per cent")
        return self


class Shock(MacroBase):
    """A scripted move of one series (or the regime), starting at a date.

    Numeric kinds move linearly from the anchor (the series' value in the
    month before ``at``; its start value if ``at`` is the first month) to the
    target: in month ``at + k`` the value is ``anchor + (target - anchor) * k / over_months``
    for ``k = 0 .. over_months`` (``over_months = 0`` jumps at ``at``). Then the
    series continues stochastically from the target, or stays there with ``hold``.

    Units: ``to`` is a level (per cent; an index level for ``house_prices``).
    ``by`` is a change: percentage points for the rates, a *relative* change in
    per cent for ``house_prices`` (``by: -20`` is a 20% fall). Targets reached
    through ``by`` are clamped to the series' floor/ceiling; a ``to`` outside
    them is refused when the scenario is validated.

    A ``regime`` shock sets the regime to ``to`` (``expansion``/``recession``)
    for months ``at .. at + over_months``; afterwards the chain switches as usual.

    Examples:
        ``{at: 2026-01-01, kind: unemployment, to: 8.0, over_months: 12}``
        (4% to 8% over a year, then recovery) and
        ``{at: 2026-01-01, kind: cash_rate, by: 3.0, over_months: 12}``.
    """

    at: dt.date
    kind: ShockKind
    to: float | Regime | None = None
    by: float | None = None
    over_months: int = Field(default=0, ge=0, le=1200)
    hold: bool = False

    @model_validator(mode="after")
    def _target(self) -> Shock:
        if self.kind == "regime":
            if self.by is not None or self.to not in REGIMES:
                raise ValueError("a regime shock needs `to: expansion` or `to: recession`, no `by`")
            return self
        if (self.to is None) == (self.by is None):
            raise ValueError(f"a {self.kind} shock needs exactly one of `to` and `by`")
        if isinstance(self.to, str):
            raise ValueError(f"a {self.kind} shock's `to` must be a number, got {self.to!r}")
        if self.kind == "house_prices":
            if self.to is not None and self.to <= 0:
                raise ValueError("a house_prices `to` is an index level and must be positive")
            if self.by is not None and self.by <= -100:
                raise ValueError("a house_prices `by` is a change in per cent, above -100")
        return self

    @property
    def month(self) -> dt.date:
        """The first month the shock acts in."""
        return effective_month(self.at)


class MacroParams(MacroBase):
    """Everything the economy needs: the regime chain, the four series, scripted shocks."""

    regime: RegimeParams = RegimeParams()
    cash_rate: CashRateParams = CashRateParams()
    unemployment: UnemploymentParams = UnemploymentParams()
    inflation: InflationParams = InflationParams()
    house_prices: HousePriceParams = HousePriceParams()
    shocks: tuple[Shock, ...] = ()

    @model_validator(mode="after")
    def _shocks_fit(self) -> MacroParams:
        seen: dict[tuple[str, dt.date], Shock] = {}
        for shock in self.shocks:
            key = (shock.kind, shock.month)
            if key in seen:
                raise ValueError(
                    f"two {shock.kind} shocks take effect in the same month {shock.month}"
                )
            seen[key] = shock
            if not isinstance(shock.to, float):
                continue
            if shock.kind == "cash_rate" and shock.to < self.cash_rate.floor:
                raise ValueError(
                    f"cash_rate shock to {shock.to} is below the floor {self.cash_rate.floor}"
                )
            bounds = (self.unemployment.floor, self.unemployment.ceiling)
            if shock.kind == "unemployment" and not bounds[0] <= shock.to <= bounds[1]:
                raise ValueError(f"unemployment shock to {shock.to} is outside {list(bounds)}")
        return self

    def long_run_cash_rate(self) -> float:
        """Long-run mean of the desired cash rate: the regime-weighted mean of its levels.

        Exact for the AR(1) with one speed (``E r = sum pi_s level_s``); ignores
        the floor, the tick grid and any scripting.
        """
        return regime_ar1_mean(self.regime, self.cash_rate.long_run, self.cash_rate.speed)

    def long_run_unemployment(self) -> float:
        """Long-run mean unemployment rate (regime-dependent speeds; ignores the bounds)."""
        u = self.unemployment
        return regime_ar1_mean(self.regime, u.target, u.speed)

    def long_run_inflation(self) -> float:
        """Long-run mean CPI inflation."""
        return regime_ar1_mean(self.regime, self.inflation.levels, self.inflation.speed)

    def long_run_house_price_growth(self) -> float:
        """Long-run expected monthly house price growth, per cent: ``sum pi_s g_s``."""
        pi = self.regime.stationary()
        return sum(pi[s] * self.house_prices.growth.of(s) for s in REGIMES)


def regime_ar1_mean(
    regime: RegimeParams, levels: RegimeLevels, speed: float | RegimeSpeeds
) -> float:
    """Stationary mean of ``x' = x + k[s'] * (level[s'] - x) + noise`` under the regime chain.

    With one speed the answer is simply ``sum pi_s level_s``. With a speed per
    regime it is not (unemployment spends recessions catching up), so solve the
    first moments exactly: with ``m_j = E[x; s = j]`` and ``P`` the transition
    matrix, stationarity gives ``m_j = (1 - k_j) sum_i P_ij m_i + k_j level_j pi_j``,
    a 2x2 linear system; the mean is ``m_e + m_r``.

    Args:
        regime: the chain (its stationary distribution and transition matrix).
        levels: long-run level per regime.
        speed: one speed, or one per regime.

    Returns:
        The long-run mean, ignoring floors, ceilings and scripted shocks.
    """
    pi = regime.stationary()
    p_er, p_re = regime.expansion_to_recession, regime.recession_to_expansion
    transition = np.array([[1 - p_er, p_er], [p_re, 1 - p_re]])
    if isinstance(speed, RegimeSpeeds):
        k = np.array([speed.expansion, speed.recession])
    else:
        k = np.array([speed, speed])
    level = np.array([levels.expansion, levels.recession])
    weights = np.array([pi["expansion"], pi["recession"]])
    system = np.eye(2) - np.diag(1 - k) @ transition.T
    moments = np.linalg.solve(system, k * level * weights)
    return float(moments.sum())


@dataclass(frozen=True, slots=True)
class MacroMonth:
    """The economy in one month: a flat record for subscribers, outputs and charts.

    Attributes:
        month: first day of the month.
        regime: ``expansion`` or ``recession``.
        cash_rate: RBA cash rate target, per cent.
        unemployment: unemployment rate, per cent.
        inflation: CPI inflation, per cent year on year.
        house_price_index: dwelling price index (100 at the default start).
    """

    month: dt.date
    regime: Regime
    cash_rate: float
    unemployment: float
    inflation: float
    house_price_index: float


_SERIES = ("cash_rate", "unemployment", "inflation", "house_prices")


class Economy:
    """The economy of one run, stepped month by month; shared by every tenant.

    Attributes:
        params: the parameters it was built with.
        state: the current month.
        history: every month so far, the first month first (read it, do not change it).
    """

    def __init__(self, params: MacroParams, rng: np.random.Generator, start: dt.date) -> None:
        """Set up the first month, the month of ``start``.

        Args:
            params: validated parameters.
            rng: the economy's own named stream; nothing else should draw from it.
            start: the scenario start; the first month is the month containing it.

        Raises:
            TypeError: if ``start`` is a datetime.
            ValueError: if a shock would take effect before the first month.
        """
        if isinstance(start, dt.datetime):
            raise TypeError("start must be a date, not a datetime")
        self.params = params
        self._rng = rng
        self._origin = start.replace(day=1)
        self._index = 0
        self._subscribers: list[Callable[[MacroMonth], None]] = []
        self._shocks: dict[str, list[tuple[int, Shock]]] = {}
        for shock in params.shocks:
            first = _months_between(self._origin, shock.month)
            if first < 0:
                raise ValueError(
                    f"{shock.kind} shock at {shock.at} takes effect before the economy's "
                    f"first month {self._origin}"
                )
            self._shocks.setdefault(shock.kind, []).append((first, shock))
        for entries in self._shocks.values():
            entries.sort(key=lambda entry: entry[0])
        cash = params.cash_rate
        self._path = [
            (_months_between(self._origin, effective_month(p.date)), p.rate) for p in cash.path
        ]
        self._ramps: dict[int, tuple[float, float]] = {}  # id(shock) -> (anchor, target)
        # Per-regime constants, looked up once per month.
        h = params.house_prices
        sigma = h.volatility / 100.0
        self._log_growth = {
            s: math.log1p(h.growth.of(s) / 100.0) - sigma * sigma / 2.0 for s in REGIMES
        }
        self._house_sigma = sigma
        self._inflation_level = {s: params.inflation.levels.of(s) for s in REGIMES}

        regime = self._forced_regime(0) or params.regime.start
        starts = {
            "cash_rate": cash.start,
            "unemployment": params.unemployment.start,
            "inflation": params.inflation.start,
            "house_prices": h.start,
        }
        values = {k: self._scripted(k, 0, v) for k, v in starts.items()}
        resolved = {k: starts[k] if v is None else v for k, v in values.items()}
        self._desired_rate = resolved["cash_rate"]
        self.state = MacroMonth(
            month=self._origin,
            regime=regime,
            cash_rate=resolved["cash_rate"],
            unemployment=resolved["unemployment"],
            inflation=resolved["inflation"],
            house_price_index=resolved["house_prices"],
        )
        self.history: list[MacroMonth] = [self.state]

    # ------------------------------------------------------------------ public

    @property
    def desired_cash_rate(self) -> float:
        """The board's continuous desired rate behind the published (ticked) one."""
        return self._desired_rate

    def on_month(self, callback: Callable[[MacroMonth], None]) -> None:
        """Call ``callback(month)`` for every month `process` publishes, in subscription order.

        Member and lending models subscribe here to react on the first of the
        month (employment transitions, repricing) without polling.
        """
        self._subscribers.append(callback)

    def at(self, day: dt.date) -> MacroMonth:
        """The month containing ``day``, if the economy has reached it.

        Raises:
            KeyError: if ``day`` is before the first month or after the current one.
        """
        index = _months_between(self._origin, day)
        if not 0 <= index < len(self.history):
            raise KeyError(f"{day} is outside {self._origin}..{self.state.month}")
        return self.history[index]

    def step(self) -> MacroMonth:
        """Advance one month and return it (deterministic given the generator's state).

        Draws one uniform and four normals every month, used or not, so that
        scripting one series never shifts the random path of another.
        """
        previous = self.state
        self._index += 1
        m = self._index
        u = float(self._rng.random())
        z = self._rng.standard_normal(4)

        regime = self._forced_regime(m)
        if regime is None:
            regime = previous.regime
            if u < self.params.regime.switch_probability(regime):
                regime = "recession" if regime == "expansion" else "expansion"

        cash_rate = self._cash_rate(m, regime, previous.cash_rate, float(z[0]))
        unemployment = self._scripted("unemployment", m, previous.unemployment)
        if unemployment is None:
            p = self.params.unemployment
            step = p.speed.of(regime) * (p.target.of(regime) - previous.unemployment)
            unemployment = previous.unemployment + step + p.volatility * float(z[1])
            unemployment = min(max(unemployment, p.floor), p.ceiling)
        inflation = self._scripted("inflation", m, previous.inflation)
        if inflation is None:
            p_inf = self.params.inflation
            gap = self._inflation_level[regime] - previous.inflation
            inflation = previous.inflation + p_inf.speed * gap + p_inf.volatility * float(z[2])
        house = self._scripted("house_prices", m, previous.house_price_index)
        if house is None:
            growth = self._log_growth[regime] + self._house_sigma * float(z[3])
            house = previous.house_price_index * math.exp(growth)

        self.state = MacroMonth(
            month=_add_months(previous.month, 1),
            regime=regime,
            cash_rate=cash_rate,
            unemployment=unemployment,
            inflation=inflation,
            house_price_index=house,
        )
        self.history.append(self.state)
        return self.state

    def process(
        self, env: simpy.Environment, clock: VirtualClock
    ) -> Generator[simpy.Event, object, None]:
        """SimPy process: publish the current month now, then step at 00:00 on each first.

        Subscribers see every month of the run exactly once and in order: the
        first month when the process starts (usually t = 0, which may be
        mid-month), then each new month at local midnight of its first day
        (``clock.seconds_at``, so daylight saving is handled by the clock).
        A process started late catches up at once, month by month.

        Args:
            env: the run's SimPy environment.
            clock: the run's virtual clock.
        """
        self._publish(self.state)
        while True:
            due = clock.seconds_at(_add_months(self.state.month, 1))
            yield env.timeout(max(0.0, due - env.now))
            self._publish(self.step())

    # ----------------------------------------------------------------- private

    def _publish(self, month: MacroMonth) -> None:
        for callback in tuple(self._subscribers):
            callback(month)

    def _forced_regime(self, m: int) -> Regime | None:
        """The regime a regime shock imposes on month ``m``, if any."""
        shock = self._governing("regime", m)
        if shock is None:
            return None
        first, chosen = shock
        if m - first <= chosen.over_months or chosen.hold:
            return chosen.to  # type: ignore[return-value]  # validated to be a regime name
        return None

    def _governing(self, kind: str, m: int) -> tuple[int, Shock] | None:
        """The latest shock of ``kind`` taking effect in or before month ``m``."""
        found = None
        for entry in self._shocks.get(kind, ()):
            if entry[0] > m:
                break
            found = entry
        return found

    def _scripted(self, kind: str, m: int, previous: float) -> float | None:
        """The value a shock (or, for the cash rate, the path) fixes for month ``m``, or None.

        Args:
            kind: the series.
            m: month index since the first month.
            previous: the series' value in the month before (the anchor if a
                shock starts now).
        """
        entry = self._governing(kind, m)
        if entry is not None:
            first, shock = entry
            k = m - first
            if k == 0:
                self._ramps[id(shock)] = (previous, self._target(shock, previous))
            if k <= shock.over_months or shock.hold:
                anchor, target = self._ramps[id(shock)]
                if k >= shock.over_months:
                    return target
                return anchor + (target - anchor) * k / shock.over_months
        if kind == "cash_rate":
            return self._path_rate(m)
        return None

    def _target(self, shock: Shock, anchor: float) -> float:
        """Where a shock ends, given its anchor; ``by`` targets are clamped to the bounds."""
        if isinstance(shock.to, float):
            return shock.to
        by = float(shock.by)  # type: ignore[arg-type]  # validated: exactly one of to/by
        p = self.params
        if shock.kind == "house_prices":
            return anchor * (1.0 + by / 100.0)
        if shock.kind == "cash_rate":
            return max(anchor + by, p.cash_rate.floor)
        if shock.kind == "unemployment":
            return min(max(anchor + by, p.unemployment.floor), p.unemployment.ceiling)
        return anchor + by

    def _path_rate(self, m: int) -> float | None:
        """The scripted path's rate for month ``m``, or None where the path does not apply."""
        path = self._path
        if not path or m < path[0][0]:
            return None
        cash = self.params.cash_rate
        last_index, last_rate = path[-1]
        if m >= last_index:
            if m == last_index or cash.after_path == "hold":
                return last_rate
            return None
        for (i0, r0), (i1, r1) in zip(path, path[1:], strict=False):
            if i0 <= m < i1:
                if cash.interpolate:
                    return r0 + (r1 - r0) * (m - i0) / (i1 - i0)
                return r0
        raise AssertionError("unreachable: m lies between the first and last path points")

    def _cash_rate(self, m: int, regime: Regime, published: float, z: float) -> float:
        """Next published cash rate; keeps the desired rate in step."""
        scripted = self._scripted("cash_rate", m, published)
        if scripted is not None:
            self._desired_rate = scripted
            return scripted
        p = self.params.cash_rate
        desired = self._desired_rate
        desired += p.speed * (p.long_run.of(regime) - desired) + p.volatility * z
        desired = max(desired, p.floor)
        self._desired_rate = desired
        if p.tick == 0:
            return desired
        if abs(desired - published) < p.tick - 1e-9:  # a whole tick, despite float rounding
            return published
        ticks = round((desired - p.floor) / p.tick)
        return round(p.floor + ticks * p.tick, 9)


#: Public source of every default above, by key path, for `twin params`.
MACRO_SOURCES: dict[str, str] = {
    "regime.expansion_to_recession": "ABS National Accounts (5206.0): technical recessions in "
    "1974-75, 1982-83, 1990-91 and 2020, about one a decade or less since 1970; assumed mean "
    "expansion of 120 months",
    "regime.recession_to_expansion": "ABS National Accounts: Australian recessions lasted two "
    "to four quarters (2020: 2, 1990-91: 3, 1982-83: 4); mean 9 months",
    "regime.start": "ABS National Accounts: GDP growing through 2025",
    "cash_rate.start": "RBA cash rate target: 3.85% from 4 February 2026 (statistical table F1.1)",
    "cash_rate.long_run.expansion": "RBA estimates of the nominal neutral rate, roughly "
    "3-3.75% (Statement on Monetary Policy 2024-25); assumed 3.5",
    "cash_rate.long_run.recession": "RBA cash rate history: eased to 3.00% (2009), 4.75% from "
    "17.5% (1990-93), 0.10% (2020); assumed 1.0",
    "cash_rate.speed": "assumed: half-life ~8 months; 2008-09 easing of 4.25 points in 7 months",
    "cash_rate.volatility": "assumed: gives a board move every few months, as in RBA history",
    "cash_rate.floor": "RBA: effective lower bound 0.10% (November 2020 to May 2022)",
    "cash_rate.tick": "RBA cash rate target moves in 25 basis point steps (table F1.1)",
    "cash_rate.path": "scenario option, none by default (e.g. replay RBA table F1.1)",
    "cash_rate.interpolate": "scenario option",
    "cash_rate.after_path": "scenario option",
    "unemployment.start": "ABS Labour Force, Australia: 4.1% seasonally adjusted, January 2026",
    "unemployment.target.expansion": "RBA estimates of full employment / NAIRU ~4-4.5% "
    "(Statement on Monetary Policy 2025); assumed 4.25",
    "unemployment.target.recession": "ABS Labour Force peaks: 10.9% (1992), 5.9% (2009), "
    "7.4% (2020); assumed 7.5",
    "unemployment.speed.expansion": "assumed: half-life ~17 months (slow falls after 1992, 2009)",
    "unemployment.speed.recession": "assumed: half-life ~5.4 months (fast rises of 1991, 2020)",
    "unemployment.volatility": "assumed: ABS Labour Force monthly s.a. moves ~0.1 point",
    "unemployment.floor": "assumed (lowest since 1974 was 3.4%, 2022-23, ABS Labour Force)",
    "unemployment.ceiling": "assumed",
    "inflation.start": "ABS Consumer Price Index (monthly): 3.8% in the 12 months to December 2025",
    "inflation.target_low": "RBA inflation target: 2-3% (Statement on the Conduct of Monetary "
    "Policy)",
    "inflation.target_high": "RBA inflation target: 2-3%",
    "inflation.recession_offset": "ABS CPI: inflation fell 1-4 points after the 1990-91 and "
    "2008-09 downturns; assumed -1",
    "inflation.speed": "assumed: half-life ~11 months (annual CPI is persistent)",
    "inflation.volatility": "assumed",
    "house_prices.start": "index base (CoreLogic/Cotality Home Value Index, ABS RPPI rebased)",
    "house_prices.growth.expansion": "CoreLogic/Cotality Home Value Index: national dwelling "
    "values up ~6-7% a year over the long run (~0.5%/month)",
    "house_prices.growth.recession": "CoreLogic/Cotality: national values fell ~9% from April "
    "2022 to January 2023 as rates rose (~-1%/month)",
    "house_prices.volatility": "assumed",
    "shocks": "scenario option, none by default",
}


def parameter_rows(params: MacroParams | None = None) -> list[tuple[str, Any, str]]:
    """``(key path, value, source)`` for each entry of `MACRO_SOURCES`: tables, `twin params`.

    Args:
        params: the parameters to show; the defaults if None.
    """
    dumped = (params or MacroParams()).model_dump(mode="json")
    rows = []
    for path, source in MACRO_SOURCES.items():
        value: Any = dumped
        for part in path.split("."):
            value = value[part]
        rows.append((path, value, source))
    return rows
