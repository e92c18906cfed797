"""report.md: verdict first, the five invariants, failures first, exact money, relative links."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from analysis.report import INVARIANTS, aud_text, counterexample_text, write_report


def passing_invariant(examined: int = 123) -> dict[str, Any]:
    """An invariant result with nothing found."""
    return {
        "passed": True,
        "examined": examined,
        "counterexamples": {"count": 0, "first": None, "worst": None, "last": None},
    }


def summary() -> dict[str, Any]:
    """A passing two-tenant summary in the shape the run writes."""
    return {
        "scenario": {
            "name": "demo",
            "hash": "ab" * 32,
            "source": "scenarios/demo.yaml",
            "start": "2025-07-01",
            "days": 365,
            "scale": 0.04,
        },
        "seed": 42,
        "passed": True,
        "fingerprint": {"cu-small": "f" * 64, "cu-large": "e" * 64},
        "invariants": {name: passing_invariant() for name in INVARIANTS},
        "expectations": [
            {
                "name": "shadow book equals read model",
                "tenant": "cu-small",
                "expected": 1234,
                "actual": 1234,
                "passed": True,
                "detail": "all accounts",
            },
        ],
        "tenants": {
            "cu-small": {
                "members": 200,
                "accounts": 340,
                "deposits_cents": 123456789,
                "entries": 1000,
                "postings": 2000,
                "events": 3100,
                "commands": 1500,
                "rejections": {"OVERDRAFT_LIMIT": 3},
                "head_seq": 3100,
            },
            "cu-large": {
                "members": 2000,
                "accounts": 3400,
                "deposits_cents": 5,
                "entries": 10000,
                "postings": 20000,
                "events": 31000,
                "commands": 15000,
                "rejections": {},
                "head_seq": 31000,
            },
        },
        "timings": {
            "wall_s": 55.2,
            "simulated_days": 365,
            "member_days_per_s": 30000.0,
            "postings_per_s": 120000.0,
            "events_per_s": 180000.0,
            "warp": "max",
            "lag": {"samples": 0, "mean_lag_s": None, "p95_lag_s": None, "max_lag_s": None},
        },
        "run": {"command": "twin run scenarios/demo.yaml --seed 42", "out": "runs/demo-42"},
    }


def failing_summary() -> dict[str, Any]:
    """The same run with one invariant and one expectation broken."""
    s = summary()
    s["passed"] = False
    s["invariants"]["balance_derivability"] = {
        "passed": False,
        "examined": 5000,
        "counterexamples": {
            "count": 3,
            "first": {
                "tenant": "cu-small",
                "seq": 17,
                "account": "ACC-9",
                "expected": 100,
                "actual": 99,
                "message": "read model differs from fold",
            },
            "worst": {"tenant": "cu-small", "seq": 40, "expected": 1, "actual": -1000},
            "last": None,
        },
    }
    s["expectations"].append(
        {
            "name": "members onboarded",
            "tenant": "cu-large",
            "expected": 500,
            "actual": 480,
            "passed": False,
            "detail": "within 2%",
        }
    )
    return s


def render(tmp_path: Path, data: dict[str, Any], charts: list[Path] | None = None) -> str:
    """Write the report into a run folder and return its text."""
    out = write_report(data, charts or [], tmp_path / "run" / "report.md")
    assert out == tmp_path / "run" / "report.md"
    return out.read_text(encoding="utf-8")


def test_passing_report_leads_with_pass_and_lists_all_invariants(tmp_path: Path) -> None:
    """The first line carries the PASS verdict; every invariant has a row in the table."""
    text = render(tmp_path, summary())
    first = text.splitlines()[0]
    assert first.startswith("# PASS")
    assert "demo" in first
    assert "FAIL" not in text
    for name in INVARIANTS:
        assert f"| `{name}` | ✅ pass | 123 | 0 |" in text


def test_failing_report_says_what_broke_and_where_first(tmp_path: Path) -> None:
    """FAIL is in the title, and the failures (invariant + tenant + seq) precede all sections."""
    text = render(tmp_path, failing_summary())
    assert text.splitlines()[0].startswith("# FAIL")
    head = text.split("## Invariants")[0]
    assert "balance_derivability" in head
    assert "tenant=cu-small seq=17 account=ACC-9 expected=100 actual=99" in head
    assert "members onboarded" in head
    assert "expected 500, actual 480" in head


def test_failed_invariant_row_shows_first_counterexample(tmp_path: Path) -> None:
    """The invariant table shows FAIL, the examined count, the count and the first case."""
    text = render(tmp_path, failing_summary())
    row = next(line for line in text.splitlines() if line.startswith("| `balance_derivability`"))
    assert "❌ FAIL" in row
    assert "5,000" in row
    assert "| 3 |" in row
    assert "seq=17" in row
    assert "read model differs from fold" in row
    assert "`balance_derivability` worst: tenant=cu-small seq=40" in text


def test_failed_expectation_is_listed_first(tmp_path: Path) -> None:
    """In the expectations table the failed row comes before the passing one."""
    text = render(tmp_path, failing_summary())
    section = text.split("## Expectations")[1].split("## Tenants")[0]
    failed = section.index("members onboarded")
    passed = section.index("shadow book equals read model")
    assert failed < passed
    assert "1 of 2 met" in section


def test_money_is_exact_aud_with_thousands_separators(tmp_path: Path) -> None:
    """123456789 cents is shown as 1,234,567.89 and totals add exactly in cents."""
    text = render(tmp_path, summary())
    assert "| 1,234,567.89 |" in text
    assert "| 0.05 |" in text
    assert "**1,234,567.94**" in text
    assert "| `cu-small` | `OVERDRAFT_LIMIT` | 3 |" in text


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (-5, "-0.05"),
        (100, "1.00"),
        (123456789, "1,234,567.89"),
        (-100000000, "-1,000,000.00"),
        (10**17 + 1, "1,000,000,000,000,000.01"),
    ],
)
def test_aud_text(cents: int, text: str) -> None:
    """AUD formatting is exact from cents, signed, two places, grouped by thousands."""
    assert aud_text(cents) == text


def test_charts_are_linked_relative_to_the_report(tmp_path: Path) -> None:
    """Chart links are relative to the report's folder so the run folder can move."""
    charts_dir = tmp_path / "run" / "charts"
    charts = [charts_dir / "deposits.png", charts_dir / "rejections.png"]
    text = render(tmp_path, summary(), charts)
    assert "![Member deposits per tenant](charts/deposits.png)" in text
    assert "![Rejections by rule](charts/rejections.png)" in text
    assert str(tmp_path) not in text


def test_fingerprints_timings_and_reproduction(tmp_path: Path) -> None:
    """Chain heads, throughput, warp, lag and the re-run / verify commands are all there."""
    text = render(tmp_path, summary())
    assert f"| `cu-small` | `{'f' * 64}` |" in text
    assert "120,000 per s" in text
    assert "max (as fast as possible)" in text
    assert "not measured" in text
    assert "twin run scenarios/demo.yaml --seed 42" in text
    assert "twin verify runs/demo-42" in text


def test_realtime_lag_is_reported(tmp_path: Path) -> None:
    """With a numeric warp the lag statistics are shown."""
    data = summary()
    data["timings"]["warp"] = 60
    data["timings"]["lag"] = {
        "samples": 12,
        "mean_lag_s": 0.004,
        "p95_lag_s": 0.02,
        "max_lag_s": 0.5,
    }
    text = render(tmp_path, data)
    assert "60× real time" in text
    assert "12 samples; mean 0.004 s, p95 0.020 s, max 0.500 s" in text


def test_missing_optional_sections_do_not_crash(tmp_path: Path) -> None:
    """A summary without timings, run, fingerprint or expectations still renders and says so."""
    data = summary()
    for key in ("timings", "run", "fingerprint", "expectations"):
        del data[key]
    text = render(tmp_path, data)
    assert text.startswith("# PASS")
    assert "_The summary has no timings._" in text
    assert "_No expectations were checked in this run._" in text
    assert "twin run scenarios/demo.yaml --seed 42" in text
    assert f"twin verify {(tmp_path / 'run').as_posix()}" in text


def test_empty_summary_renders_unknown(tmp_path: Path) -> None:
    """An empty summary gives an UNKNOWN verdict and lists the five invariants as not run."""
    text = render(tmp_path, {})
    assert text.startswith("# UNKNOWN")
    assert text.count("— not run") == 5


def test_verdict_is_derived_when_the_flag_is_missing(tmp_path: Path) -> None:
    """Without a 'passed' flag, a failed invariant still makes the report FAIL."""
    data = failing_summary()
    del data["passed"]
    assert render(tmp_path, data).startswith("# FAIL")
    ok = copy.deepcopy(summary())
    del ok["passed"]
    assert render(tmp_path, ok).startswith("# PASS")


def test_counterexample_text_is_compact_and_table_safe() -> None:
    """Known keys first, message last, pipes escaped so the Markdown table stays intact."""
    text = counterexample_text(
        {"message": "a|b", "zeta": [1, 2], "actual": 2, "tenant": "t", "expected": 1}
    )
    assert text == "tenant=t expected=1 actual=2 zeta=[1, 2]: a\\|b"
    assert counterexample_text(None) == "—"
