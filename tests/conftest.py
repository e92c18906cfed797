"""Shared fixtures: one small scenario and one real run of it, made once per session.

The scenario is two credit unions of 40 and 60 members over five days (a
Saturday included), which runs in about a second and still has salaries,
card spend, bills, fast payments, savings sweeps and insufficient-funds
refusals in it. Tests must treat the run folder as read-only: the ones that
tamper with it copy it first (`copy_run`).

The Kafka fixtures (a Tansu broker for the session, brokers of a test's own,
a local S3) are in kafka_fixtures.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scenarios.loader import parse_scenario
from scenarios.schema import Scenario
from sim.twin import RunOptions, RunOutcome, Twin
from turingcore.eventlog import EventLogReader

#: Fixture modules of services (PostgreSQL: `pg_database`, `pg_ledger`, `new_tenant`;
#: the Kafka broker: see kafka_fixtures).
pytest_plugins = ["pg_fixtures", "kafka_fixtures"]

SMALL_SEED = 7

SMALL_YAML = """\
name: small
description: two tiny credit unions for the test suite
start: 2025-07-01
days: 5
seed: 7
tenants:
  - id: cu-a
    code: CU_A
    display_name: Alpha Test Credit Union
    archetype: small
    state: NSW
    members: 40
    annual_growth: 0.0
  - id: cu-b
    code: CU_B
    display_name: Bravo Test Credit Union
    archetype: mid
    state: VIC
    members: 60
    annual_growth: 0.0
"""


@dataclass(frozen=True)
class SmallRun:
    """A finished run: the twin (its worlds), its outcome and its folder."""

    twin: Twin
    outcome: RunOutcome
    dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        return self.outcome.summary


def run_twin(
    scenario: Scenario,
    out: Path,
    seed: int | None = None,
    target_factory: Callable[[Path | None], Any] | None = None,
    **options: Any,
) -> SmallRun:
    """Run `scenario` into `out` quietly (no progress bar) and return what it made."""
    twin = Twin(
        scenario,
        scenario.seed if seed is None else seed,
        RunOptions(out_dir=out, progress=False, **options),
        target_factory=target_factory,
    )
    return SmallRun(twin, twin.run(), out)


def read_events(run_dir: Path, tenant: str) -> list[dict[str, Any]]:
    """Every stored event of `tenant` in a run folder, decoded from its canonical bytes."""
    with EventLogReader(run_dir / "events.sqlite") as reader:
        return [json.loads(stored.canonical) for stored in reader.events(tenant)]


@pytest.fixture(scope="session")
def small_yaml() -> str:
    """The small scenario's YAML text."""
    return SMALL_YAML


@pytest.fixture(scope="session")
def small_scenario() -> Scenario:
    """The small scenario, parsed."""
    return parse_scenario(SMALL_YAML, "small.yaml")


@pytest.fixture(scope="session")
def small_run(small_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    """The small scenario run once with seed 7 (read-only for every test)."""
    out = tmp_path_factory.mktemp("small") / "run"
    return run_twin(small_scenario, out, SMALL_SEED)


@pytest.fixture(scope="session")
def small_events(small_run: SmallRun) -> dict[str, list[dict[str, Any]]]:
    """tenant -> the small run's stored events, decoded."""
    return {tenant: read_events(small_run.dir, tenant) for tenant in ("cu-a", "cu-b")}


@pytest.fixture
def copy_run(small_run: SmallRun, tmp_path: Path) -> Callable[[], Path]:
    """Make a private copy of the small run's folder (to tamper with)."""

    def make() -> Path:
        target = tmp_path / "copy"
        shutil.copytree(small_run.dir, target)
        return target

    return make


@pytest.fixture(scope="session")
def run_scenario() -> Callable[..., SmallRun]:
    """`run_twin`, for tests that need a run of their own."""
    return run_twin


@pytest.fixture(scope="session")
def events_in() -> Callable[[Path, str], list[dict[str, Any]]]:
    """`read_events`, for tests that read a run folder of their own."""
    return read_events
