"""Tests of scenarios.schema: the validated Scenario built directly in Python."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from models.params import Behaviour
from scenarios.schema import DEFAULT_YEARS, Scenario, TenantSpec, add_years, deep_merge


def _tenant(**changes: Any) -> dict[str, Any]:
    """A valid tenant mapping, with some keys changed."""
    tenant: dict[str, Any] = {
        "id": "cu-a",
        "code": "CU_A",
        "display_name": "Alpha Credit Union",
        "archetype": "small",
        "state": "NSW",
        "members": 1000,
    }
    tenant.update(changes)
    return tenant


def _scenario(**changes: Any) -> Scenario:
    """A valid one-tenant scenario, with some keys changed."""
    data: dict[str, Any] = {
        "name": "t",
        "start": datetime.date(2025, 7, 1),
        "tenants": [_tenant()],
    }
    data.update(changes)
    return Scenario.model_validate(data)


def _locs(error: ValidationError) -> list[tuple[str | int, ...]]:
    """The locations of every error in a ValidationError."""
    return [tuple(e["loc"]) for e in error.errors()]


def test_defaults_fill_in_a_one_year_run() -> None:
    """With neither years nor days, the length is one year and `years` is stated."""
    scenario = _scenario()
    assert scenario.years == DEFAULT_YEARS == 1
    assert scenario.days is None
    assert scenario.end == datetime.date(2026, 7, 1)
    assert scenario.duration_days == 365
    assert (scenario.seed, scenario.scale, scenario.currency) == (0, 1.0, "AUD")
    assert scenario.behaviour == Behaviour()
    assert scenario.tenants[0].annual_growth == 0.03
    assert scenario.tenants[0].behaviour == {}


def test_days_set_the_length_exactly() -> None:
    """`days` counts plain days from the start; the end is exclusive."""
    scenario = _scenario(days=10)
    assert scenario.years is None
    assert scenario.duration_days == 10
    assert scenario.end == datetime.date(2025, 7, 11)


@pytest.mark.parametrize(
    ("start", "years", "end", "days"),
    [
        (datetime.date(2024, 2, 29), 1, datetime.date(2025, 2, 28), 365),
        (datetime.date(2024, 2, 29), 4, datetime.date(2028, 2, 29), 1461),
        (datetime.date(2023, 3, 1), 1, datetime.date(2024, 3, 1), 366),
        (datetime.date(2025, 7, 1), 3, datetime.date(2028, 7, 1), 1096),
    ],
)
def test_years_are_counted_on_the_calendar(
    start: datetime.date, years: int, end: datetime.date, days: int
) -> None:
    """Years follow the calendar: leap days count, and 29 Feb falls back to the 28th."""
    scenario = _scenario(start=start, years=years)
    assert scenario.end == end
    assert scenario.duration_days == days


def test_add_years_refuses_to_leave_the_calendar() -> None:
    """Adding years past 9999 is a ValueError, not a crash deeper down."""
    assert add_years(datetime.date(2020, 5, 17), 2) == datetime.date(2022, 5, 17)
    with pytest.raises(ValueError, match="beyond the calendar"):
        add_years(datetime.date(9999, 1, 1), 1)


def test_a_run_past_the_calendar_is_invalid_at_its_length() -> None:
    """An end date beyond date.max is reported at the key that causes it."""
    with pytest.raises(ValidationError) as info:
        _scenario(start=datetime.date(9990, 1, 1), years=20)
    assert _locs(info.value) == [("years",)]
    with pytest.raises(ValidationError) as info:
        _scenario(start=datetime.date(9999, 12, 1), days=100)
    assert _locs(info.value) == [("days",)]


def test_years_and_days_together_are_an_error_at_days() -> None:
    """Both lengths at once is ambiguous, so it is refused, located at `days`."""
    with pytest.raises(ValidationError) as info:
        _scenario(years=1, days=30)
    assert _locs(info.value) == [("days",)]
    assert "either years or days" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"days": 0}, ("days",)),
        ({"days": 36601}, ("days",)),
        ({"years": 101}, ("years",)),
        ({"seed": -1}, ("seed",)),
        ({"scale": 0}, ("scale",)),
        ({"scale": 10.5}, ("scale",)),
        ({"currency": "NZD"}, ("currency",)),
        ({"tenants": []}, ("tenants",)),
        ({"tenants": [_tenant(id="CU-A")]}, ("tenants", 0, "id")),
        ({"tenants": [_tenant(code="cu_a")]}, ("tenants", 0, "code")),
        ({"tenants": [_tenant(state="NZ")]}, ("tenants", 0, "state")),
        ({"tenants": [_tenant(members=0)]}, ("tenants", 0, "members")),
        ({"tenants": [_tenant(annual_growth=1.5)]}, ("tenants", 0, "annual_growth")),
        ({"tenants": [_tenant(colour="red")]}, ("tenants", 0, "colour")),
        ({"colour": "red"}, ("colour",)),
    ],
)
def test_out_of_range_and_unknown_values_are_refused(
    changes: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    """Each field's bounds and the no-unknown-keys rule are enforced where they apply."""
    with pytest.raises(ValidationError) as info:
        _scenario(**changes)
    assert loc in _locs(info.value)


def test_scenarios_are_frozen() -> None:
    """A run cannot change its own inputs: assignment is refused."""
    scenario = _scenario()
    with pytest.raises(ValidationError):
        scenario.seed = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        scenario.tenants[0].members = 3  # type: ignore[misc]


@pytest.mark.parametrize("attribute", ["id", "code"])
def test_duplicate_tenant_ids_and_codes_are_named(attribute: str) -> None:
    """A repeated id or code is reported at the second tenant, naming the value and the first."""
    second = _tenant(id="cu-b", code="CU_B")
    second[attribute] = _tenant()[attribute]
    with pytest.raises(ValidationError) as info:
        _scenario(tenants=[_tenant(), second])
    assert _locs(info.value) == [("tenants", 1, attribute)]
    message = str(info.value)
    assert repr(_tenant()[attribute]) in message
    assert "tenants[0]" in message


def test_scenario_behaviour_is_a_partial_override_of_the_defaults() -> None:
    """Setting one rate keeps the flow's other defaults instead of requiring them."""
    scenario = _scenario(behaviour={"card_spend": {"rate_per_day": 2}})
    assert scenario.behaviour.card_spend.rate_per_day == 2.0
    assert scenario.behaviour.card_spend.mean_amount == Decimal("41.00")
    assert scenario.behaviour.bpay == Behaviour().bpay


def test_tenant_behaviour_layers_defaults_scenario_and_tenant() -> None:
    """A tenant's behaviour is the defaults, then the scenario's, then its own overrides."""
    scenario = _scenario(
        behaviour={"card_spend": {"rate_per_day": 2}},
        tenants=[
            _tenant(behaviour={"card_spend": {"mean_amount": Decimal("50.10")}}),
            _tenant(id="cu-b", code="CU_B"),
        ],
    )
    own = scenario.tenant_behaviour("cu-a").card_spend
    assert (own.rate_per_day, own.mean_amount, own.cv) == (2.0, Decimal("50.10"), 1.4)
    assert scenario.tenant_behaviour("cu-b") == scenario.behaviour
    assert scenario.tenant_behaviour("cu-a").bpay == Behaviour().bpay


def test_tenant_behaviour_is_resolved_once_and_cached() -> None:
    """Looking a tenant's behaviour up twice returns the very same object."""
    scenario = _scenario(tenants=[_tenant(behaviour={"bpay": {"cv": 2}})])
    assert scenario.tenant_behaviour("cu-a") is scenario.tenant_behaviour("cu-a")


def test_unknown_tenant_is_a_key_error_naming_the_known_ones() -> None:
    """Asking for a tenant that is not there says which ones are."""
    scenario = _scenario()
    with pytest.raises(KeyError, match="cu-a"):
        scenario.tenant_behaviour("cu-zz")
    with pytest.raises(KeyError, match="cu-zz"):
        scenario.members_at_scale("cu-zz")


def test_bad_tenant_overrides_fail_at_construction_with_their_path() -> None:
    """Overrides are validated when the scenario is built, each error at its own key path."""
    with pytest.raises(ValidationError) as info:
        _scenario(
            tenants=[
                _tenant(),
                _tenant(
                    id="cu-b",
                    code="CU_B",
                    behaviour={
                        "card_spend": {"rate_per_day": -1, "rate_per_dya": 1},
                        "weekday_multipliers": [1.0],
                    },
                ),
            ]
        )
    assert sorted(_locs(info.value), key=str) == sorted(
        [
            ("tenants", 1, "behaviour", "card_spend", "rate_per_day"),
            ("tenants", 1, "behaviour", "card_spend", "rate_per_dya"),
            ("tenants", 1, "behaviour", "weekday_multipliers"),
        ],
        key=str,
    )


@pytest.mark.parametrize(
    ("members", "scale", "expected"),
    [
        (5000, 0.04, 200),
        (75000, 0.04, 3000),
        (45, 0.7, 32),  # 31.5 exactly; the float product is 31.4999... and rounds down
        (110, 0.55, 60),  # 60.5 exactly: half to even; the float product rounds up
        (5, 0.5, 2),  # 2.5: half to even
        (7, 0.5, 4),  # 3.5: half to even
        (10, 0.01, 1),  # never below one member
        (1000, 2.5, 2500),
    ],
)
def test_members_at_scale_rounds_exactly_half_to_even(
    members: int, scale: float, expected: int
) -> None:
    """Scaling uses the decimal text of `scale`, rounds halves to even and keeps >= 1."""
    scenario = _scenario(scale=scale, tenants=[_tenant(members=members)])
    assert scenario.members_at_scale("cu-a") == expected


def test_with_overrides_returns_a_new_validated_scenario() -> None:
    """Overrides build a new scenario; the original is untouched; None keeps values."""
    scenario = _scenario(years=3, seed=1)
    changed = scenario.with_overrides(seed=9, scale=0.5)
    assert (changed.seed, changed.scale, changed.years) == (9, 0.5, 3)
    assert (scenario.seed, scenario.scale) == (1, 1.0)
    assert scenario.with_overrides() == scenario


def test_with_overrides_length_replaces_both_years_and_days() -> None:
    """`days` replaces a `years` length and vice versa, never conflicting with it."""
    scenario = _scenario(years=3)
    short = scenario.with_overrides(days=7)
    assert (short.days, short.years, short.duration_days) == (7, None, 7)
    long = short.with_overrides(years=2)
    assert (long.days, long.years, long.duration_days) == (None, 2, 730)


def test_with_overrides_validates_its_values() -> None:
    """An out-of-range override is refused just as in a file."""
    with pytest.raises(ValidationError):
        _scenario().with_overrides(days=0)
    with pytest.raises(ValidationError):
        _scenario().with_overrides(years=1, days=1)


def test_with_overrides_keeps_tenant_overrides() -> None:
    """Re-validation after an override keeps each tenant's resolved behaviour."""
    scenario = _scenario(tenants=[_tenant(behaviour={"bpay": {"rate_per_day": 0.5}})])
    assert scenario.with_overrides(seed=3).tenant_behaviour("cu-a").bpay.rate_per_day == 0.5


def test_fingerprint_is_stable_and_sensitive() -> None:
    """Equal scenarios hash alike; changing the seed or one override changes the hash."""
    base = _scenario(tenants=[_tenant(behaviour={"bpay": {"rate_per_day": 0.5}})])
    again = _scenario(tenants=[_tenant(behaviour={"bpay": {"rate_per_day": 0.5}})])
    fingerprint = base.fingerprint()
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert again.fingerprint() == fingerprint
    assert base.with_overrides(seed=1).fingerprint() != fingerprint
    other = _scenario(tenants=[_tenant(behaviour={"bpay": {"rate_per_day": 0.51}})])
    assert other.fingerprint() != fingerprint


def test_fingerprint_hashes_effective_values_not_their_spelling() -> None:
    """41 and 41.00, or an override equal to the default, give the same fingerprint."""
    plain = _scenario()
    spelled = _scenario(
        behaviour={"card_spend": {"mean_amount": Decimal("41")}},
        tenants=[_tenant(behaviour={"bpay": {"rate_per_day": 0.11}})],
    )
    assert spelled.fingerprint() == plain.fingerprint()
    assert '"mean_amount":"41"' in plain.canonical_json()


def test_deep_merge_recurses_into_mappings_and_replaces_the_rest() -> None:
    """Nested mappings merge key by key; lists and scalars replace; inputs stay unchanged."""
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2, 3], "s": 1}
    override = {"a": {"y": 20}, "l": [9], "n": {"z": 1}}
    merged = deep_merge(base, override)
    assert merged == {"a": {"x": 1, "y": 20}, "l": [9], "s": 1, "n": {"z": 1}}
    assert base == {"a": {"x": 1, "y": 2}, "l": [1, 2, 3], "s": 1}
    assert override == {"a": {"y": 20}, "l": [9], "n": {"z": 1}}


def test_tenant_spec_validates_on_its_own() -> None:
    """TenantSpec is usable alone, with its documented defaults."""
    tenant = TenantSpec.model_validate(_tenant())
    assert (tenant.annual_growth, tenant.behaviour) == (0.03, {})


def _expectation(**changes: Any) -> dict[str, Any]:
    """A valid declared expectation on cu-a, as a mapping, with some keys changed."""
    item: dict[str, Any] = {
        "name": "members hold",
        "kpi": "members",
        "tenant": "cu-a",
        "at": datetime.date(2025, 12, 31),
        "min": 900,
    }
    item.update(changes)
    return item


def test_expectations_default_to_none_and_validate_in_python() -> None:
    """Without the block a scenario has no expectations; with it they are frozen models."""
    assert _scenario().expectations == ()
    scenario = _scenario(expectations=[_expectation(max=0.5, min=None, kpi="rejection_rate")])
    (item,) = scenario.expectations
    assert (item.kpi, item.min, item.max) == ("rejection_rate", None, Decimal("0.5"))


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"kpi": "memberz"}, ("expectations", 0, "kpi")),
        ({"tenant": "cu-z"}, ("expectations", 0, "tenant")),
        ({"at": datetime.date(2026, 7, 1)}, ("expectations", 0, "at")),
        ({"at": datetime.date(2025, 6, 30)}, ("expectations", 0, "at")),
        ({"window_days": 200}, ("expectations", 0, "window_days")),
        ({"min": None}, ("expectations", 0, "min")),
        ({"max": 899}, ("expectations", 0, "max")),
        ({"max": float("inf")}, ("expectations", 0, "max")),
    ],
)
def test_bad_expectations_are_refused_at_their_key(
    changes: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    """Each kind of bad expectation fails with its own location, built directly in Python."""
    with pytest.raises(ValidationError) as info:
        _scenario(expectations=[_expectation(), _expectation(**changes)])
    assert _locs(info.value) == [(loc[0], 1, *loc[2:])]


def test_with_overrides_tolerates_expectations_after_a_shortened_end() -> None:
    """A shorter run keeps its expectations; only direct validation insists on the length."""
    scenario = _scenario(expectations=[_expectation(at=datetime.date(2026, 6, 30))])
    short = scenario.with_overrides(days=10)
    assert short.expectations == scenario.expectations
    assert short.with_overrides(scale=0.5).expectations == scenario.expectations
    with pytest.raises(ValidationError):
        Scenario.model_validate(short.model_dump())
