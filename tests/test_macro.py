"""Tests of models.macro: the monthly economy agrees with its analytic description and scripts.

Statistical checks compare simulated paths with the model's own analytic
numbers (stationary regime shares, AR(1) means and variances) over several
seeds, at a family-wise false-alarm rate of 0.001 (Bonferroni), so a failure
means a real discrepancy. Scripted paths and shocks are checked exactly.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import simpy
from pydantic import ValidationError
from scipy import stats

from models.macro import (
    MACRO_SOURCES,
    CashRateParams,
    Economy,
    HousePriceParams,
    InflationParams,
    MacroMonth,
    MacroParams,
    RatePoint,
    RegimeLevels,
    RegimeParams,
    RegimeSpeeds,
    Shock,
    UnemploymentParams,
    effective_month,
    parameter_rows,
)
from sim.clock import SYDNEY, VirtualClock

START = date(2026, 1, 1)
FAMILY_ALPHA = 0.001
ALWAYS_EXPANSION = RegimeParams(expansion_to_recession=0.0)


def z_crit(tests: int, alpha: float = FAMILY_ALPHA) -> float:
    """Two-sided normal critical value for `tests` Bonferroni-corrected tests."""
    return float(stats.norm.isf(alpha / (2 * tests)))


def run(params: MacroParams, seed: int, months: int, start: date = START) -> Economy:
    """An economy from `seed`, stepped `months` times (history has months + 1 entries)."""
    economy = Economy(params, np.random.default_rng(seed), start)
    for _ in range(months):
        economy.step()
    return economy


def series(economy: Economy, name: str) -> np.ndarray:
    """One field of every month so far, as a float array."""
    return np.array([getattr(month, name) for month in economy.history], dtype=np.float64)


def ar1_moments(
    start: float, level: float, speed: float, sigma: float, t: int
) -> tuple[float, float]:
    """Mean and variance after t steps of x' = x + speed * (level - x) + sigma * z from `start`."""
    phi = 1.0 - speed
    mean = level + (start - level) * phi**t
    variance = sigma**2 * (1 - phi ** (2 * t)) / (1 - phi**2)
    return mean, variance


# ------------------------------------------------------------------------- regime chain


def test_stationary_regime_formula() -> None:
    """Defaults give 9/129 of months in recession, spells of 120 and 9 months; edge cases."""
    regime = RegimeParams()
    pi = regime.stationary()
    assert pi["recession"] == pytest.approx(9 / 129, rel=1e-12)
    assert pi["expansion"] + pi["recession"] == pytest.approx(1.0, rel=1e-15)
    assert regime.mean_duration("expansion") == pytest.approx(120.0)
    assert regime.mean_duration("recession") == pytest.approx(9.0)
    assert ALWAYS_EXPANSION.stationary() == {"expansion": 1.0, "recession": 0.0}
    assert ALWAYS_EXPANSION.mean_duration("expansion") == math.inf
    with pytest.raises(ValueError, match="stationary"):
        RegimeParams(expansion_to_recession=0.0, recession_to_expansion=0.0).stationary()


def test_regime_chain_matches_stationary_distribution_and_spell_lengths() -> None:
    """Each seed's share of recession months, and pooled spell lengths, fit the analytic chain.

    The share's standard error uses the two-state chain's autocorrelation
    (second eigenvalue lambda = 1 - p_er - p_re): var = pi_e pi_r (1 + lambda) / (1 - lambda) / n.
    """
    params = MacroParams()
    regime = params.regime
    pi_r = regime.stationary()["recession"]
    lam = 1 - regime.expansion_to_recession - regime.recession_to_expansion
    n = 24_000
    seeds = range(6)
    z = z_crit(len(seeds) + 2)
    se = math.sqrt(pi_r * (1 - pi_r) * (1 + lam) / (1 - lam) / n)
    spells: dict[str, list[int]] = {"expansion": [], "recession": []}
    for seed in seeds:
        regimes = [m.regime for m in run(params, seed, n).history]
        share = regimes.count("recession") / len(regimes)
        assert abs(share - pi_r) <= z * se, (seed, share, pi_r, se)
        current, length = regimes[0], 0
        for r in regimes:
            if r == current:
                length += 1
            else:
                spells[current].append(length)
                current, length = r, 1
        # the last spell is cut off by the end of the run: not a complete spell
    for name, lengths in spells.items():
        p = regime.switch_probability(name)  # type: ignore[arg-type]
        mean, var = 1 / p, (1 - p) / p**2
        observed = float(np.mean(lengths))
        assert abs(observed - mean) <= z * math.sqrt(var / len(lengths)), (name, observed)


def test_regime_shock_forces_the_regime_then_the_chain_resumes() -> None:
    """A regime shock sets recession for months at..at+over_months; then the chain moves on."""
    regime = RegimeParams(expansion_to_recession=0.0, recession_to_expansion=1.0)
    shock = Shock(at=date(2026, 3, 1), kind="regime", to="recession", over_months=5)
    economy = run(MacroParams(regime=regime, shocks=(shock,)), seed=3, months=12)
    regimes = [m.regime for m in economy.history]
    assert regimes == ["expansion"] * 2 + ["recession"] * 6 + ["expansion"] * 5
    held = shock.model_copy(update={"hold": True})
    economy = run(MacroParams(regime=regime, shocks=(held,)), seed=3, months=24)
    assert [m.regime for m in economy.history][2:] == ["recession"] * 23


# ------------------------------------------------------------------------- cash rate


def test_cash_rate_reverts_to_its_level() -> None:
    """The desired rate's cross-seed mean path and its late time average match the AR(1).

    Always in expansion, continuous (tick 0), starting at 8% toward 3.5%: the
    mean over 300 seeds at months 12 and 24 sits in the CI of the analytic
    mean; each seed's average over months 120..1320 is within the CI built
    from the AR(1)'s long-run variance sigma^2 / speed^2.
    """
    cash = CashRateParams(start=8.0, tick=0.0)
    params = MacroParams(regime=ALWAYS_EXPANSION, cash_rate=cash)
    level, k, sigma = cash.long_run.expansion, cash.speed, cash.volatility
    z = z_crit(2 + 5)
    paths = np.array([series(run(params, seed, 24), "cash_rate") for seed in range(300)])
    for t in (12, 24):
        mean, variance = ar1_moments(8.0, level, k, sigma, t)
        assert abs(paths[:, t].mean() - mean) <= z * math.sqrt(variance / 300), t
        assert paths[:, t].mean() < 8.0 - 0.5 * (8.0 - mean)  # it did move toward 3.5
    n = 1200
    se = math.sqrt(sigma**2 / k**2 / n)
    for seed in range(5):
        late = series(run(params, 1000 + seed, 120 + n), "cash_rate")[121:]
        assert abs(late.mean() - level) <= z * se, (seed, late.mean())


def test_long_run_means_match_analytic_under_regime_switching() -> None:
    """Per-seed time averages of all four series agree with the analytic long-run means.

    Fast switching (p_er 0.1, p_re 0.2) mixes quickly. Per-seed means over 20
    seeds are tested against the analytic value with a one-sample t-test. The
    unemployment level with regime-dependent speeds (6.08) is far from the
    naive regime-weighted target (5.33), so the test tells the two apart.
    """
    params = MacroParams(
        regime=RegimeParams(expansion_to_recession=0.1, recession_to_expansion=0.2),
        cash_rate=CashRateParams(tick=0.0, floor=0.0),
        house_prices=HousePriceParams(growth=RegimeLevels(expansion=0.8, recession=-0.4)),
    )
    expected = {
        "cash_rate": params.long_run_cash_rate(),
        "unemployment": params.long_run_unemployment(),
        "inflation": params.long_run_inflation(),
        "house_growth": params.long_run_house_price_growth(),
    }
    assert expected["cash_rate"] == pytest.approx(2 / 3 * 3.5 + 1 / 3 * 1.0)
    assert expected["house_growth"] == pytest.approx(2 / 3 * 0.8 - 1 / 3 * 0.4)
    means: dict[str, list[float]] = {name: [] for name in expected}
    for seed in range(20):
        economy = run(params, seed, 3100)
        for name in ("cash_rate", "unemployment", "inflation"):
            means[name].append(float(series(economy, name)[100:].mean()))
        index = series(economy, "house_price_index")[100:]
        means["house_growth"].append(float((index[1:] / index[:-1] - 1).mean() * 100))
    for name, values in means.items():
        result = stats.ttest_1samp(values, expected[name])
        assert result.pvalue > FAMILY_ALPHA / len(means), (name, np.mean(values), expected[name])
    naive = 2 / 3 * 4.25 + 1 / 3 * 7.5
    spread = np.std(means["unemployment"], ddof=1) / math.sqrt(20)
    assert abs(expected["unemployment"] - naive) > 10 * spread


def test_published_rate_moves_in_whole_ticks_on_the_floor_grid() -> None:
    """Published rates lie on 0.10 + 0.25k, move by at least a tick, never a tick from desired."""
    params = MacroParams()
    for seed in range(4):
        economy = Economy(params, np.random.default_rng(seed), START)
        published = [economy.state.cash_rate]
        for _ in range(600):
            month = economy.step()
            assert abs(economy.desired_cash_rate - month.cash_rate) < 0.25 + 1e-9
            published.append(month.cash_rate)
        rates = np.array(published)
        ticks = (rates - 0.10) / 0.25
        assert np.allclose(ticks, np.round(ticks), atol=1e-9)
        changes = np.abs(np.diff(rates))
        moves = changes[changes > 0]
        assert moves.size >= 10  # the board does move
        assert moves.min() >= 0.25 - 1e-9
        assert moves.size < 0.5 * changes.size  # but not every month


def test_scripted_path_pins_the_cash_rate_on_its_dates() -> None:
    """A step path holds each rate exactly from its month; a mid-month date counts next month."""
    path = (
        RatePoint(date=date(2026, 3, 1), rate=4.10),
        RatePoint(date=date(2026, 6, 1), rate=4.35),
        RatePoint(date=date(2026, 8, 18), rate=3.60),  # an RBA-style Tuesday decision
    )
    cash = CashRateParams(path=path, volatility=0.5, tick=0.0)
    for seed in range(5):
        rates = series(run(MacroParams(cash_rate=cash), seed, 36), "cash_rate")
        assert rates[0] == 3.85
        assert rates[1] != 3.85  # stochastic before the path starts
        assert list(rates[2:5]) == [4.10] * 3
        assert list(rates[5:8]) == [4.35] * 3  # June, July, and August (decision on the 18th)
        assert list(rates[8:]) == [3.60] * 29  # held after the last point


def test_path_interpolates_covers_the_start_and_can_hand_back() -> None:
    """Linear interpolation between points; history before the start; stochastic after the path."""
    cash = CashRateParams(
        path=(
            RatePoint(date=date(2025, 9, 1), rate=2.0),
            RatePoint(date=date(2026, 1, 1), rate=3.0),
            RatePoint(date=date(2026, 5, 1), rate=5.0),
        ),
        interpolate=True,
        after_path="stochastic",
        tick=0.0,
    )
    rates = series(run(MacroParams(cash_rate=cash), seed=1, months=12), "cash_rate")
    assert list(rates[:5]) == pytest.approx([3.0, 3.5, 4.0, 4.5, 5.0], abs=1e-12)
    assert np.all(rates[5:] != 5.0)
    stepped = cash.model_copy(update={"interpolate": False})
    economy = run(MacroParams(cash_rate=stepped), seed=1, months=4, start=date(2025, 11, 20))
    assert list(series(economy, "cash_rate")) == [2.0, 2.0, 3.0, 3.0, 3.0]


def test_rate_shock_three_points_in_twelve_months() -> None:
    """+3 points over 12 months: +0.25 a month from 3.85 to 6.85; then free, or held."""
    shock = Shock(at=START, kind="cash_rate", by=3.0, over_months=12)
    for seed in range(5):
        rates = series(run(MacroParams(shocks=(shock,)), seed, 48), "cash_rate")
        assert list(rates[:13]) == pytest.approx([3.85 + 0.25 * k for k in range(13)], abs=1e-9)
        assert rates[36] < 6.85  # after the ramp it reverts toward 3.5
    held = shock.model_copy(update={"hold": True})
    rates = series(run(MacroParams(shocks=(held,)), seed=0, months=60), "cash_rate")
    assert list(rates[12:]) == pytest.approx([6.85] * 49, abs=1e-9)


# ------------------------------------------------------------------------- unemployment


def test_recession_shock_unemployment_four_to_eight_then_recovery() -> None:
    """4% to 8% over 12 months exactly on the ramp, then an AR(1) recovery toward 4.25%.

    Always in expansion: after the ramp the cross-seed mean at 12 and 36
    months on matches the analytic recovery path; every seed is below 6% five
    years on.
    """
    unemployment = UnemploymentParams(start=4.0)
    shock = Shock(at=START, kind="unemployment", to=8.0, over_months=12)
    params = MacroParams(regime=ALWAYS_EXPANSION, unemployment=unemployment, shocks=(shock,))
    paths = np.array([series(run(params, seed, 72), "unemployment") for seed in range(200)])
    ramp = [4.0 + 4.0 * k / 12 for k in range(13)]
    assert np.allclose(paths[:, :13], ramp, atol=1e-12)
    assert paths[0, 0] == 4.0
    assert paths[0, 6] == pytest.approx(6.0, abs=1e-12)
    assert paths[0, 12] == 8.0
    level, k, sigma = 4.25, unemployment.speed.expansion, unemployment.volatility
    z = z_crit(2)
    for t in (12, 36):
        mean, variance = ar1_moments(8.0, level, k, sigma, t)
        assert abs(paths[:, 12 + t].mean() - mean) <= z * math.sqrt(variance / 200), t
    assert np.all(paths[:, 72] < 6.0)


def test_shock_anchors_on_the_month_before() -> None:
    """A shock starting in month 3 starts from month 2's value and reaches its target on time."""
    shock = Shock(at=date(2026, 3, 15), kind="unemployment", to=8.0, over_months=6)
    assert shock.month == date(2026, 4, 1) == effective_month(shock.at)
    u = series(run(MacroParams(shocks=(shock,)), seed=9, months=12), "unemployment")
    anchor = u[2]
    assert u[3] == anchor
    assert u[6] == pytest.approx(anchor + (8.0 - anchor) / 2, abs=1e-12)
    assert u[9] == 8.0
    assert u[10] != 8.0


def test_shock_leaves_every_other_series_untouched() -> None:
    """Common random numbers: scripting unemployment changes only unemployment, seed for seed."""
    shock = Shock(at=date(2026, 6, 1), kind="unemployment", by=4.0, over_months=12)
    for seed in range(3):
        base = run(MacroParams(), seed, 120).history
        shocked = run(MacroParams(shocks=(shock,)), seed, 120).history
        for a, b in zip(base, shocked, strict=True):
            assert (a.regime, a.cash_rate, a.inflation, a.house_price_index) == (
                b.regime,
                b.cash_rate,
                b.inflation,
                b.house_price_index,
            )
        assert any(a.unemployment != b.unemployment for a, b in zip(base, shocked, strict=True))


# ------------------------------------------------------------------------- house prices


def test_house_price_index_expected_growth() -> None:
    """E[H_t] = 100 (1 + g)^t and Var = E^2 (exp(sigma^2 t) - 1), over 400 seeds at t = 24."""
    params = MacroParams(regime=ALWAYS_EXPANSION)
    g, sigma, t, n = 0.005, 0.006, 24, 400
    values = np.array([run(params, seed, t).state.house_price_index for seed in range(n)])
    mean = 100 * (1 + g) ** t
    variance = mean**2 * math.expm1(sigma**2 * t)
    assert abs(values.mean() - mean) <= z_crit(1) * math.sqrt(variance / n)
    assert values.mean() > 110  # it grew (0.5%/month for two years is +12.7%)


def test_house_price_shock_by_is_a_relative_change() -> None:
    """`by: -20` on house prices is a 20% fall from the anchor, reached over the ramp."""
    shock = Shock(at=START, kind="house_prices", by=-20.0, over_months=10)
    index = series(run(MacroParams(shocks=(shock,)), seed=2, months=10), "house_price_index")
    assert index[0] == 100.0
    assert index[5] == pytest.approx(90.0)
    assert index[10] == pytest.approx(80.0)


# ------------------------------------------------------------------------- bounds


def test_floors_and_ceilings_are_respected() -> None:
    """Levels beyond the bounds pin the series at them, never past them; index stays positive."""
    to_minus = RegimeLevels(expansion=-3.0, recession=-3.0)
    for tick in (0.0, 0.25):
        cash = CashRateParams(long_run=to_minus, volatility=0.5, tick=tick)
        rates = series(run(MacroParams(cash_rate=cash), seed=4, months=240), "cash_rate")
        assert rates.min() >= 0.10
        assert np.mean(rates == 0.10) > 0.5  # it sits on the floor
    for level, bound in ((-10.0, 2.0), (40.0, 20.0)):
        target = RegimeLevels(expansion=level, recession=level)
        u = UnemploymentParams(target=target, volatility=0.3)
        rates = series(run(MacroParams(unemployment=u), seed=4, months=240), "unemployment")
        assert rates.min() >= 2.0
        assert rates.max() <= 20.0
        assert np.mean(rates == bound) > 0.3
    crash = HousePriceParams(growth=RegimeLevels(expansion=-60.0, recession=-60.0), volatility=30)
    index = series(run(MacroParams(house_prices=crash), seed=4, months=60), "house_price_index")
    assert np.all(index > 0)
    shocks = (
        Shock(at=START, kind="cash_rate", by=-10.0, over_months=4),
        Shock(at=START, kind="unemployment", by=30.0, over_months=4),
    )
    economy = run(MacroParams(shocks=shocks), seed=4, months=4)
    assert economy.state.cash_rate == 0.10
    assert economy.state.unemployment == 20.0


# ------------------------------------------------------------------------- determinism, API


def test_same_seed_same_history_and_different_seeds_differ() -> None:
    """The economy is a pure function of parameters, start and generator seed."""
    params = MacroParams(shocks=(Shock(at=date(2027, 1, 1), kind="regime", to="recession"),))
    first = run(params, 42, 120).history
    assert first == run(params, 42, 120).history
    other = run(params, 43, 120).history
    assert first != other
    assert [m.month for m in first] == [m.month for m in other]


def test_history_months_and_lookup() -> None:
    """Months are consecutive firsts from the start's month; `at` finds the month of any day."""
    economy = run(MacroParams(), seed=0, months=14, start=date(2025, 11, 20))
    months = [m.month for m in economy.history]
    assert months[0] == date(2025, 11, 1)
    assert months[-1] == date(2027, 1, 1)
    assert all(m.day == 1 for m in months)
    assert economy.at(date(2026, 2, 17)) is economy.history[3]
    with pytest.raises(KeyError):
        economy.at(date(2027, 2, 1))
    with pytest.raises(KeyError):
        economy.at(date(2025, 10, 31))
    assert isinstance(economy.state, MacroMonth)


def test_process_steps_on_the_first_of_each_month_and_notifies_in_order() -> None:
    """Under SimPy, months arrive at local midnight on each first (across DST), in order.

    Started mid-month, the process publishes the first month at t = 0, then
    every first of the month through the next July; two subscribers are
    called in subscription order with the same record the history holds.
    """
    start = date(2025, 7, 15)
    clock = VirtualClock(start)
    env = simpy.Environment()
    economy = Economy(MacroParams(), np.random.default_rng(5), start)
    calls: list[tuple[str, float, MacroMonth]] = []
    economy.on_month(lambda m: calls.append(("a", env.now, m)))
    economy.on_month(lambda m: calls.append(("b", env.now, m)))
    env.process(economy.process(env, clock))
    env.run(until=clock.seconds_at(date(2026, 7, 1)) + 1)
    assert len(economy.history) == 13
    assert [name for name, _, _ in calls] == ["a", "b"] * 13
    assert [m for _, _, m in calls[::2]] == economy.history
    assert [m for _, _, m in calls[1::2]] == economy.history
    times = [now for _, now, _ in calls[::2]]
    assert times[0] == 0.0
    for now, month in zip(times[1:], economy.history[1:], strict=True):
        first = datetime(month.month.year, month.month.month, 1, tzinfo=SYDNEY)
        assert clock.datetime_at(now) == first
    gaps = {later - earlier for earlier, later in zip(times[1:], times[2:], strict=False)}
    assert len(gaps) > 2  # months differ in seconds (28 to 31 days, and DST)


# ------------------------------------------------------------------------- validation


def _shock(**fields: Any) -> dict[str, Any]:
    return {"at": START, "kind": "unemployment", "over_months": 12, **fields}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"shocks": [_shock(to=8.0, by=4.0)]}, "exactly one"),
        ({"shocks": [_shock()]}, "exactly one"),
        ({"shocks": [_shock(kind="regime", to=1.0)]}, "regime"),
        ({"shocks": [_shock(to="recession")]}, "number"),
        ({"shocks": [_shock(to=25.0)]}, "outside"),
        ({"shocks": [_shock(kind="cash_rate", to=0.05)]}, "floor"),
        ({"shocks": [_shock(kind="house_prices", by=-100.0)]}, "-100"),
        ({"shocks": [_shock(to=8.0), _shock(at=date(2025, 12, 2), by=1.0)]}, "same month"),
        ({"shocks": [_shock(to=8.0, months=3)]}, "Extra inputs"),
        ({"cash_rate": {"start": float("nan")}}, "finite"),
        ({"cash_rate": {"start": 0.05}}, "floor"),
        ({"cash_rate": {"path": [{"date": START, "rate": 0.0}]}}, "floor"),
        (
            {
                "cash_rate": {
                    "path": [{"date": date(2026, 3, 1), "rate": 4}, {"date": START, "rate": 3}]
                }
            },
            "increase",
        ),
        (
            {
                "cash_rate": {
                    "path": [
                        {"date": date(2026, 2, 2), "rate": 4},
                        {"date": date(2026, 3, 1), "rate": 3},
                    ]
                }
            },
            "increase",
        ),
        ({"unemployment": {"speed": {"expansion": 0.0, "recession": 0.1}}}, "greater than"),
        ({"unemployment": {"floor": 5.0}}, "outside"),
        ({"inflation": {"target_low": 3.5}}, "above"),
        ({"regime": {"expansion_to_recession": 1.5}}, "less than"),
        ({"regime": {"start": "boom"}}, "expansion"),
    ],
)
def test_bad_parameters_are_refused(data: dict[str, Any], message: str) -> None:
    """Inconsistent or mistyped parameters fail validation with a message that says why."""
    with pytest.raises(ValidationError, match=message):
        MacroParams.model_validate(data)


def test_yaml_style_values_are_accepted() -> None:
    """Decimals (as the scenario loader makes them), dates and regime names validate."""
    params = MacroParams.model_validate(
        {
            "cash_rate": {
                "start": Decimal("4.35"),
                "path": [{"date": START, "rate": Decimal("4.1")}],
            },
            "shocks": [
                {"at": START, "kind": "unemployment", "to": Decimal("8.0"), "over_months": 12},
                {"at": START, "kind": "regime", "to": "recession", "over_months": 6},
            ],
        }
    )
    assert params.cash_rate.start == 4.35
    assert params.cash_rate.path[0].rate == 4.1
    assert params.shocks[0].to == 8.0
    assert isinstance(params.shocks[0].to, float)
    assert params.shocks[1].to == "recession"
    assert params.unemployment.speed == RegimeSpeeds(expansion=0.04, recession=0.12)
    assert InflationParams().levels == RegimeLevels(expansion=2.5, recession=1.5)


def test_economy_refuses_shocks_before_its_start_and_datetimes() -> None:
    """A shock before the first month is an error, not silently dropped; start is a date."""
    params = MacroParams(shocks=(Shock(at=date(2025, 12, 1), kind="inflation", by=1.0),))
    with pytest.raises(ValueError, match="before the economy's first month"):
        Economy(params, np.random.default_rng(0), START)
    with pytest.raises(TypeError, match="date"):
        Economy(MacroParams(), np.random.default_rng(0), datetime(2026, 1, 1, tzinfo=SYDNEY))


def test_sources_cover_every_default() -> None:
    """Every default has a non-empty source, and every source names a real parameter."""

    def leaves(value: Any, prefix: str = "") -> set[str]:
        if isinstance(value, dict):
            return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in value.items()))
        return {prefix.rstrip(".")}

    defaults = MacroParams().model_dump(mode="json")
    assert leaves(defaults) == set(MACRO_SOURCES)
    rows = parameter_rows()
    assert [row[0] for row in rows] == list(MACRO_SOURCES)
    assert all(source.strip() for _, _, source in rows)
    assert dict((row[0], row[1]) for row in rows)["cash_rate.start"] == 3.85
