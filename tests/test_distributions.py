"""Tests of models.distributions: draws agree with the analytic moments they advertise.

Statistical checks run over several seeds; each seed's statistic must fall
inside an interval built from the analytic mean and variance, at a
family-wise false-alarm rate of 0.001 (Bonferroni across seeds), so a failure
means a real discrepancy, not bad luck. A few seeded pins guard against
accidental changes to the order of generator use.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats

from models.distributions import (
    BUSINESS_HOURS,
    CARD_HOURS,
    SALARY_HOURS,
    SAVINGS_HOURS,
    HourlyProfile,
    LogNormalAmount,
    PoissonCount,
    dollars_to_cents,
)

SEEDS = range(8)
FAMILY_ALPHA = 0.001


def z_crit(tests: int, alpha: float = FAMILY_ALPHA) -> float:
    """Two-sided normal critical value for `tests` Bonferroni-corrected tests."""
    return float(stats.norm.isf(alpha / (2 * tests)))


def assert_mean_in_ci(sample_mean: float, mean: float, variance: float, n: int, z: float) -> None:
    """Sample mean of n iid draws within z standard errors of the analytic mean."""
    se = math.sqrt(variance / n)
    assert abs(sample_mean - mean) <= z * se, (sample_mean, mean, se)


# --- dollars_to_cents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dollars", "cents"),
    [
        (Decimal("41.00"), 4100),
        (Decimal("0.01"), 1),
        (Decimal("67000"), 6_700_000),
        (Decimal("215.5"), 21_550),
        (Decimal("1.230"), 123),
    ],
)
def test_dollars_to_cents_is_exact(dollars: Decimal, cents: int) -> None:
    """Decimal dollars become the exact integer number of cents (never via float)."""
    result = dollars_to_cents(dollars)
    assert result == cents
    assert type(result) is int


@pytest.mark.parametrize("bad", [Decimal("1.005"), Decimal("NaN"), Decimal("Infinity"), 41.0])
def test_dollars_to_cents_refuses_inexact(bad: object) -> None:
    """Fractions of a cent, non-finite values and floats are refused, not rounded."""
    with pytest.raises(ValueError, match="amount"):
        dollars_to_cents(bad)  # type: ignore[arg-type]


# --- LogNormalAmount ------------------------------------------------------------------------


def test_lognormal_from_dollars_and_analytic_moments() -> None:
    """from_dollars converts the mean exactly; mu/sigma reproduce the mean and CV."""
    dist = LogNormalAmount.from_dollars(Decimal("41.00"), 1.4)
    assert dist.mean == 4100.0
    assert dist.variance == pytest.approx((1.4 * 4100.0) ** 2, rel=1e-12)
    assert math.exp(dist.mu + dist.sigma**2 / 2) == pytest.approx(4100.0, rel=1e-12)
    assert dist.raw_moment(1) == pytest.approx(dist.mean, rel=1e-12)
    assert dist.raw_moment(2) - dist.mean**2 == pytest.approx(dist.variance, rel=1e-9)


def test_lognormal_from_median() -> None:
    """from_median keeps the median and gives mean = median * exp(sigma^2 / 2)."""
    dist = LogNormalAmount.from_median(6_700_000.0, 0.55)
    assert dist.median == pytest.approx(6_700_000.0, rel=1e-12)
    assert dist.sigma == pytest.approx(0.55, rel=1e-12)
    assert dist.mean == pytest.approx(6_700_000.0 * math.exp(0.55**2 / 2), rel=1e-12)


@pytest.mark.parametrize(
    ("mean_cents", "cv"), [(0.0, 1.0), (-5.0, 1.0), (100.0, 0.0), (math.nan, 1.0), (1.0, math.inf)]
)
def test_lognormal_rejects_bad_parameters(mean_cents: float, cv: float) -> None:
    """A non-positive or non-finite mean or CV is a configuration error."""
    with pytest.raises(ValueError, match="must be positive"):
        LogNormalAmount(mean_cents, cv)


def test_lognormal_sample_mean_in_ci() -> None:
    """Each seed's sample mean, and all seeds pooled, lie in the CI of the analytic mean."""
    dist = LogNormalAmount.from_dollars(Decimal("41.00"), 1.4)
    n = 100_000
    z = z_crit(len(SEEDS) + 1)
    means = []
    for seed in SEEDS:
        draws = dist.sample(np.random.default_rng(seed), n)
        means.append(float(draws.mean()))
        assert_mean_in_ci(means[-1], dist.mean, dist.variance, n, z)
    # Pooled, the seeds resolve a bias of a fraction of a percent.
    assert_mean_in_ci(float(np.mean(means)), dist.mean, dist.variance, n * len(SEEDS), z)


def test_lognormal_sample_variance_in_ci() -> None:
    """The sample variance lies in a CI built from the analytic fourth central moment."""
    dist = LogNormalAmount(50_000.0, 0.8)
    m = dist.mean
    mu4 = dist.raw_moment(4) - 4 * m * dist.raw_moment(3) + 6 * m**2 * dist.raw_moment(2) - 3 * m**4
    n = 100_000
    se = math.sqrt((mu4 - dist.variance**2) / n)
    z = z_crit(len(SEEDS))
    for seed in SEEDS:
        draws = dist.sample(np.random.default_rng(seed), n).astype(np.float64)
        assert abs(float(draws.var(ddof=1)) - dist.variance) <= z * se


def test_lognormal_log_of_draws_is_normal() -> None:
    """log(draws) passes a KS test against Normal(mu, sigma); cents rounding is negligible."""
    dist = LogNormalAmount(500_000.0, 1.0)
    seeds = range(5)
    for seed in seeds:
        draws = dist.sample(np.random.default_rng(seed), 20_000)
        result = stats.kstest(np.log(draws), "norm", args=(dist.mu, dist.sigma))
        assert result.pvalue > FAMILY_ALPHA / len(seeds)


def test_lognormal_scale_multiplies_the_mean_per_draw() -> None:
    """An array scale multiplies each draw's mean (CV unchanged); a float scale all of them."""
    dist = LogNormalAmount(4_000.0, 1.2)
    n = 60_000
    scale = np.where(np.arange(n) % 2 == 0, 0.5, 3.0)
    z = z_crit(3 * len(SEEDS))
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        draws = dist.sample(rng, n, scale=scale)
        for s in (0.5, 3.0):
            group = draws[scale == s]
            assert_mean_in_ci(
                float(group.mean()), s * dist.mean, s * s * dist.variance, group.size, z
            )
        doubled = dist.sample(rng, n, scale=2.0)
        assert_mean_in_ci(float(doubled.mean()), 2 * dist.mean, 4 * dist.variance, n, z)


def test_lognormal_amounts_are_int64_and_at_least_one_cent() -> None:
    """Draws are int64 cents, never below one cent even when the mean is under a cent."""
    dist = LogNormalAmount(0.7, 3.0)
    draws = dist.sample(np.random.default_rng(1), 10_000, scale=np.full(10_000, 0.5))
    assert draws.dtype == np.int64
    assert draws.min() >= 1
    assert (draws == 1).mean() > 0.5  # the clip really is exercised here
    big = LogNormalAmount.from_dollars(Decimal("41.00"), 1.4).sample(np.random.default_rng(2), 10)
    assert big.dtype == np.int64
    assert big.shape == (10,)


def test_lognormal_seeded_pin() -> None:
    """Regression guard: a fixed seed gives these exact cents (generator use unchanged)."""
    draws = LogNormalAmount.from_dollars(Decimal("41.00"), 1.4).sample(
        np.random.default_rng(20240601), 6
    )
    assert draws.tolist() == [4680, 3886, 1220, 698, 2050, 8348]


# --- PoissonCount ---------------------------------------------------------------------------


def test_poisson_rejects_negative_rate() -> None:
    """A negative or non-finite rate is a configuration error."""
    with pytest.raises(ValueError, match="rate"):
        PoissonCount(-0.1)
    with pytest.raises(ValueError, match="rate"):
        PoissonCount(math.nan)


def test_poisson_mean_and_dispersion() -> None:
    """Sample means lie in the CI of the rate, and the dispersion index is chi-square(n-1)."""
    dist = PoissonCount(1.15)
    assert dist.mean == dist.variance == 1.15
    n = 50_000
    z = z_crit(len(SEEDS))
    half_alpha = FAMILY_ALPHA / (2 * len(SEEDS))
    lo, hi = stats.chi2.ppf(half_alpha, n - 1), stats.chi2.isf(half_alpha, n - 1)
    for seed in SEEDS:
        counts = dist.sample(np.random.default_rng(seed), n)
        assert counts.dtype == np.int64
        assert_mean_in_ci(float(counts.mean()), dist.mean, dist.variance, n, z)
        dispersion = float(((counts - counts.mean()) ** 2).sum() / counts.mean())
        assert lo <= dispersion <= hi


def test_poisson_multiplier_array() -> None:
    """A per-count multiplier scales each count's rate."""
    dist = PoissonCount(0.8)
    n = 40_000
    mult = np.where(np.arange(n) < n // 2, 0.5, 2.0)
    z = z_crit(2 * len(SEEDS))
    for seed in SEEDS:
        counts = dist.sample(np.random.default_rng(seed), n, multiplier=mult)
        for m in (0.5, 2.0):
            group = counts[mult == m]
            assert_mean_in_ci(float(group.mean()), 0.8 * m, 0.8 * m, group.size, z)


def test_poisson_sample_total_is_poisson_of_the_sum() -> None:
    """sample_total(n) has mean and variance n * rate * multiplier (Poisson of the sum)."""
    dist = PoissonCount(0.11)
    reps = 4_000
    lam = 0.11 * 1.5 * 1_000
    seeds = range(4)
    z = z_crit(2 * len(seeds))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        totals = np.array([dist.sample_total(rng, 1_000, 1.5) for _ in range(reps)], dtype=float)
        assert_mean_in_ci(float(totals.mean()), lam, lam, reps, z)
        # Variance of the sample variance of a Poisson(lam): (mu4 - var^2) / reps.
        var_se = math.sqrt((lam + 3 * lam**2 - lam**2) / reps)
        assert abs(float(totals.var(ddof=1)) - lam) <= z * var_se
    assert dist.sample_total(np.random.default_rng(0), 0) == 0


# --- HourlyProfile --------------------------------------------------------------------------

NAMED_PROFILES = {
    "card": (CARD_HOURS, range(7, 22)),
    "business": (BUSINESS_HOURS, range(8, 20)),
    "savings": (SAVINGS_HOURS, range(6, 23)),
    "salary": (SALARY_HOURS, range(1, 5)),
}


@pytest.mark.parametrize("name", NAMED_PROFILES)
def test_profile_draws_stay_in_their_hours(name: str) -> None:
    """Each named profile draws int32 seconds only inside its documented hours."""
    profile, hours = NAMED_PROFILES[name]
    assert profile.support_hours == tuple(hours)
    seconds = profile.sample(np.random.default_rng(3), 50_000)
    assert seconds.dtype == np.int32
    assert seconds.min() >= hours.start * 3600
    assert seconds.max() <= hours.stop * 3600 - 1


def test_card_profile_has_lunch_and_evening_peaks() -> None:
    """Card spend peaks at lunchtime and in the evening, above mid-afternoon."""
    p = CARD_HOURS.probabilities
    assert p[12] > p[15] < p[18]
    assert p[12] > p[9]
    assert p[18] > p[21]


@pytest.mark.parametrize("name", NAMED_PROFILES)
def test_profile_hour_frequencies_match(name: str) -> None:
    """Hour counts pass a chi-square goodness-of-fit test against the profile."""
    profile, hours = NAMED_PROFILES[name]
    seeds = range(5)
    for seed in seeds:
        seconds = profile.sample(np.random.default_rng(seed), 50_000)
        observed = np.bincount(seconds // 3600, minlength=24)[list(hours)]
        expected = profile.probabilities[list(hours)] * seconds.size
        if len(hours) > 1:
            result = stats.chisquare(observed, expected)
            assert result.pvalue > FAMILY_ALPHA / len(seeds)
        else:
            assert observed.sum() == seconds.size


def test_profile_uniform_within_the_hour() -> None:
    """The minute within the hour is uniform (chi-square over 60 bins)."""
    seeds = range(5)
    for seed in seeds:
        seconds = CARD_HOURS.sample(np.random.default_rng(seed), 60_000)
        minutes = np.bincount((seconds % 3600) // 60, minlength=60)
        result = stats.chisquare(minutes)
        assert result.pvalue > FAMILY_ALPHA / len(seeds)


@pytest.mark.parametrize("name", NAMED_PROFILES)
def test_profile_mean_in_ci(name: str) -> None:
    """The sample mean second lies in the CI of the analytic mean and variance."""
    profile, _ = NAMED_PROFILES[name]
    n = 40_000
    z = z_crit(len(SEEDS))
    for seed in SEEDS:
        seconds = profile.sample(np.random.default_rng(seed), n)
        assert_mean_in_ci(float(seconds.mean()), profile.mean, profile.variance, n, z)


def test_profile_ordered_sample_is_the_sorted_sample() -> None:
    """ordered=True returns exactly the sorted draws of the same generator state."""
    a = CARD_HOURS.sample(np.random.default_rng(11), 10_000, ordered=True)
    b = CARD_HOURS.sample(np.random.default_rng(11), 10_000)
    assert np.array_equal(a, np.sort(b))
    assert not np.array_equal(b, a)


def test_profile_single_hour_and_analytic_moments() -> None:
    """A one-hour profile is uniform on that hour's 3600 seconds, with the exact moments."""
    profile = HourlyProfile([1.0 if h == 13 else 0.0 for h in range(24)])
    assert profile.mean == pytest.approx(13 * 3600 + 1799.5)
    assert profile.variance == pytest.approx((3600**2 - 1) / 12)
    seconds = profile.sample(np.random.default_rng(0), 200_000)
    assert seconds.min() == 13 * 3600
    assert seconds.max() == 14 * 3600 - 1
    assert np.unique(seconds).size == 3600


@pytest.mark.parametrize(
    "weights",
    [[1.0] * 23, [0.0] * 24, [-1.0] + [1.0] * 23, [math.nan] + [1.0] * 23],
)
def test_profile_rejects_bad_weights(weights: list[float]) -> None:
    """Anything but 24 finite non-negative weights with a positive sum is refused."""
    with pytest.raises(ValueError, match="24"):
        HourlyProfile(weights)
