"""Fraud in the twin (`models.fraud`): real money, hidden labels, and an honest score.

One run of two small credit unions with fraud rates turned far up (so that
every kind of campaign happens in twelve days) must pass every invariant and
every expectation, keep its ground truth away from the platform, and score
the monitor with numbers that add up; a ten-fold surge must show up as
significantly larger losses in its window, over several seeds.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from analysis.invariants import INVARIANT_NAMES
from analysis.report import render_report
from models.fraud import (
    CSV_COLUMNS,
    FRAUD_FILE,
    KINDS,
    SUMMARY_FILE,
    FraudModel,
    wilson_upper,
)
from scenarios.loader import parse_scenario
from tests.conftest import SmallRun, run_twin
from turingcore.eventlog import EventLogReader

FRAUD_YAML = """\
name: busy-small
description: two tiny credit unions with a lot of fraud, for the test suite
start: 2025-07-01
days: 12
seed: 11
behaviour:
  fraud:
    cnp_rate: 3.0
    ato_rate: 1.5
    app_rate: 1.5
    mule_rate: 1.0
    structuring_rate: 1.0
    cash_deposit_rate: 8.0
    cash_mean_amount: 6000.00
tenants:
  - id: cu-a
    code: CU_A
    display_name: Alpha Test Credit Union
    archetype: small
    state: NSW
    members: 70
    annual_growth: 0.0
  - id: cu-b
    code: CU_B
    display_name: Bravo Test Credit Union
    archetype: mid
    state: VIC
    members: 50
    annual_growth: 0.0
expectations:
  - name: fraud money was lost
    kpi: fraud_losses_cents
    tenant: all
    at: 2025-07-12
    min: 1
  - name: the monitor raised alerts
    kpi: fraud_alerts
    tenant: all
    at: 2025-07-12
    min: 1
  - name: precision is a share
    kpi: fraud_precision
    tenant: all
    at: 2025-07-12
    min: 0
    max: 1
  - name: recall is a share
    kpi: fraud_recall
    tenant: all
    at: 2025-07-12
    min: 0
    max: 1
  - name: some campaigns are caught
    kpi: fraud_campaign_recall
    tenant: all
    at: 2025-07-12
    min: 0.05
"""

#: Words that would give a campaign away if they reached the platform's events.
TELLTALES = ("fraud", "scam", "mule", "takeover", "launder", "campaign", "victim", "stolen")


def fraud_model(run: SmallRun) -> FraudModel:
    """The run's fraud model (the owner of its finish hook): the twin's ground truth."""
    for hook in run.twin.context.finish_hooks:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, FraudModel):
            return owner
    raise AssertionError("fraud is not attached to the run")


@pytest.fixture(scope="module")
def fraud_run(tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    """The fraud-heavy scenario, run once."""
    scenario = parse_scenario(FRAUD_YAML, "fraud.yaml")
    return run_twin(scenario, tmp_path_factory.mktemp("fraud") / "run")


@pytest.fixture(scope="module")
def fraud_rows(fraud_run: SmallRun) -> list[dict[str, str]]:
    with (fraud_run.dir / FRAUD_FILE).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def fraud_summary(fraud_run: SmallRun) -> dict[str, Any]:
    return json.loads((fraud_run.dir / SUMMARY_FILE).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the run


def test_a_run_with_fraud_passes_every_invariant_and_expectation(fraud_run: SmallRun) -> None:
    """All five invariants hold; the shadow book equals the read model and the replay."""
    summary = fraud_run.summary
    assert set(summary["invariants"]) == set(INVARIANT_NAMES)
    for name, report in summary["invariants"].items():
        assert report["passed"], (name, report["counterexamples"])
    shadow_checks = [e for e in summary["expectations"] if e["name"].startswith("shadow book")]
    assert len(shadow_checks) == 4
    failed = [e for e in summary["expectations"] if e["passed"] is False]
    assert failed == []
    assert fraud_run.outcome.passed


def test_every_kind_of_campaign_moved_money(fraud_run: SmallRun) -> None:
    """Each campaign kind ran, and fraudulent payments were booked like any other."""
    model = fraud_model(fraud_run)
    campaigns = [c for book in model.books.values() for c in book.campaigns]
    by_kind = Counter(c.kind for c in campaigns if c.payments > 0)
    assert set(by_kind) == set(KINDS), by_kind
    assert sum(c.lost_cents for c in campaigns) > 0


def test_declared_fraud_kpis_are_evaluated(fraud_run: SmallRun) -> None:
    """fraud_losses_cents, fraud_alerts, precision and recall work in `expectations:`."""
    declared = {
        e["name"]: e for e in fraud_run.summary["expectations"] if e["expected"] is not None
    }
    for name in ("fraud money was lost", "the monitor raised alerts", "precision is a share"):
        assert declared[name]["passed"] is True, declared[name]
        assert declared[name]["actual"] is not None


# --------------------------------------------------------------------------- ground truth


def test_labels_never_reach_the_platform(fraud_run: SmallRun) -> None:
    """No campaign id, kind or telltale word is in any stored event or refusal."""
    model = fraud_model(fraud_run)
    ids = [c.campaign_id for book in model.books.values() for c in book.campaigns]
    assert ids
    needles = [*ids, *KINDS]
    scanned = 0
    with EventLogReader(fraud_run.dir / "events.sqlite") as reader:
        for tenant in reader.tenants():
            for stored in reader.events(tenant):
                text = stored.canonical.decode()
                body = json.loads(text)
                scanned += 1
                assert not any(needle in text for needle in needles), body["seq"]
                if body["eventType"] == "EntryPosted":
                    payload = body["payload"]
                    words = json.dumps(
                        [payload["narrative"], payload["tags"], payload["metadata"]]
                    ).lower()
                    assert not any(word in words for word in TELLTALES), payload
                    assert set(payload["tags"] or {}) <= {
                        "channel",
                        "category",
                        "merchantMcc",
                        "counterparty",
                    }
                    assert payload["metadata"] == {"scenarioId": "busy-small"}
        for row in reader.rejections():
            text = json.dumps(row, default=str)
            assert not any(needle in text for needle in needles)
            assert not any(word in text.lower() for word in TELLTALES)
    assert scanned > 1000


# --------------------------------------------------------------------------- the score


def test_confusion_matrix_adds_up(
    fraud_run: SmallRun, fraud_rows: list[dict[str, str]], fraud_summary: dict[str, Any]
) -> None:
    """Cells sum to the accepted entries per day and overall; they match the labels and events."""
    assert list(fraud_rows[0]) == list(CSV_COLUMNS)
    cells = ("true_positives", "false_negatives", "false_positives", "true_negatives")
    for row in fraud_rows:
        assert sum(int(row[c]) for c in cells) == int(row["entries"]), row
        assert min(int(row[c]) for c in cells) >= 0, row
    everything = fraud_summary["all"]
    matrix = everything["confusion"]
    alerted = set()
    entries = 0
    with EventLogReader(fraud_run.dir / "events.sqlite") as reader:
        for tenant in reader.tenants():
            for stored in reader.events(tenant):
                body = json.loads(stored.canonical)
                entries += body["eventType"] == "EntryPosted"
                if body["eventType"] == "FraudAlertRaised":
                    alerted.add((tenant, body["causationId"]))
    assert sum(matrix.values()) == everything["payments"] == entries
    assert matrix["tp"] == sum(int(r["true_positives"]) for r in fraud_rows)
    model = fraud_model(fraud_run)
    campaigns = [c for book in model.books.values() for c in book.campaigns]
    assert matrix["tp"] + matrix["fn"] == sum(c.payments for c in campaigns)
    assert matrix["tp"] == sum(c.alerted for c in campaigns)
    assert len(alerted) == matrix["tp"] + matrix["fp"]
    assert everything["alerts"] == sum(int(r["alerts"]) for r in fraud_rows) >= len(alerted)
    precision = matrix["tp"] / (matrix["tp"] + matrix["fp"])
    assert everything["precision"] == pytest.approx(precision, abs=1e-6)


def test_campaign_outcomes_are_consistent(fraud_summary: dict[str, Any]) -> None:
    """Detected campaigns have a time to detect; kinds sum to the whole; money adds up."""
    everything = fraud_summary["all"]
    campaigns = everything["campaigns"]
    kinds = campaigns["by_kind"]
    assert sum(k["started"] for k in kinds.values()) == campaigns["started"]
    assert sum(k["detected"] for k in kinds.values()) == campaigns["detected"] > 0
    assert sum(k["lost_cents"] for k in kinds.values()) == everything["fraud_losses_cents"]
    assert sum(k["prevented_cents"] for k in kinds.values()) == everything["prevented_cents"]
    delays = everything["time_to_detect_s"]
    assert 0 < delays["count"] <= campaigns["detected"]
    assert 0 <= delays["median"] <= delays["max"]
    assert kinds["cash_structuring"]["lost_cents"] == 0
    assert everything["reports"] == everything["cash_reportable"] > 0


def test_fraud_csv_has_a_row_per_tenant_per_day(fraud_rows: list[dict[str, str]]) -> None:
    """Twelve days times two tenants, with the columns the comparison panel reads."""
    assert len(fraud_rows) == 24
    assert {(r["date"], r["tenant_id"]) for r in fraud_rows} == {
        (date(2025, 7, d).isoformat(), t) for d in range(1, 13) for t in ("cu-a", "cu-b")
    }
    for column in ("fraud_losses_cents", "detected_cents", "prevented_cents", "alerts"):
        assert all(int(r[column]) >= 0 for r in fraud_rows), column


def test_the_report_renders_the_confusion_matrix(
    fraud_run: SmallRun, fraud_summary: dict[str, Any]
) -> None:
    """With summary["fraud"] the report has the matrix; without it, no fraud section."""
    summary = {k: v for k, v in fraud_run.summary.items() if k != "fraud"}
    assert "## Fraud monitor" not in render_report(summary)
    assert fraud_run.summary["fraud"] == fraud_summary  # the twin copies it into summary.json
    summary["fraud"] = fraud_summary
    text = render_report(summary)
    matrix = fraud_summary["all"]["confusion"]
    assert "## Fraud monitor" in text
    assert f"| **fraudulent** | {matrix['tp']:,} | {matrix['fn']:,} |" in text
    assert f"| **legitimate** | {matrix['fp']:,} | {matrix['tn']:,} |" in text
    assert "`account_takeover`" in text


def test_wilson_bound_is_lenient_with_few_campaigns_and_strict_with_many() -> None:
    """1 of 4 cannot refute a 50% floor; 100 of 1,000 can; no campaigns cannot."""
    assert wilson_upper(1, 4) >= 0.5
    assert wilson_upper(100, 1000) < 0.5
    assert wilson_upper(0, 0) == 1.0


# --------------------------------------------------------------------------- a fraud wave

SURGE_YAML = """\
name: surge
description: one credit union, takeovers and scams, with or without a wave
start: 2025-07-01
days: 14
seed: 1
behaviour:
  fraud:
    cnp_rate: 0.0
    mule_rate: 0.0
    structuring_rate: 0.0
    cash_deposit_rate: 0.0
    ato_rate: 0.6
    app_rate: 0.6
{surges}
tenants:
  - id: cu-s
    code: CU_S
    display_name: Surge Test Credit Union
    archetype: small
    state: NSW
    members: 60
    annual_growth: 0.0
"""
WAVE = """\
    surges:
      - from: 2025-07-04
        to: 2025-07-13
        ato_multiplier: 10
        app_multiplier: 10"""


def _window_losses(tmp: Path, seed: int, surge: bool) -> int:
    scenario = parse_scenario(SURGE_YAML.format(surges=WAVE if surge else ""), "surge.yaml")
    if surge:
        (wave,) = scenario.behaviour.fraud.surges
        assert (wave.start, wave.end) == (date(2025, 7, 4), date(2025, 7, 13))
    out = tmp / f"{'wave' if surge else 'calm'}-{seed}"
    run = run_twin(scenario, out, seed, keep_events=False)
    assert run.outcome.passed
    with (out / FRAUD_FILE).open(newline="", encoding="utf-8") as handle:
        return sum(
            int(row["fraud_losses_cents"])
            for row in csv.DictReader(handle)
            if "2025-07-04" <= row["date"] <= "2025-07-13"
        )


def test_a_ten_fold_surge_raises_losses_in_its_window(tmp_path: Path) -> None:
    """Over four seeds, losses in the wave's window are significantly higher (one-sided)."""
    seeds = (21, 22, 23, 24)
    calm = [_window_losses(tmp_path, seed, surge=False) for seed in seeds]
    wave = [_window_losses(tmp_path, seed, surge=True) for seed in seeds]
    result = stats.mannwhitneyu(wave, calm, alternative="greater")
    assert result.pvalue < 0.05, (calm, wave)
    assert sum(wave) > 3 * sum(calm), (calm, wave)
