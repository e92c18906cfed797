"""Tests of declared expectations: the `expectations:` block of a scenario and its evaluation."""

from __future__ import annotations

import dataclasses
import datetime
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from analysis import expectations as exp
from analysis.expectations import (
    KNOWN_KPIS,
    KPI_REGISTRY,
    KpiData,
    KpiDefinition,
    KpiUnavailable,
    evaluate,
    format_band,
    register_kpi,
    series_level,
)
from analysis.kpis import KPI_FIELDS, KpiRow
from scenarios.loader import ScenarioError, load_scenario, parse_scenario, resolved_yaml
from scenarios.schema import DeclaredExpectation, Scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
START = datetime.date(2025, 7, 1)

# Line numbers matter below: the first expectation starts on line 18, the second on 24.
TEXT = """\
name: t
start: 2025-07-01
days: 30
tenants:
  - id: cu-a
    code: CU_A
    display_name: Alpha Credit Union
    archetype: small
    state: NSW
    members: 100
  - id: cu-b
    code: CU_B
    display_name: Beta Credit Union
    archetype: mid
    state: VIC
    members: 200
expectations:
  - name: alpha keeps its members
    kpi: members
    tenant: cu-a
    at: 2025-07-30
    min: 90
    max: 120
  - name: few rejections
    kpi: rejection_rate
    tenant: all
    at: 2025-07-30
    window_days: 7
    max: 0.10
"""


def _text(old: str, new: str) -> str:
    """TEXT with one exact, unique fragment replaced (so line numbers stay known)."""
    assert TEXT.count(old) == 1, old
    return TEXT.replace(old, new)


def _error(text: str) -> ScenarioError:
    """The ScenarioError that parsing `text` (named s.yaml) raises."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return info.value


def _declared(**changes: Any) -> DeclaredExpectation:
    """A valid expectation on cu-a's members on day 3, with some keys changed."""
    data: dict[str, Any] = {
        "name": "members",
        "kpi": "members",
        "tenant": "cu-a",
        "at": START + datetime.timedelta(days=2),
        "min": Decimal(90),
        "max": Decimal(120),
    }
    data.update(changes)
    return DeclaredExpectation.model_validate(data)


def _rows(tenant: str, **series: list[int]) -> list[KpiRow]:
    """KpiRows for `tenant` from START, one per value; unnamed fields are 0."""
    days = len(next(iter(series.values())))
    rows = []
    for n in range(days):
        values = {name: series[name][n] if name in series else 0 for name in KPI_FIELDS[2:]}
        rows.append(KpiRow(date=START + datetime.timedelta(days=n), tenant_id=tenant, **values))
    return rows


def _one(declared: DeclaredExpectation, rows: list[KpiRow], **kwargs: Any) -> dict[str, Any]:
    """The single result of evaluating one expectation over `rows`."""
    (item,) = evaluate([declared], rows, **kwargs)
    return item


# --- loading ------------------------------------------------------------------------------


def test_scenario_with_expectations_loads_exactly() -> None:
    """The block loads as a tuple of frozen expectations with exact decimal bounds."""
    scenario = parse_scenario(TEXT, "s.yaml")
    first, second = scenario.expectations
    assert (first.kpi, first.tenant, first.at, first.min, first.max) == (
        "members",
        "cu-a",
        datetime.date(2025, 7, 30),
        Decimal(90),
        Decimal(120),
    )
    assert (second.tenant, second.window_days, second.min) == ("all", 7, None)
    assert str(second.max) == "0.10"
    with pytest.raises(ValidationError):
        first.min = Decimal(1)  # type: ignore[misc]


def test_scenario_without_expectations_has_none_and_keeps_its_fingerprint() -> None:
    """No block means an empty tuple, and the canonical JSON does not mention it."""
    plain = parse_scenario(TEXT.split("expectations:")[0], "s.yaml")
    assert plain.expectations == ()
    assert "expectations" not in json.loads(plain.canonical_json())
    declared = parse_scenario(TEXT, "s.yaml")
    assert declared.fingerprint() != plain.fingerprint()


def test_unknown_kpi_suggests_the_closest_name() -> None:
    """A misspelt KPI names its key path and line and the KPI it probably meant."""
    error = _error(_text("kpi: rejection_rate", "kpi: rejection_rates"))
    assert (error.key_path, error.line) == ("expectations[1].kpi", 25)
    assert "did you mean 'rejection_rate'?" in error.message
    assert "rejection_rates" in error.message
    assert str(error).startswith("s.yaml:25: expectations[1].kpi: unknown KPI")


def test_unknown_kpi_without_a_close_name_lists_the_known_ones() -> None:
    """With nothing close, the message lists the KPIs there are."""
    error = _error(_text("kpi: members", "kpi: xyz"))
    assert (error.key_path, error.line) == ("expectations[0].kpi", 19)
    assert "known: " in error.message
    assert "deposits_growth" in error.message


def test_unknown_tenant_is_located_and_suggested() -> None:
    """An expectation's tenant must be a tenant of the scenario (or "all")."""
    error = _error(_text("tenant: cu-a\n", "tenant: cu-aa\n"))
    assert (error.key_path, error.line) == ("expectations[0].tenant", 20)
    assert "unknown tenant 'cu-aa'; did you mean 'cu-a'?" in error.message
    assert "cu-a, cu-b, or 'all'" in error.message


def test_unknown_tenant_without_a_close_match_lists_the_tenants() -> None:
    """Far from any id, the message still says which tenants there are."""
    error = _error(_text("tenant: all", "tenant: everyone"))
    assert (error.key_path, error.line) == ("expectations[1].tenant", 26)
    assert "did you mean" not in error.message
    assert "tenants: cu-a, cu-b" in error.message


@pytest.mark.parametrize("day", ["2025-07-31", "2025-06-30"])
def test_at_outside_the_run_is_located(day: str) -> None:
    """`at` must be a day of the run: from the start to the last day, inclusive."""
    error = _error(_text("at: 2025-07-30\n    min", f"at: {day}\n    min"))
    assert (error.key_path, error.line) == ("expectations[0].at", 21)
    assert "outside the run (2025-07-01 to 2025-07-30, inclusive)" in error.message


def test_window_reaching_before_the_start_is_located() -> None:
    """A window of 31 days up to day 30 starts before the run; 30 days fit."""
    error = _error(_text("window_days: 7", "window_days: 31"))
    assert (error.key_path, error.line) == ("expectations[1].window_days", 28)
    assert "at most 30 days fit" in error.message
    assert parse_scenario(_text("window_days: 7", "window_days: 30")).expectations[1]


def test_min_above_max_is_located_at_max() -> None:
    """An empty band is refused at its `max`, naming both bounds."""
    error = _error(_text("min: 90", "min: 130"))
    assert (error.key_path, error.line) == ("expectations[0].max", 23)
    assert error.message == "max 120 is below min 130: the band is empty"


def test_a_band_needs_a_bound() -> None:
    """Neither min nor max is refused, located at the expectation's first line."""
    error = _error(_text("    min: 90\n    max: 120\n", ""))
    assert (error.key_path, error.line) == ("expectations[0].min", 18)
    assert "at least one bound" in error.message


def test_unknown_key_in_an_expectation_suggests_the_real_one() -> None:
    """The loader's "did you mean" reaches inside the expectations list."""
    error = _error(_text("max: 0.10", "maximum: 0.10"))
    assert (error.key_path, error.line) == ("expectations[1].maximum", 29)
    assert error.message.startswith("unknown key 'maximum'; did you mean 'max'?")


def test_non_finite_bound_is_refused() -> None:
    """A NaN band would pass or fail nothing; it is an error where it is written."""
    error = _error(_text("max: 0.10", "max: .nan"))
    assert error.line == 29


def test_shortened_run_keeps_expectations_it_no_longer_reaches() -> None:
    """`with_overrides(days=7)` keeps a day-30 expectation (reported later as not reached)."""
    scenario = parse_scenario(TEXT, "s.yaml")
    short = scenario.with_overrides(days=7)
    assert short.duration_days == 7
    assert short.expectations == scenario.expectations
    assert short.with_overrides(seed=3).expectations == scenario.expectations
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(short.model_dump())
    assert [tuple(e["loc"]) for e in info.value.errors()] == [("expectations", 0, "at")]


def test_resolved_yaml_round_trips_expectations() -> None:
    """The resolved form re-reads as an equal scenario with the same fingerprint."""
    scenario = parse_scenario(TEXT, "s.yaml")
    again = parse_scenario(resolved_yaml(scenario), "resolved.yaml")
    assert again == scenario
    assert again.fingerprint() == scenario.fingerprint()


def test_demo_declares_bands_on_known_kpis() -> None:
    """demo.yaml carries a few expectations, each with at least one bound."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    assert 2 <= len(demo.expectations) <= 4
    assert {e.kpi for e in demo.expectations} <= set(KNOWN_KPIS)
    assert all(e.min is not None or e.max is not None for e in demo.expectations)


# --- the registry -------------------------------------------------------------------------


def test_registry_knows_every_kpi_row_count_and_the_derived_kpis() -> None:
    """Each numeric KpiRow field is a KPI, plus growth, the rejection rate and the economy."""
    economy = {"cash_rate", "unemployment", "inflation", "house_price_index"}
    derived = {"deposits_growth", "members_growth", "rejection_rate", "member_unemployment"}
    assert set(KPI_FIELDS[2:]) | derived | economy <= set(KNOWN_KPIS)
    assert all(isinstance(d, KpiDefinition) for d in KPI_REGISTRY.values())
    assert KPI_REGISTRY["members"].cumulative is False
    assert KPI_REGISTRY["entries"].cumulative is True


def test_register_kpi_refuses_duplicates_and_bad_names() -> None:
    """A name is registered once and must be snake_case."""
    with pytest.raises(ValueError, match="already registered"):
        register_kpi("members", "again")(lambda data, tenant, at, window_days: 0)
    with pytest.raises(ValueError, match="snake_case"):
        register_kpi("Cash-Rate", "bad name")


def test_a_kpi_registered_later_is_known_to_the_schema() -> None:
    """KNOWN_KPIS is a live view: a new KPI is valid in a scenario without further wiring."""
    name = "test_only_cash_rate"
    with pytest.raises(ValidationError):
        _declared(kpi=name)
    try:
        register_kpi(name, "a test series", cumulative=False)(series_level("cash"))
        assert _declared(kpi=name).kpi == name
    finally:
        exp._REGISTRY.pop(name, None)
    assert name not in KNOWN_KPIS


# --- evaluation ---------------------------------------------------------------------------


def test_within_the_band_passes() -> None:
    """A level inside the band passes; the result has the twin's shape."""
    item = _one(_declared(), _rows("cu-a", members=[100, 101, 102]))
    assert item == {
        "name": "members",
        "tenant": "cu-a",
        "expected": "[90, 120]",
        "actual": 102,
        "passed": True,
        "detail": "members on 2025-07-03 = 102, within the band",
    }


def test_bounds_are_inclusive() -> None:
    """A value equal to min or to max passes."""
    rows = _rows("cu-a", members=[90, 120, 120])
    assert _one(_declared(at=START), rows)["passed"] is True
    assert _one(_declared(at=START + datetime.timedelta(days=1)), rows)["passed"] is True


def test_below_the_minimum_fails() -> None:
    """A level under min fails and says so."""
    item = _one(_declared(), _rows("cu-a", members=[100, 95, 89]))
    assert (item["actual"], item["passed"]) == (89, False)
    assert "below the minimum 90" in item["detail"]


def test_above_the_maximum_fails() -> None:
    """A level over max fails and says so."""
    item = _one(_declared(min=None), _rows("cu-a", members=[100, 110, 121]))
    assert (item["expected"], item["actual"], item["passed"]) == ("<= 120", 121, False)
    assert "above the maximum 120" in item["detail"]


def test_flows_total_since_the_start_or_over_the_window() -> None:
    """A flow sums every day up to `at`, or only the window's days."""
    rows = _rows("cu-a", entries=[1, 10, 100, 1000])
    at = START + datetime.timedelta(days=3)
    since_start = _one(_declared(kpi="entries", at=at, min=Decimal(0), max=None), rows)
    assert since_start["actual"] == 1111
    assert since_start["detail"].startswith("entries 2025-07-01..2025-07-04 = 1,111")
    window = _one(_declared(kpi="entries", at=at, window_days=2, min=None, max=Decimal(1100)), rows)
    assert (window["actual"], window["passed"]) == (1100, True)
    assert window["detail"].startswith("entries over the 2 days to 2025-07-04 = 1,100")


def test_a_level_over_a_window_is_its_mean() -> None:
    """With a window, a stock is averaged over the window's days."""
    rows = _rows("cu-a", members=[100, 101, 103])
    item = _one(_declared(window_days=2), rows)
    assert item["actual"] == 102
    third = _one(_declared(window_days=3), rows)
    assert third["actual"] == pytest.approx(101.333333, abs=1e-6)


def test_growth_is_relative_to_the_first_day_exactly() -> None:
    """deposits_growth compares `at` with the first day, in exact decimals."""
    rows = _rows("cu-a", deposits_cents=[300, 350, 400])
    band = {"min": Decimal("0.3333"), "max": Decimal("0.3334")}
    item = _one(_declared(kpi="deposits_growth", **band), rows)
    assert item["passed"] is True
    assert item["actual"] == pytest.approx(1 / 3, abs=1e-6)
    exact = _one(_declared(kpi="deposits_growth", min=Decimal("0.3333333333")), rows)
    assert exact["passed"] is True
    over_one_day = _one(
        _declared(kpi="deposits_growth", window_days=1, min=None, max=Decimal("0.2")), rows
    )
    assert over_one_day["actual"] == pytest.approx(50 / 350, abs=1e-6)


def test_members_growth_and_a_zero_base() -> None:
    """members_growth is like deposits_growth; growth from zero fails as undefined."""
    rows = _rows("cu-a", members=[200, 210, 220], deposits_cents=[0, 5, 9])
    assert _one(_declared(kpi="members_growth", min=Decimal("0.1"), max=None), rows)["passed"]
    item = _one(_declared(kpi="deposits_growth", min=Decimal(0), max=None), rows)
    assert (item["actual"], item["passed"]) == (None, False)
    assert "growth is undefined" in item["detail"]


def test_all_tenants_aggregate_sums_and_rates_of_sums() -> None:
    """For "all", stocks and flows are summed, and a rate is the rate of the sums."""
    rows = _rows("cu-a", members=[10, 10, 10], commands=[10, 0, 0], rejections=[0, 0, 0])
    rows += _rows("cu-b", members=[20, 20, 25], commands=[100, 0, 0], rejections=[50, 0, 0])
    members = _one(_declared(tenant="all", min=Decimal(35), max=Decimal(35)), rows)
    assert (members["actual"], members["passed"]) == (35, True)
    rate = _one(
        _declared(kpi="rejection_rate", tenant="all", min=Decimal("0.45"), max=Decimal("0.46")),
        rows,
    )
    assert rate["passed"] is True  # 50 / 110, not the mean of 0 and 0.5
    assert rate["actual"] == pytest.approx(50 / 110, abs=1e-6)


def test_rate_over_a_window_without_commands_fails() -> None:
    """A rejection rate over days with no commands is undefined: a failure, not a pass."""
    rows = _rows("cu-a", commands=[10, 0, 0], rejections=[1, 0, 0])
    item = _one(_declared(kpi="rejection_rate", window_days=2, min=None, max=Decimal(1)), rows)
    assert (item["actual"], item["passed"]) == (None, False)
    assert "no commands" in item["detail"]
    whole = _one(_declared(kpi="rejection_rate", min=None, max=Decimal("0.1")), rows)
    assert (whole["actual"], whole["passed"]) == (0.1, True)


def test_at_after_the_last_day_is_not_reached() -> None:
    """A shortened run reports `passed: None`, which is not a failure."""
    rows = _rows("cu-a", members=[100, 100])
    item = _one(_declared(at=START + datetime.timedelta(days=29)), rows)
    assert (item["actual"], item["passed"]) == (None, None)
    assert item["expected"] == "[90, 120]"
    assert item["detail"].startswith("not reached: the run ended on 2025-07-02, before 2025-07-30")
    assert _one(_declared(), [])["detail"].startswith("not reached: the run has no KPI rows")


def test_a_missing_day_inside_the_run_fails() -> None:
    """A tenant without a row on a day the run covered is a failure, with the reason."""
    rows = [r for r in _rows("cu-a", members=[100, 100, 100]) if r.date != START]
    rows += _rows("cu-b", members=[1, 1, 1])
    item = _one(_declared(tenant="all", window_days=3, min=Decimal(0)), rows)
    assert item["passed"] is False
    assert "no KPI row for cu-a on 2025-07-01" in item["detail"]


def test_results_follow_the_declared_order_and_are_json() -> None:
    """One result per declaration, in order, and each serialises as plain JSON."""
    rows = _rows("cu-a", members=[100, 100, 100], commands=[3, 3, 3], rejections=[1, 0, 0])
    declared = [
        _declared(name="second", kpi="rejection_rate", min=None, max=Decimal("0.2")),
        _declared(name="first"),
    ]
    items = evaluate(declared, rows, [])
    assert [i["name"] for i in items] == ["second", "first"]
    assert items[0]["actual"] == pytest.approx(1 / 9, abs=1e-6)
    assert json.loads(json.dumps(items)) == items


def test_series_kpis_read_extra_series() -> None:
    """A series KPI takes the latest value on or before `at`; "all" stands for the economy."""
    level = series_level("cash_rate")
    third = START + datetime.timedelta(days=2)
    points = {
        ("all", START): Decimal("4.35"),
        ("all", third): Decimal("4.10"),
        ("cu-b", START): Decimal("9.99"),
    }
    data = KpiData.of(_rows("cu-a", members=[1, 1, 1]), extra_series={"cash_rate": points})
    assert level(data, "cu-a", START + datetime.timedelta(days=1), None) == Decimal("4.35")
    assert level(data, "cu-a", third, None) == Decimal("4.10")
    assert level(data, "cu-b", third, None) == Decimal("9.99")
    with pytest.raises(KpiUnavailable, match="on or before"):
        level(data, "cu-a", START - datetime.timedelta(days=1), None)
    with pytest.raises(KpiUnavailable, match="no 'unemployment' series"):
        series_level("unemployment")(data, "cu-a", START, None)


def test_a_registered_series_kpi_evaluates_through_evaluate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later KPI (here cash_rate) is one registry entry; evaluate passes extra_series on."""
    definition = KpiDefinition("cash_rate", "RBA cash rate (%)", series_level("cash_rate"), False)
    monkeypatch.setitem(exp._REGISTRY, "cash_rate", definition)
    series = {"cash_rate": {("all", START): Decimal("4.35")}}
    rows = _rows("cu-a", members=[1, 1, 1])
    item = _one(
        _declared(kpi="cash_rate", min=Decimal(4), max=Decimal("4.5")), rows, extra_series=series
    )
    assert (item["actual"], item["passed"]) == (4.35, True)
    assert item["detail"] == "cash_rate on 2025-07-03 = 4.35, within the band"


def test_format_band() -> None:
    """Bands read as written: both bounds, a floor or a ceiling."""
    assert format_band(Decimal("1.00"), Decimal("1.20")) == "[1.00, 1.20]"
    assert format_band(Decimal("0.02"), None) == ">= 0.02"
    assert format_band(None, Decimal("0.1")) == "<= 0.1"


def test_kpi_data_is_frozen() -> None:
    """KpiData cannot be changed after it is built (it indexes its rows once)."""
    data = KpiData.of(_rows("cu-a", members=[1]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.kpi_rows = ()  # type: ignore[misc]


def test_economy_series_are_read_as_levels_for_any_tenant() -> None:
    """An economy KPI reads the latest monthly value on or before `at`, for any tenant."""
    day = datetime.date(2025, 7, 1)
    rows = [
        KpiRow(day + datetime.timedelta(days=i), "cu-a", 10, 10, 100, 1, 2, 3, 4, 0)
        for i in range(60)
    ]
    series = {
        "cash_rate": {
            ("all", datetime.date(2025, 7, 1)): 3.85,
            ("all", datetime.date(2025, 8, 1)): 4.10,
        }
    }
    declared = [
        DeclaredExpectation(
            name="rate", kpi="cash_rate", tenant="cu-a", at=datetime.date(2025, 8, 15), min=4.0
        ),
        DeclaredExpectation(
            name="early", kpi="cash_rate", tenant="cu-a", at=datetime.date(2025, 7, 20), min=4.0
        ),
    ]
    late, early = evaluate(declared, rows, (), series)
    assert (late["actual"], late["passed"]) == (4.1, True)
    assert (early["actual"], early["passed"]) == (3.85, False)
