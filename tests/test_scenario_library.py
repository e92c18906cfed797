"""The scenario library: every file loads, and the shocks do what they declare.

Full-size runs belong in benchmarks/; here each scenario runs at a tiny scale
for just long enough to reach its declared economy bands, which do not depend
on the number of members.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.loader import load_scenario
from sim.twin import RunOptions, Twin

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.parametrize("name", ["demo", "baseline", "recession", "rate_shock"])
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
