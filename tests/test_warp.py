"""Tests for sim.warp: parsing --warp, building the environment, measuring real-time lag."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator

import pytest
import simpy
import simpy.rt

from sim.warp import LagMonitor, make_environment, parse_warp


@pytest.mark.parametrize(("text", "expected"), [("3600", 3600.0), ("1e4", 1e4), (" 2.5 ", 2.5)])
def test_parse_warp_accepts_positive_numbers(text: str, expected: float) -> None:
    """Positive finite numbers parse to simulated seconds per wall second."""
    assert parse_warp(text) == expected


@pytest.mark.parametrize("text", ["max", "MAX", "Max", " max "])
def test_parse_warp_max_means_as_fast_as_possible(text: str) -> None:
    """'max' in any case means no pacing (None)."""
    assert parse_warp(text) is None


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "fast", "", "1e400", "0x10"])
def test_parse_warp_refuses_everything_else(text: str) -> None:
    """Zero, negatives, NaN, infinities, words and empty input are refused, saying what is OK."""
    with pytest.raises(ValueError, match="'max'.*positive finite number"):
        parse_warp(text)


def test_max_environment_is_plain() -> None:
    """warp None gives a plain Environment (not real-time) starting at initial_time."""
    env = make_environment(None, initial_time=5.0)
    assert type(env) is simpy.Environment
    assert env.now == 5.0


def test_numeric_environment_is_non_strict_realtime() -> None:
    """A number gives a non-strict RealtimeEnvironment with factor 1/warp."""
    env = make_environment(3600.0, initial_time=10.0)
    assert isinstance(env, simpy.rt.RealtimeEnvironment)
    assert env.factor == pytest.approx(1 / 3600)
    assert env.strict is False
    assert env.now == 10.0


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), float("inf")])
def test_make_environment_refuses_bad_warp(bad: float) -> None:
    """A warp that could not pace a run is refused here too, not only by the parser."""
    with pytest.raises(ValueError, match="positive finite"):
        make_environment(bad)


def test_lag_monitor_on_max_environment_counts_samples_only() -> None:
    """Without real time there is no lag to measure: samples counted, lags None."""
    env = make_environment(None)
    monitor = LagMonitor(env, interval=60.0)
    env.run(until=3600.0 + 1)
    assert monitor.summary() == {
        "samples": 60,
        "mean_lag_s": None,
        "p95_lag_s": None,
        "max_lag_s": None,
    }


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_lag_monitor_refuses_bad_interval(bad: float) -> None:
    """A sampling interval must be a positive finite number of simulated seconds."""
    with pytest.raises(ValueError, match="interval"):
        LagMonitor(simpy.Environment(), bad)


def test_realtime_run_takes_at_least_its_scheduled_wall_time() -> None:
    """One simulated hour at warp 36000 sleeps >= 0.1 wall s; the monitor reports its samples."""
    began = time.monotonic()
    env = make_environment(36000.0)
    monitor = LagMonitor(env, interval=60.0)
    env.run(until=3600.0)
    elapsed = time.monotonic() - began

    assert elapsed >= 3600.0 / 36000.0
    summary = monitor.summary()
    assert summary["samples"] == 59  # t=60..3540; the t=3600 sample is not before `until`
    for key in ("mean_lag_s", "p95_lag_s", "max_lag_s"):
        value = summary[key]
        assert isinstance(value, float)
        assert 0.0 <= value <= elapsed
    assert summary["mean_lag_s"] <= summary["max_lag_s"]
    assert summary["p95_lag_s"] <= summary["max_lag_s"]


def _busy_work() -> None:
    """Burn CPU on purpose (hashing), to make a simulation step slow without sleeping."""
    block = b"x" * 1_000_000
    digest = b""
    for _ in range(20):
        digest = hashlib.sha256(digest + block).digest()


def test_slow_process_produces_measured_lag() -> None:
    """A step doing CPU work longer than its schedule allows shows up as lag at least that big.

    At warp 1e6, ten simulated seconds are scheduled to take 10 microseconds
    of wall time, so the lag seen after the slow steps must be at least the
    wall time they took minus that schedule.
    """
    warp = 1e6
    env = make_environment(warp)
    busy_seconds: list[float] = []

    def slow() -> Generator[simpy.Event, None, None]:
        for _ in range(3):
            began = time.monotonic()
            _busy_work()
            busy_seconds.append(time.monotonic() - began)
            yield env.timeout(1.0)

    env.process(slow())
    monitor = LagMonitor(env, interval=1.0)
    env.sync()
    env.run(until=10.0)

    summary = monitor.summary()
    assert summary["samples"] == 9
    max_lag = summary["max_lag_s"]
    assert isinstance(max_lag, float)
    assert max_lag > 0.0
    assert max_lag >= sum(busy_seconds) - 10.0 / warp
