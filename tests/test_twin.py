"""`Twin.run()`: reproducible runs, the run folder it writes, and failures it must report.

Runs are real (the embedded TuringCore, a small two-tenant scenario); faults
are injected with `Twin(..., target_factory=...)`, a platform subclass that
breaks one thing the way a buggy core would.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import read_events

from analysis.invariants import INVARIANT_NAMES
from scenarios.schema import Scenario
from sim.target import EmbeddedTarget
from sim.twin import RunFolderError, RunOptions, Twin
from turingcore.contract import CommandResult, Envelope
from turingcore.eventlog import EventLogReader
from turingcore.events import SealedEvent

HEX64 = re.compile(r"[0-9a-f]{64}")
TENANTS = ("cu-a", "cu-b")


def stored_log(run_dir: Path) -> dict[str, list[tuple[str, bytes]]]:
    """tenant -> every stored (hash, canonical bytes) pair, in chain order."""
    with EventLogReader(run_dir / "events.sqlite") as reader:
        return {
            tenant: [(event.hash, event.canonical) for event in reader.events(tenant)]
            for tenant in reader.tenants()
        }


def table(run_dir: Path, name: str) -> list[tuple[Any, ...]]:
    """A snapshot table of the run's event log, sorted."""
    with EventLogReader(run_dir / "events.sqlite") as reader:
        return sorted(reader.table(name))


def invariant_row(report: str, name: str) -> str:
    """The report's table row of one invariant."""
    rows = [line for line in report.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"no single table row for {name} in report.md"
    return rows[0]


# --------------------------------------------------------------------------- reproducibility


@pytest.fixture(scope="module")
def same_seed_again(small_scenario: Scenario, run_scenario, tmp_path_factory) -> Any:
    """The small scenario run a second time with the same seed, in a fresh folder."""
    return run_scenario(small_scenario, tmp_path_factory.mktemp("again") / "run", 7)


def test_same_seed_gives_identical_fingerprints(small_run, same_seed_again) -> None:
    """Same scenario + seed: the same chain head per tenant in summary.json."""
    first = json.loads((small_run.dir / "summary.json").read_text())["fingerprint"]
    second = json.loads((same_seed_again.dir / "summary.json").read_text())["fingerprint"]
    assert set(first) == set(TENANTS)
    assert first == second


def test_same_seed_gives_byte_identical_event_logs(small_run, same_seed_again) -> None:
    """Every stored (hash, canonical bytes) pair is the same, event by event, in both runs."""
    first, second = stored_log(small_run.dir), stored_log(same_seed_again.dir)
    assert sorted(first) == sorted(TENANTS)
    assert sorted(second) == sorted(TENANTS)
    for tenant in TENANTS:
        assert len(first[tenant]) == len(second[tenant]) > 100
        for position, (one, two) in enumerate(zip(first[tenant], second[tenant], strict=True)):
            assert one == two, f"{tenant}: event {position + 1} differs between the runs"


def test_same_seed_gives_identical_tables_and_snapshots(small_run, same_seed_again) -> None:
    """kpis.csv and rejections.csv are byte-identical; so are the end-of-run snapshots."""
    for name in ("kpis.csv", "rejections.csv"):
        assert (small_run.dir / name).read_bytes() == (same_seed_again.dir / name).read_bytes()
    for name in ("read_model_accounts", "shadow_accounts", "chain_heads", "idempotency_probes"):
        assert table(small_run.dir, name) == table(same_seed_again.dir, name), name


def test_same_seed_gives_identical_summary_apart_from_timings(small_run, same_seed_again) -> None:
    """summary.json differs only in wall-clock timings and the output folder."""

    def stable(run_dir: Path) -> dict[str, Any]:
        summary = json.loads((run_dir / "summary.json").read_text())
        summary.pop("timings")
        summary.pop("run")
        return summary

    assert stable(small_run.dir) == stable(same_seed_again.dir)


def test_another_seed_gives_other_fingerprints(small_scenario, small_run, run_scenario, tmp_path):
    """Seed 8 draws other members and payments: every tenant's chain head differs."""
    other = run_scenario(small_scenario, tmp_path / "run", 8)
    first = small_run.summary["fingerprint"]
    second = other.summary["fingerprint"]
    assert set(second) == set(TENANTS)
    for tenant in TENANTS:
        assert HEX64.fullmatch(second[tenant])
        assert first[tenant] != second[tenant], tenant
    assert (small_run.dir / "kpis.csv").read_bytes() != (other.dir / "kpis.csv").read_bytes()


def test_real_time_warp_makes_the_same_events_as_max(small_scenario, run_scenario, tmp_path):
    """A paced run (--warp N) sends the same commands as --warp max: same fingerprints."""
    short = small_scenario.with_overrides(days=2)
    fast = run_scenario(short, tmp_path / "max", 7)
    paced = run_scenario(short, tmp_path / "paced", 7, warp=1e9)
    assert paced.summary["fingerprint"] == fast.summary["fingerprint"]
    assert paced.summary["timings"]["warp"] == 1e9
    assert paced.outcome.passed


# --------------------------------------------------------------------------- the run folder


def test_run_passes_and_report_gives_the_verdict_first(small_run) -> None:
    """A clean run passes; report.md opens with PASS and lists all five invariants."""
    assert small_run.outcome.passed is True
    report = (small_run.dir / "report.md").read_text()
    assert report.splitlines()[0].startswith("# PASS")
    assert "**Verdict: PASS.**" in report
    for name in INVARIANT_NAMES:
        assert "pass" in invariant_row(report, name)


def test_summary_has_fingerprints_invariants_and_expectations(small_run) -> None:
    """summary.json: 64-hex fingerprints, the five invariants, expected-vs-actual items."""
    summary = json.loads((small_run.dir / "summary.json").read_text())
    for key in ("scenario", "seed", "passed", "fingerprint", "invariants", "expectations"):
        assert key in summary
    assert summary["passed"] is True
    assert summary["seed"] == 7
    assert set(summary["fingerprint"]) == set(TENANTS)
    assert all(HEX64.fullmatch(head) for head in summary["fingerprint"].values())
    assert list(summary["invariants"]) == list(INVARIANT_NAMES)
    for name, report in summary["invariants"].items():
        assert set(report) == {"passed", "examined", "counterexamples"}, name
        assert report["passed"] is True, name
        assert report["examined"] > 0, name
        assert report["counterexamples"]["count"] == 0, name
    assert len(summary["expectations"]) >= 2 * len(TENANTS)
    for item in summary["expectations"]:
        assert {"name", "expected", "actual", "passed"} <= set(item)
        assert item["passed"] is True, item
    assert set(summary["tenants"]) == set(TENANTS)


def test_fingerprint_is_the_stored_chain_head(small_run) -> None:
    """Each tenant's fingerprint is the hash of its last stored event and its head seq."""
    log = stored_log(small_run.dir)
    for tenant in TENANTS:
        assert small_run.summary["fingerprint"][tenant] == log[tenant][-1][0]
        assert small_run.summary["tenants"][tenant]["head_seq"] == len(log[tenant])


def test_summary_tenants_agree_with_the_read_model(small_run) -> None:
    """Per-tenant members, accounts and deposits in summary.json are the platform's."""
    accounts = table(small_run.dir, "read_model_accounts")
    customers = table(small_run.dir, "read_model_customers")
    with (small_run.dir / "loans.csv").open(newline="") as handle:
        loans = {row["account_id"] for row in csv.DictReader(handle)}  # not deposits
    for tenant in TENANTS:
        cards = {  # not deposits either: what members owe on their credit cards
            e["entityId"]
            for e in read_events(small_run.dir, tenant)
            if e["eventType"] == "AccountOpened" and e["payload"]["productType"] == "CREDIT_CARD"
        }
        assert cards
        data = small_run.summary["tenants"][tenant]
        mine = [row for row in accounts if row[0] == tenant and row[1] not in loans | cards]
        assert data["members"] == sum(1 for row in customers if row[0] == tenant)
        assert data["accounts"] == len(mine)
        assert data["deposits_cents"] == sum(row[3] for row in mine)
        assert data["entries"] * 2 == data["postings"]


def test_manifest_names_scenario_hash_seed_and_versions(small_run, small_scenario) -> None:
    """manifest.json: the resolved scenario, its hash, the seed and package versions."""
    manifest = json.loads((small_run.dir / "manifest.json").read_text())
    assert manifest["scenario_hash"] == small_scenario.fingerprint()
    assert manifest["scenario_hash"] == small_run.summary["scenario"]["hash"]
    assert manifest["scenario"] == json.loads(small_scenario.canonical_json())
    assert manifest["seed"] == 7
    assert manifest["keep_events"] == "all"
    for package in ("simpy", "numpy", "msgspec", "pydantic"):
        assert manifest["versions"][package] == metadata.version(package)
    assert re.fullmatch(r"3\.\d+\.\d+.*", manifest["python"])


def test_kpi_and_rejection_tables(small_run) -> None:
    """kpis.csv has one row per tenant per day; rejections.csv lists rules that fired."""
    with (small_run.dir / "kpis.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    days = sorted({row["date"] for row in rows})
    assert days == [f"2025-07-0{day}" for day in range(1, 6)]
    assert sorted((row["date"], row["tenant_id"]) for row in rows) == sorted(
        (day, tenant) for day in days for tenant in TENANTS
    )
    assert all(int(row["members"]) > 0 and int(row["entries"]) > 0 for row in rows)
    with (small_run.dir / "rejections.csv").open(newline="") as handle:
        rejections = list(csv.DictReader(handle))
    assert list(rejections[0]) == ["date", "tenant_id", "rule", "count"]
    assert all(int(row["count"]) > 0 for row in rejections)


def test_kpi_flows_add_up_to_the_run_totals(small_run) -> None:
    """KPI flows count per day, so their sums are the run totals (KpiRow's promise).

    The day-one row must include the set-up and initial onboarding, which
    happen on day one: summed events equal each tenant's head seq.
    """
    with (small_run.dir / "kpis.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for tenant in TENANTS:
        totals = small_run.summary["tenants"][tenant]
        mine = [row for row in rows if row["tenant_id"] == tenant]
        for flow in ("entries", "postings", "events", "commands"):
            assert sum(int(row[flow]) for row in mine) == totals[flow], f"{tenant} {flow}"
        assert sum(int(row["rejections"]) for row in mine) == sum(totals["rejections"].values())


def test_charts_are_png_files(small_run) -> None:
    """At least three charts, each a real PNG, all linked from report.md."""
    charts = sorted((small_run.dir / "charts").glob("*.png"))
    assert len(charts) >= 3
    report = (small_run.dir / "report.md").read_text()
    for chart in charts:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"charts/{chart.name}" in report


def test_event_log_holds_every_event_and_the_snapshots(small_run) -> None:
    """events.sqlite: both tenants' chains, refusals, and the end-of-run snapshot tables."""
    with EventLogReader(small_run.dir / "events.sqlite") as reader:
        assert reader.tenants() == list(TENANTS)
        assert reader.count() == sum(
            small_run.summary["tenants"][tenant]["head_seq"] for tenant in TENANTS
        )
        assert reader.meta() == {"seed": "7", "scenario": "small"}
        heads = {row[0]: (row[1], row[2]) for row in reader.table("chain_heads")}
    for tenant in TENANTS:
        assert heads[tenant][1] == small_run.summary["fingerprint"][tenant]
    connection = sqlite3.connect(small_run.dir / "events.sqlite")
    try:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    finally:
        connection.close()
    assert {"segments", "rejections", "read_model_accounts", "shadow_accounts"} <= names


def test_without_event_log_the_run_is_the_same(small_scenario, small_run, run_scenario, tmp_path):
    """keep_events=False writes no events.sqlite, yet the fingerprints are the same."""
    bare = run_scenario(small_scenario, tmp_path / "bare", 7, keep_events=False)
    assert not (bare.dir / "events.sqlite").exists()
    assert bare.summary["fingerprint"] == small_run.summary["fingerprint"]
    assert json.loads((bare.dir / "manifest.json").read_text())["keep_events"] == "none"
    assert (bare.dir / "report.md").is_file()


def test_a_non_empty_folder_is_refused_and_left_alone(small_scenario, tmp_path) -> None:
    """Without force, an existing non-empty folder raises RunFolderError and is not touched."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    twin = Twin(small_scenario, 7, RunOptions(out_dir=out, progress=False))
    with pytest.raises(RunFolderError, match="not empty"):
        twin.run()
    assert [path.name for path in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine\n"


# --------------------------------------------------------------------------- failures


class CorruptingTarget(EmbeddedTarget):
    """A platform whose read model gains one cent on one account after its first payment."""

    def __init__(self, event_log: Path | None) -> None:
        super().__init__(event_log)
        self.corrupted: str | None = None

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        results = super().submit(tenant_id, commands)
        if (
            self.corrupted is None
            and tenant_id == "cu-b"
            and any(command.command_type == "PostEntry" for command in commands)
        ):
            state = self.platform.tenants[tenant_id]
            account = next(a for a in state.accounts.values() if a.kind != "GL")
            account.balance += 1
            self.corrupted = account.account_id
        return results


class DroppingTarget(EmbeddedTarget):
    """A platform that leaves one event out of one published batch (the log keeps it)."""

    def __init__(self, event_log: Path | None) -> None:
        super().__init__(event_log)
        self.dropped = False

    def subscribe(self, listener: Callable[[str, list[SealedEvent]], None]) -> None:
        def lossy(tenant_id: str, events: list[SealedEvent]) -> None:
            if not self.dropped and tenant_id == "cu-a" and len(events) > 3:
                self.dropped = True
                events = events[:1] + events[2:]
            listener(tenant_id, events)

        super().subscribe(lossy)


@pytest.fixture(scope="module")
def short_scenario(small_scenario: Scenario) -> Scenario:
    """The small scenario cut to three days (failure runs need no more)."""
    return small_scenario.with_overrides(days=3)


def test_a_corrupted_balance_fails_the_run(short_scenario, run_scenario, tmp_path) -> None:
    """One cent added to a read-model balance: balance_derivability fails; the report says so."""
    targets: list[CorruptingTarget] = []

    def factory(log: Path | None) -> CorruptingTarget:
        targets.append(CorruptingTarget(log))
        return targets[-1]

    broken = run_scenario(short_scenario, tmp_path / "run", 7, target_factory=factory)
    account = targets[0].corrupted
    assert account is not None
    assert broken.outcome.passed is False
    summary = json.loads((broken.dir / "summary.json").read_text())
    assert summary["passed"] is False
    balance = summary["invariants"]["balance_derivability"]
    assert balance["passed"] is False
    assert balance["counterexamples"]["first"]["tenant"] == "cu-b"
    assert balance["counterexamples"]["first"]["account"] == account
    assert summary["invariants"]["event_integrity"]["passed"] is True
    shadow = [
        item
        for item in summary["expectations"]
        if item["tenant"] == "cu-b" and item["name"].startswith("shadow book equals read model")
    ]
    assert [item["passed"] for item in shadow] == [False]
    assert shadow[0]["actual"] - shadow[0]["expected"] == 1
    report = (broken.dir / "report.md").read_text()
    assert report.splitlines()[0].startswith("# FAIL")
    assert "FAIL" in invariant_row(report, "balance_derivability")
    assert "pass" in invariant_row(report, "event_integrity")
    assert account in report


def test_a_dropped_event_fails_event_integrity(short_scenario, run_scenario, tmp_path) -> None:
    """One event missing from the published stream: a seq gap that event_integrity reports."""
    broken = run_scenario(
        short_scenario, tmp_path / "run", 7, target_factory=lambda log: DroppingTarget(log)
    )
    summary = broken.summary
    assert summary["passed"] is False
    integrity = summary["invariants"]["event_integrity"]
    assert integrity["passed"] is False
    first = integrity["counterexamples"]["first"]
    assert first["tenant"] == "cu-a"
    assert "seq" in first["problem"]
    assert summary["invariants"]["audit_completeness"]["passed"] is False
    report = (broken.dir / "report.md").read_text()
    assert "**Verdict: FAIL.**" in report
    assert "FAIL" in invariant_row(report, "event_integrity")
