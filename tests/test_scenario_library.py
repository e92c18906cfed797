"""The scenario library: every file loads, and the shocks do what they declare.

Full-size runs belong in benchmarks/; here each scenario runs at a tiny scale
for just long enough to reach its declared economy bands, which do not depend
on the number of members.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scenarios.loader import load_scenario
from sim.twin import RunOptions, Twin

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.parametrize("name", ["demo", "baseline", "recession", "rate_shock", "fraud_spike"])
def test_every_library_scenario_loads(name: str) -> None:
    """Each library file validates, with four tenants and its expectations resolved."""
    scenario = load_scenario(LIBRARY / f"{name}.yaml")
    assert [t.id for t in scenario.tenants] == ["cu-small", "cu-mid", "cu-large", "cu-digital"]
    assert scenario.expectations


def run_small(name: str, days: int, out: Path) -> dict:
    scenario = load_scenario(LIBRARY / f"{name}.yaml").with_overrides(scale=0.002, days=days)
    outcome = Twin(scenario, 42, RunOptions(out_dir=out, progress=False)).run()
    return outcome.summary


def declared(summary: dict, kpi_names: set[str]) -> list[dict]:
    return [item for item in summary["expectations"] if item["name"] in kpi_names]


def test_recession_reaches_its_declared_economy(tmp_path: Path) -> None:
    """Unemployment reaches 8% and the cash rate 1% by the dates recession.yaml declares."""
    summary = run_small("recession", 560, tmp_path / "rec")
    assert all(report["passed"] for report in summary["invariants"].values())
    names = {"unemployment reaches 8% at the trough", "the RBA has cut to 1% by the end of 2026"}
    items = declared(summary, names)
    assert len(items) == 2
    assert all(item["passed"] is True for item in items), items


def test_rate_shock_lifts_the_cash_rate_three_points(tmp_path: Path) -> None:
    """The cash rate is ~3 points higher a year after the shock starts, as declared."""
    summary = run_small("rate_shock", 565, tmp_path / "rates")
    items = declared(summary, {"the cash rate is about 3 points higher a year on"})
    assert len(items) == 1
    assert items[0]["passed"] is True, items


def test_fraud_spike_is_ten_fold_for_three_months_and_visible_per_month(tmp_path: Path) -> None:
    """fraud_spike.yaml: its declared rate bands hold, and October-December stand out.

    Run at scale 0.01 (about 1,150 members) to the end of March 2026: the
    bands are rates per 1,000 members a year, so they hold at any scale (they
    are wide enough to fail by chance about once in a few hundred seeds). The
    run's fraud.csv, summed per month, shows the wave's takeovers and scams.
    """
    scenario = load_scenario(LIBRARY / "fraud_spike.yaml").with_overrides(scale=0.01, days=274)
    outcome = Twin(scenario, 42, RunOptions(out_dir=tmp_path / "spike", progress=False)).run()
    summary = outcome.summary
    assert all(report["passed"] for report in summary["invariants"].values())
    names = {
        "takeovers and scams at their usual rate before the wave",
        "takeovers and scams about ten-fold during the wave",
        "the monitor still detects campaigns during the wave",
    }
    items = declared(summary, names)
    assert len(items) == 3
    assert all(item["passed"] is True for item in items), items
    pushed: dict[str, int] = {}
    with (tmp_path / "spike" / "fraud.csv").open() as handle:
        for row in csv.DictReader(handle):
            month = row["date"][:7]
            started = int(row["takeovers_started"]) + int(row["scams_started"])
            pushed[month] = pushed.get(month, 0) + started
    wave = sum(pushed[m] for m in ("2025-10", "2025-11", "2025-12"))
    calm = sum(pushed[m] for m in ("2025-07", "2025-08", "2025-09"))
    assert wave >= 5, pushed
    assert wave > calm, pushed
