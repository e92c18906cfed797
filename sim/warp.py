"""Time warp: run the simulation as fast as possible or paced to the wall clock.

``--warp max`` gives a plain SimPy ``Environment`` (batch runs, tests, sweeps).
``--warp N`` gives a ``RealtimeEnvironment`` advancing N simulated seconds per
wall second, for live rehearsals and demos against a running platform. It is
non-strict: a slow step makes the run fall behind instead of raising, and
``LagMonitor`` measures how far behind it fell so a demo can report it.

The wall clock is read here only to *measure* lag; it never feeds back into
the simulation, so a real-time run makes the same draws and commands as a
``max`` run with the same seed.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Generator

import numpy as np
import simpy
import simpy.rt

_ALLOWED = (
    "'max' (as fast as possible) or a positive finite number of simulated seconds per wall second"
)


def parse_warp(text: str) -> float | None:
    """Parse a ``--warp`` value.

    Args:
        text: ``"max"`` (any case) or a number such as ``"3600"`` or ``"1e4"``.

    Returns:
        None for ``max``; otherwise simulated seconds per wall second.

    Raises:
        ValueError: for anything else (zero, negative, NaN, infinite, words,
            empty), with a message saying what is allowed.
    """
    cleaned = text.strip()
    if cleaned.lower() == "max":
        return None
    try:
        warp = float(cleaned)
    except ValueError:
        raise ValueError(f"invalid warp {text!r}: expected {_ALLOWED}") from None
    if not math.isfinite(warp) or warp <= 0:
        raise ValueError(f"invalid warp {text!r}: expected {_ALLOWED}")
    return warp


def make_environment(warp: float | None, initial_time: float = 0.0) -> simpy.Environment:
    """Build the SimPy environment for a warp.

    Args:
        warp: None for as-fast-as-possible, else simulated seconds per wall
            second (as returned by :func:`parse_warp`).
        initial_time: Simulated time the environment starts at.

    Returns:
        ``simpy.Environment`` for None; ``simpy.rt.RealtimeEnvironment`` with
        ``factor = 1 / warp`` and ``strict=False`` otherwise. Its schedule is
        anchored when it is created; call ``env.sync()`` just before
        ``env.run()`` if set-up takes a while.

    Raises:
        ValueError: for a zero, negative, NaN or infinite warp.
    """
    if warp is None:
        return simpy.Environment(initial_time)
    if not math.isfinite(warp) or warp <= 0:
        raise ValueError(f"invalid warp {warp!r}: expected None or a positive finite number")
    return simpy.rt.RealtimeEnvironment(initial_time=initial_time, factor=1.0 / warp, strict=False)


class LagMonitor:
    """Measures how far a real-time run falls behind its schedule.

    The wall clock is used only for this measurement, never fed back.

    A sample is taken every ``interval`` simulated seconds by a SimPy process:
    lag = wall seconds since the environment's real-time anchor minus the
    scheduled wall seconds for the simulated time elapsed, clamped at zero.
    The sampler loops forever, so run the environment with ``until``.
    """

    def __init__(self, env: simpy.Environment, interval: float) -> None:
        """Start the sampling process on ``env``.

        Args:
            env: Any SimPy environment; lag is only measured for a
                ``RealtimeEnvironment`` (others just count samples).
            interval: Simulated seconds between samples (positive, finite).

        Raises:
            ValueError: for a non-positive or non-finite interval.
        """
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"interval must be a positive finite number, got {interval!r}")
        self._env = env
        self._interval = interval
        self._samples = 0
        self._lags = array("d")  # compact: 8 bytes per sample over long demos
        env.process(self._sample())

    def _sample(self) -> Generator[simpy.Event, None, None]:
        """Wake every ``interval`` and record the current lag if the env is real-time."""
        env = self._env
        realtime = isinstance(env, simpy.rt.RealtimeEnvironment)
        while True:
            yield env.timeout(self._interval)
            self._samples += 1
            if realtime:
                scheduled = (env.now - env.env_start) * env.factor
                elapsed = time.monotonic() - env.real_start
                self._lags.append(max(0.0, elapsed - scheduled))

    def summary(self) -> dict[str, float | int | None]:
        """Sample count and mean / 95th percentile / max lag in wall seconds.

        Lags are None when nothing was measured (a non-real-time environment,
        or no sample yet).
        """
        if not self._lags:
            return {
                "samples": self._samples,
                "mean_lag_s": None,
                "p95_lag_s": None,
                "max_lag_s": None,
            }
        lags = np.array(self._lags, dtype=np.float64)  # a copy: a view would pin the array
        return {
            "samples": self._samples,
            "mean_lag_s": float(lags.mean()),
            "p95_lag_s": float(np.percentile(lags, 95)),
            "max_lag_s": float(lags.max()),
        }
