"""Tests of scenarios.loader: YAML in, exact decimals, and errors located by key path and line."""

from __future__ import annotations

import pickle
from decimal import Decimal
from pathlib import Path

import pytest

from models.params import Behaviour
from scenarios.loader import (
    Problem,
    ScenarioError,
    load_scenario,
    parse_scenario,
    resolved_yaml,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# Line numbers matter below: line 5 is the tenant's "- id", line 10 its "members".
VALID = """\
name: t
start: 2025-07-01
seed: 1
tenants:
  - id: cu-a
    code: CU_A
    display_name: Alpha Credit Union
    archetype: small
    state: NSW
    members: 100
"""

SECOND_TENANT = """\
  - id: cu-b
    code: CU_B
    display_name: Beta Credit Union
    archetype: mid
    state: VIC
    members: 200
"""


def _error(text: str) -> ScenarioError:
    """The ScenarioError that parsing `text` (named s.yaml) raises."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return info.value


# --- the shipped scenario files ---------------------------------------------------------


def test_demo_loads_with_its_four_archetypes() -> None:
    """demo.yaml is valid and says what the brief asks: one year, seed 42, four tenants."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    assert demo.name == "demo"
    assert (demo.start.isoformat(), demo.years, demo.duration_days) == ("2025-07-01", 1, 365)
    assert (demo.seed, demo.scale) == (42, 0.02)
    summary = [(t.id, t.code, t.state, t.members, t.annual_growth) for t in demo.tenants]
    assert summary == [
        ("cu-small", "CU_SMALL", "NSW", 5000, 0.01),
        ("cu-mid", "CU_MID", "VIC", 25000, 0.03),
        ("cu-large", "CU_LARGE", "QLD", 75000, 0.02),
        ("cu-digital", "CU_DIGITAL", "NSW", 10000, 0.12),
    ]
    assert demo.members_at_scale("cu-large") == 1500


def test_demo_spells_out_the_defaults() -> None:
    """The behaviour block in demo.yaml only restates defaults, so it changes nothing."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    assert demo.behaviour == Behaviour()


def test_digital_tenant_overrides_resolve() -> None:
    """The digital CU pays more by NPP and card and less by BPAY; the others keep defaults."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    digital = demo.tenant_behaviour("cu-digital")
    default = demo.behaviour
    assert digital.npp_out.rate_per_day > default.npp_out.rate_per_day
    assert digital.bpay.rate_per_day < default.bpay.rate_per_day
    assert digital.card_spend.rate_per_day > default.card_spend.rate_per_day
    assert digital.bpay.mean_amount == default.bpay.mean_amount  # merged, not replaced
    for tenant_id in ("cu-small", "cu-mid", "cu-large"):
        assert demo.tenant_behaviour(tenant_id) == default


def test_baseline_is_the_demo_at_full_size_for_three_years() -> None:
    """baseline.yaml has the same tenants as the demo, unscaled, over three years."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    baseline = load_scenario(str(SCENARIOS / "baseline.yaml"))
    assert (baseline.scale, baseline.years, baseline.start) == (1.0, 3, demo.start)
    assert baseline.duration_days == 1096
    assert baseline.tenants == demo.tenants
    assert baseline.members_at_scale("cu-large") == 75000


@pytest.mark.parametrize("name", ["demo.yaml", "baseline.yaml"])
def test_resolved_yaml_round_trips_the_shipped_files(name: str) -> None:
    """Re-loading the resolved YAML gives an equal scenario, fingerprint and text."""
    scenario = load_scenario(SCENARIOS / name)
    text = resolved_yaml(scenario)
    again = parse_scenario(text)
    assert again == scenario
    assert again.fingerprint() == scenario.fingerprint()
    assert resolved_yaml(again) == text


# --- exact decimals and resolved YAML ---------------------------------------------------


def test_decimals_are_exact_from_their_text() -> None:
    """YAML numbers with a fraction become Decimals from their text, never via float."""
    scenario = parse_scenario(
        VALID
        + """\
    behaviour:
      bpay:
        mean_amount: 0.1
      opening:
        savings_mean: 1_000.50
behaviour:
  income:
    median_annual: 67000.10
"""
    )
    override = scenario.tenants[0].behaviour
    assert override["bpay"]["mean_amount"] == Decimal("0.1")
    assert isinstance(override["bpay"]["mean_amount"], Decimal)
    assert override["opening"]["savings_mean"] == Decimal("1000.50")
    assert scenario.behaviour.income.median_annual == Decimal("67000.10")
    assert scenario.tenant_behaviour("cu-a").bpay.mean_amount == Decimal("0.1")


def test_resolved_yaml_writes_every_default_and_exact_decimals() -> None:
    """The resolved file states the length and all defaults, with decimals as written."""
    scenario = parse_scenario(VALID + "    behaviour:\n      bpay: {mean_amount: 215.10}\n")
    text = resolved_yaml(scenario)
    assert "years: 1\n" in text
    assert "\ndays:" not in text
    assert "mean_amount: 41.00\n" in text
    assert "mean_amount: 215.10" in text
    assert "median_annual: 67000.0\n" in text  # an integral Decimal keeps a point
    assert "!!" not in text
    assert "&id" not in text
    again = parse_scenario(text)
    assert again == scenario
    assert again.behaviour.opening.savings_mean == Decimal("24000")


def test_resolved_yaml_round_trips_days_and_quoting() -> None:
    """Strings YAML would misread (yes, 1.0) are quoted; a days length survives."""
    scenario = parse_scenario(VALID.replace("name: t", "name: 'yes'\ndescription: '1.0'\ndays: 45"))
    again = parse_scenario(resolved_yaml(scenario))
    assert again == scenario
    assert (again.name, again.description, again.days) == ("yes", "1.0", 45)


def test_merge_keys_and_anchors_share_overrides() -> None:
    """Anchors and `<<` merge keys work; explicit keys win over merged ones."""
    scenario = parse_scenario(
        VALID
        + """\
    behaviour: &young
      bpay: {rate_per_day: 0.05}
      npp_out: {rate_per_day: 0.3}
"""
        + SECOND_TENANT
        + """\
    behaviour:
      <<: *young
      npp_out: {rate_per_day: 0.4}
"""
    )
    assert scenario.tenant_behaviour("cu-b").bpay.rate_per_day == 0.05
    assert scenario.tenant_behaviour("cu-b").npp_out.rate_per_day == 0.4
    assert scenario.tenant_behaviour("cu-a").npp_out.rate_per_day == 0.3


# --- errors: key path and line ------------------------------------------------------------

_OVERRIDE = VALID + "    behaviour:\n      card_spend:\n        rate_per_dya: 1.2\n"


@pytest.mark.parametrize(
    ("text", "key_path", "line", "fragment"),
    [
        pytest.param(
            VALID.replace("seed: 1", "sede: 1"),
            "sede",
            3,
            "unknown key 'sede'; did you mean 'seed'?",
            id="unknown-top-level-key",
        ),
        pytest.param(
            VALID.replace("members: 100", "membrs: 100"),
            "tenants[0].membrs",
            10,
            "did you mean 'members'?",
            id="unknown-tenant-key",
        ),
        pytest.param(
            _OVERRIDE,
            "tenants[0].behaviour.card_spend.rate_per_dya",
            13,
            "unknown key 'rate_per_dya'; did you mean 'rate_per_day'?",
            id="unknown-override-key",
        ),
        pytest.param(
            VALID + "behaviour:\n  bpya: {cv: 1}\n",
            "behaviour.bpya",
            12,
            "did you mean 'bpay'?",
            id="unknown-scenario-behaviour-key",
        ),
        pytest.param(
            VALID.replace("seed: 1", "zzzz: 1"),
            "zzzz",
            3,
            "valid keys: name, description, start",
            id="unknown-key-lists-valid-ones",
        ),
        pytest.param(
            VALID.replace("members: 100", "members: many"),
            "tenants[0].members",
            10,
            "valid integer, unable to parse string as an integer (got 'many')",
            id="wrong-type",
        ),
        pytest.param(
            VALID.replace("members: 100", "members: 12.5"),
            "tenants[0].members",
            10,
            "fractional part (got 12.5)",
            id="fraction-for-integer",
        ),
        pytest.param(
            VALID.replace("seed: 1", "scale: 0"),
            "scale",
            3,
            "greater than 0 (got 0)",
            id="out-of-range",
        ),
        pytest.param(
            VALID + "    annual_growth: 1.5\n",
            "tenants[0].annual_growth",
            11,
            "less than or equal to 1",
            id="out-of-range-decimal",
        ),
        pytest.param(
            VALID + "    behaviour:\n      npp_in: {cv: 0}\n",
            "tenants[0].behaviour.npp_in.cv",
            12,
            "greater than 0",
            id="out-of-range-override",
        ),
        pytest.param(
            VALID + "    behaviour:\n      weekday_multipliers: [1, 2]\n",
            "tenants[0].behaviour.weekday_multipliers",
            12,
            "needs 7 non-negative numbers",
            id="override-validator-message",
        ),
        pytest.param(
            VALID.replace("state: NSW", "state: NZ"),
            "tenants[0].state",
            9,
            "'NSW'",
            id="bad-literal",
        ),
        pytest.param(
            VALID.replace("start: 2025-07-01\n", ""),
            "start",
            1,
            "required key 'start' is missing",
            id="missing-top-level-key",
        ),
        pytest.param(
            VALID.replace("    state: NSW\n", ""),
            "tenants[0].state",
            5,
            "required key 'state' is missing",
            id="missing-tenant-key-at-parent-line",
        ),
        pytest.param(
            VALID.replace("seed: 1", "years: 1\ndays: 30"),
            "days",
            4,
            "either years or days",
            id="years-and-days",
        ),
        pytest.param(
            VALID + SECOND_TENANT.replace("cu-b", "cu-a"),
            "tenants[1].id",
            11,
            "duplicate tenant id 'cu-a'",
            id="duplicate-tenant-id",
        ),
        pytest.param(
            VALID.replace("seed: 1", "seed: 1\nseed: 2"),
            "seed",
            4,
            "duplicate key 'seed' (first on line 3, again on line 4)",
            id="duplicate-key",
        ),
        pytest.param(
            VALID.replace("    code: CU_A\n", "    code: CU_A\n    code: CU_Z\n"),
            "tenants[0].code",
            7,
            "duplicate key 'code' (first on line 6, again on line 7)",
            id="duplicate-nested-key",
        ),
        pytest.param(
            VALID.replace("seed: 1", "seed: [1"),
            None,
            4,
            "invalid YAML",
            id="syntax-error",
        ),
        pytest.param(
            VALID.replace("    members: 100", "   members: 100"),
            None,
            10,
            "invalid YAML",
            id="bad-indentation",
        ),
        pytest.param(
            VALID.replace("start: 2025-07-01", "start: 2025-13-01"),
            "start",
            2,
            "month must be in 1..12",
            id="impossible-date",
        ),
        pytest.param(
            VALID.replace("start: 2025-07-01", "start: 1 July 2025"),
            "start",
            2,
            "valid date",
            id="date-as-text",
        ),
        pytest.param(
            VALID.replace("seed: 1", "scale: .inf"),
            "scale",
            3,
            "not a finite number",
            id="infinity",
        ),
        pytest.param(
            VALID.replace("seed: 1", "yes: 1"),
            None,
            3,
            "key 'yes' is read as bool",
            id="boolean-key",
        ),
        pytest.param(
            VALID.replace("seed: 1", "seed: !!python/object:os.system x"),
            "seed",
            3,
            "could not determine a constructor",
            id="unsafe-tag",
        ),
        pytest.param(
            VALID.replace("seed: 1", "seed: &s [*s]"),
            "seed[0]",
            3,
            "recursive alias",
            id="recursive-alias",
        ),
        pytest.param(
            "name: [a, b]\n---\nname: c\n",
            None,
            2,
            "expected a single document",
            id="two-documents",
        ),
        pytest.param(
            "name: a\x00\n",
            None,
            1,
            "unacceptable character #x0000",
            id="control-character",
        ),
        pytest.param(
            "- name: a\n",
            None,
            1,
            "top level must be a mapping",
            id="top-level-list",
        ),
        pytest.param(
            "\n\njust text\n",
            None,
            3,
            "not a single value",
            id="top-level-scalar",
        ),
        pytest.param("", None, None, "the file is empty", id="empty"),
        pytest.param("# only a comment\n\n", None, None, "the file is empty", id="comments-only"),
    ],
)
def test_bad_input_is_located(
    text: str, key_path: str | None, line: int | None, fragment: str
) -> None:
    """Each class of bad input is a ScenarioError with the right key path, line and message."""
    error = _error(text)
    assert (error.path, error.key_path, error.line) == ("s.yaml", key_path, line)
    assert fragment in error.message


def test_error_text_is_path_line_key_path_message() -> None:
    """str(error) is `path:line: key_path: message`, ready for an editor to jump to."""
    error = _error(_OVERRIDE)
    assert str(error) == (
        "s.yaml:13: tenants[0].behaviour.card_spend.rate_per_dya: "
        "unknown key 'rate_per_dya'; did you mean 'rate_per_day'?"
    )


def test_error_text_leaves_out_unknown_parts() -> None:
    """Parts that are not known (line, key path) are omitted, not printed as None."""
    assert str(_error("")) == "s.yaml: the file is empty; expected a scenario mapping"
    assert str(ScenarioError("broken")) == "broken"
    assert str(ScenarioError("broken", line=3)) == "3: broken"


def test_several_errors_are_all_reported_one_per_line() -> None:
    """When validation finds several problems, the message lists them all; .line is the first's."""
    text = VALID.replace("seed: 1", "seed: -1").replace("members: 100", "members: 0")
    error = _error(text)
    assert (error.key_path, error.line) == ("seed", 3)
    lines = str(error).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("s.yaml:3: seed: ")
    assert lines[1].startswith("s.yaml:10: tenants[0].members: ")
    assert error.problems == (
        Problem("seed", 3, error.problems[0].message),
        Problem("tenants[0].members", 10, error.problems[1].message),
    )


def test_a_misspelt_key_is_reported_before_the_missing_one() -> None:
    """The typo (the cause) leads; the correct key reported missing (the effect) follows."""
    error = _error(VALID.replace("members: 100", "membrs: 100"))
    assert [(p.key_path, p.line) for p in error.problems] == [
        ("tenants[0].membrs", 10),
        ("tenants[0].members", 5),
    ]
    assert "required key 'members' is missing" in error.message.splitlines()[1]


def test_several_bad_overrides_are_all_reported() -> None:
    """Every bad key of a tenant's overrides is reported, each at its own line."""
    text = _OVERRIDE + "      bpay:\n        cv: -1\n"
    error = _error(text)
    assert [(p.key_path, p.line) for p in error.problems] == [
        ("tenants[0].behaviour.card_spend.rate_per_dya", 13),
        ("tenants[0].behaviour.bpay.cv", 15),
    ]


def test_scenario_errors_survive_pickling() -> None:
    """Errors cross process boundaries (sweeps run in pools) with every field intact."""
    error = _error(_OVERRIDE)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.key_path, copy.line, copy.message) == (
        error.path,
        error.key_path,
        error.line,
        error.message,
    )
    assert str(copy) == str(error)


# --- errors: files ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a ScenarioError naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: no such scenario file"


def test_directory(tmp_path: Path) -> None:
    """A directory is refused as such, not with an OS error."""
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported with the line they are on."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 2
    assert "not UTF-8" in info.value.message


def test_file_errors_carry_the_file_path(tmp_path: Path) -> None:
    """Validation errors from a file name that file, so the message is clickable."""
    path = tmp_path / "bad.yaml"
    path.write_text(_OVERRIDE, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:13: tenants[0].behaviour.card_spend.")


def test_a_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Editors that write a UTF-8 BOM do not break loading."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_scenario(path).name == "t"


# --- declared expectations ----------------------------------------------------------------

_EXPECTATIONS = """\
expectations:
  - name: members
    kpi: membres
    tenant: cu-a
    at: 2025-07-02
    min: 1
  - name: window
    kpi: entries
    tenant: cu-a
    at: 2025-07-02
    window_days: 0
    max: 5
"""


def test_demo_expectations_are_read_with_exact_bands() -> None:
    """demo.yaml's expectations load with their bounds exactly as written."""
    demo = load_scenario(SCENARIOS / "demo.yaml")
    bands = {e.kpi: (e.tenant, e.at.isoformat(), e.min, e.max) for e in demo.expectations}
    assert bands["members"] == ("cu-large", "2026-06-30", Decimal(1450), Decimal(1750))
    assert str(bands["deposits_growth"][3]) == "0.60"
    assert bands["deposits_cents"][2] == 4_000_000_000


def test_field_errors_in_several_expectations_are_all_located() -> None:
    """A bad KPI and a bad window in two expectations: both reported, each at its line."""
    error = _error(VALID + _EXPECTATIONS)
    assert [(p.key_path, p.line) for p in error.problems] == [
        ("expectations[0].kpi", 13),
        ("expectations[1].window_days", 21),
    ]
    assert "did you mean 'members'?" in error.problems[0].message
