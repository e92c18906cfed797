"""Distribution objects with `sample(rng, ...)` and analytic moments, in the style of Ciw.

Every random quantity a model draws comes from one of these objects so that the
analysis can put the *expected* value (computed here, analytically) beside the
*observed* one from a run, and tests can check draws against the same numbers.

Money stays integer cents: amount distributions compute a float draw internally
and turn it into `int64` cents straight away (round half to even, then at least
one cent), so no float ever leaves this module as money. The analytic `mean` and
`variance` are those of the underlying continuous distribution; rounding to the
cent moves the mean by well under one cent.

Randomness comes only from an injected `numpy.random.Generator`; nothing here
owns or seeds a generator, so the caller's named streams decide reproducibility.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

__all__ = [
    "BUSINESS_HOURS",
    "CARD_HOURS",
    "MAX_DRAW_CENTS",
    "SALARY_HOURS",
    "SAVINGS_HOURS",
    "SECONDS_PER_DAY",
    "SECONDS_PER_HOUR",
    "HourlyProfile",
    "LogNormalAmount",
    "PoissonCount",
    "dollars_to_cents",
]

#: Largest amount one draw may produce, AUD 10 trillion (the platform's own
#: per-field limit). A lognormal tail never gets near it with sane parameters;
#: the clip only guarantees the cast to int64 can never overflow.
MAX_DRAW_CENTS = 10**15

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400

#: A float multiplier (same for every draw) or one multiplier per draw.
Scale = float | npt.NDArray[np.floating]


def dollars_to_cents(amount: Decimal) -> int:
    """Convert exact Decimal dollars to integer cents without passing through a float.

    Parameters are configured in dollars (the unit people read), but money
    inside the twin is cents; a silent rounding here would bias every draw, so
    an amount with a fraction of a cent is refused rather than rounded.

    Args:
        amount: a finite Decimal with at most two decimal places.

    Returns:
        The amount in cents, exactly.

    Raises:
        ValueError: if the amount is not finite or has a fraction of a cent.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount must be a finite Decimal, got {amount!r}")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"amount {amount} has a fraction of a cent")
    return int(cents)


@dataclass(frozen=True, slots=True)
class LogNormalAmount:
    """A positive amount of money, lognormal, parameterised by its mean and CV.

    Mean and coefficient of variation are the numbers people can source or
    reason about ("the average card payment is about $41 and varies a lot"),
    so they, not the log-scale `mu`/`sigma`, are the constructor's arguments.

    Attributes:
        mean_cents: mean of the continuous distribution, in cents (> 0).
        cv: coefficient of variation, standard deviation / mean (> 0).
        mu: log-scale location, derived.
        sigma: log-scale standard deviation, derived.
    """

    mean_cents: float
    cv: float
    mu: float = field(init=False, repr=False)
    sigma: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_cents) and self.mean_cents > 0):
            raise ValueError(f"mean_cents must be positive and finite, got {self.mean_cents}")
        if not (math.isfinite(self.cv) and self.cv > 0):
            raise ValueError(f"cv must be positive and finite, got {self.cv}")
        sigma2 = math.log1p(self.cv * self.cv)
        object.__setattr__(self, "sigma", math.sqrt(sigma2))
        object.__setattr__(self, "mu", math.log(self.mean_cents) - sigma2 / 2.0)

    @classmethod
    def from_dollars(cls, mean: Decimal, cv: float) -> LogNormalAmount:
        """Build from a mean in exact Decimal dollars, as parameters are configured.

        Args:
            mean: the mean amount in dollars (at most two decimal places).
            cv: the coefficient of variation.
        """
        return cls(float(dollars_to_cents(mean)), cv)

    @classmethod
    def from_median(cls, median_cents: float, sigma: float) -> LogNormalAmount:
        """Build from a median and log-scale sigma, as income statistics are published.

        Income sources (ABS) quote medians and a spread, not a mean; the lognormal
        mean is `median * exp(sigma**2 / 2)` and its CV is `sqrt(exp(sigma**2) - 1)`.

        Args:
            median_cents: the median in cents.
            sigma: standard deviation of the log of the amount.
        """
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be positive and finite, got {sigma}")
        s2 = sigma * sigma
        return cls(median_cents * math.exp(s2 / 2.0), math.sqrt(math.expm1(s2)))

    @property
    def mean(self) -> float:
        """Analytic mean in cents (of the continuous distribution, scale 1)."""
        return self.mean_cents

    @property
    def variance(self) -> float:
        """Analytic variance in cents squared: `(cv * mean) ** 2`."""
        return (self.cv * self.mean_cents) ** 2

    @property
    def median(self) -> float:
        """Analytic median in cents, `exp(mu)`."""
        return math.exp(self.mu)

    def raw_moment(self, k: int) -> float:
        """Analytic k-th raw moment `E[X**k] = exp(k*mu + k**2 * sigma**2 / 2)`.

        Tests use the third and fourth moments to put a confidence interval on
        the sample variance, which for a heavy tail is much wider than normal.
        """
        return math.exp(k * self.mu + k * k * self.sigma * self.sigma / 2.0)

    def sample(
        self, rng: np.random.Generator, size: int, scale: Scale = 1.0
    ) -> npt.NDArray[np.int64]:
        """Draw `size` amounts in integer cents, each at least one cent.

        Args:
            rng: the caller's generator (its named stream).
            size: number of draws.
            scale: multiplier of the mean, a float or one per draw (e.g. a
                member's income relative to the median); the CV is unchanged.

        Returns:
            `int64` cents: `rint(draw * scale)` clipped to [1, MAX_DRAW_CENTS].
        """
        # exp(mu + sigma * Z) in place: the same lognormal as `rng.lognormal`,
        # but about a third faster on this throughput path.
        draws = rng.standard_normal(size)
        draws *= self.sigma
        draws += self.mu
        np.exp(draws, out=draws)
        if not (isinstance(scale, float | int) and scale == 1.0):
            draws *= scale
        np.rint(draws, out=draws)
        np.clip(draws, 1.0, float(MAX_DRAW_CENTS), out=draws)
        return draws.astype(np.int64)


@dataclass(frozen=True, slots=True)
class PoissonCount:
    """How many times something happens in a period: Poisson with a given rate.

    A Poisson count is the memoryless choice: members act independently and
    at a steady rate within a day, which is what lets a whole day be drawn at
    once with numpy instead of one SimPy event per payment.

    Attributes:
        rate: expected count per period at multiplier 1.0 (>= 0).
    """

    rate: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate must be non-negative and finite, got {self.rate}")

    @property
    def mean(self) -> float:
        """Analytic mean count (at multiplier 1.0)."""
        return self.rate

    @property
    def variance(self) -> float:
        """Analytic variance, equal to the mean for a Poisson count."""
        return self.rate

    def sample(
        self, rng: np.random.Generator, size: int, multiplier: Scale = 1.0
    ) -> npt.NDArray[np.int64]:
        """Draw `size` independent counts with rate `rate * multiplier`.

        Args:
            rng: the caller's generator.
            size: number of counts.
            multiplier: a float, or one multiplier per count (e.g. weekday effect).

        Returns:
            `int64` counts.
        """
        return rng.poisson(self.rate * np.asarray(multiplier, dtype=np.float64), size).astype(
            np.int64, copy=False
        )

    def sample_total(self, rng: np.random.Generator, n: int, multiplier: float = 1.0) -> int:
        """Draw the sum of `n` independent counts in one go.

        The sum of `n` independent Poisson(rate) counts is Poisson(n * rate), so a
        day's total for a whole population costs one draw; the events can then be
        assigned to members uniformly (Poisson splitting), which gives each member
        exactly an independent Poisson(rate) count at a fraction of the cost.

        Args:
            rng: the caller's generator.
            n: number of independent counts summed (e.g. eligible members).
            multiplier: multiplier of the rate common to all of them.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return int(rng.poisson(self.rate * multiplier * n))


class HourlyProfile:
    """Time of day as a distribution over the 24 hours, uniform within each hour.

    Payments cluster (lunch and evening for cards, office hours for bills), and
    the order of a day's postings matters to balances, so each flow draws its
    seconds from its own profile. Sampling is one inverse-CDF lookup per draw:
    a single uniform picks the hour and, rescaled, the second within it.

    Attributes:
        weights: the 24 non-negative hourly weights as given (hour 0 first).
        probabilities: the weights normalised to sum to one.
    """

    __slots__ = ("_cdf", "_lower", "_width", "probabilities", "weights")

    def __init__(self, weights: Sequence[float]) -> None:
        """Build from 24 non-negative weights, hour 00 first; zero means never.

        Raises:
            ValueError: if there are not 24 finite non-negative weights with a
                positive sum.
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (24,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("needs 24 finite non-negative weights with a positive sum")
        self.weights: tuple[float, ...] = tuple(float(x) for x in w)
        self.probabilities: npt.NDArray[np.float64] = w / w.sum()
        cdf = np.cumsum(self.probabilities)
        # Make the last reachable edge exactly 1.0 so a uniform in [0, 1) always
        # lands in an hour with positive weight despite float rounding in cumsum.
        last = int(np.flatnonzero(w > 0)[-1])
        cdf[last:] = 1.0
        lower = np.concatenate(([0.0], cdf[:-1]))
        self._cdf = cdf
        self._lower = lower
        width = cdf - lower
        # Hours of zero width are never selected; a dummy width avoids 0/0.
        self._width = np.where(width > 0, width, 1.0)

    def __repr__(self) -> str:
        hours = [h for h, x in enumerate(self.weights) if x > 0]
        return f"HourlyProfile(hours {hours[0]:02d}:00-{hours[-1] + 1:02d}:00)"

    @property
    def support_hours(self) -> tuple[int, ...]:
        """Hours (0..23) with positive weight: draws fall only in these."""
        return tuple(h for h, x in enumerate(self.weights) if x > 0)

    @property
    def mean(self) -> float:
        """Analytic mean of the drawn integer second: `sum p_h * (3600 h + 1799.5)`."""
        hours = np.arange(24, dtype=np.float64)
        return float(np.dot(self.probabilities, SECONDS_PER_HOUR * hours + 1799.5))

    @property
    def variance(self) -> float:
        """Analytic variance of the drawn integer second (mixture of discrete uniforms)."""
        hours = np.arange(24, dtype=np.float64)
        centres = SECONDS_PER_HOUR * hours + 1799.5
        within = (SECONDS_PER_HOUR**2 - 1) / 12.0
        second_moment = float(np.dot(self.probabilities, centres**2 + within))
        return second_moment - self.mean**2

    def sample(
        self, rng: np.random.Generator, size: int, *, ordered: bool = False
    ) -> npt.NDArray[np.int32]:
        """Draw `size` seconds after local midnight (0..86399) as `int32`.

        Args:
            rng: the caller's generator (one uniform is consumed per draw).
            size: number of draws.
            ordered: return the draws sorted ascending (the order statistics of
                the same iid draws). The inverse CDF is monotone, so sorting the
                uniforms first gives this for free, and the hour lookup is
                several times faster on sorted input.
        """
        u = rng.random(size)
        if ordered:
            u.sort()
        hour = np.searchsorted(self._cdf, u, side="right")
        frac = (u - self._lower[hour]) / self._width[hour]
        offset = (frac * SECONDS_PER_HOUR).astype(np.int32)
        np.clip(offset, 0, SECONDS_PER_HOUR - 1, out=offset)
        return (hour.astype(np.int32) * SECONDS_PER_HOUR + offset).astype(np.int32, copy=False)


#: Card spend, 07:00-22:00, with a lunchtime peak (12-13) and an evening one (17-19).
#: Shape assumed from published card-terminal traffic patterns.
CARD_HOURS = HourlyProfile(  # weights for hours 00..23
    (0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 6, 7, 10, 9, 6, 6, 7, 9, 10, 8, 5, 3, 0, 0)
)

#: BPAY bills and NPP transfers, business-ish hours 08:00-20:00, flat with a
#: morning rise (assumed: internet banking sessions through the working day).
BUSINESS_HOURS = HourlyProfile(  # weights for hours 00..23
    (0, 0, 0, 0, 0, 0, 0, 0, 6, 9, 10, 10, 10, 9, 9, 8, 8, 8, 7, 6, 0, 0, 0, 0)
)

#: Sweeps to savings, 06:00-23:00, flat (assumed: scheduled and app-made).
SAVINGS_HOURS = HourlyProfile([1.0 if 6 <= h < 23 else 0.0 for h in range(24)])

#: Salary credits arrive in the early-morning batch, 01:00-05:00, uniform.
SALARY_HOURS = HourlyProfile([1.0 if 1 <= h < 5 else 0.0 for h in range(24)])
