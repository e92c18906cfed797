"""`twin compare`: runs side by side as PNG panels and a `compare.md` page.

Two kinds of input: real runs of the small conftest scenario (two seeds),
for the tables every run has today, and run folders synthesized here with
the tables later issues add (`lending.csv`, `fraud.csv`, `macro.csv`), so
the panels for them are tested before the models that will write them.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import image as mpimg
from typer.testing import CliRunner

from analysis.compare import (
    PANELS,
    TABLE_SCHEMAS,
    CompareContext,
    CompareError,
    _monthly,
    compare_runs,
    default_out_dir,
    load_runs,
    plan_panels,
    read_table,
    render_page,
)
from analysis.kpis import KpiRecorder, KpiRow, read_kpis
from analysis.report import INVARIANTS, aud_text
from sim.cli import app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = datetime.date(2025, 7, 1)
TENANTS = ("cu-a", "cu-b")
KPI_PANELS = (
    "deposits_total",
    "deposits_by_tenant",
    "members",
    "postings",
    "rejection_rate",
    "rejections_by_rule",
)
FUTURE_FILES = {
    "loan_book": "lending.csv",
    "arrears": "lending.csv",
    "defaults_losses": "lending.csv",
    "fraud": "fraud.csv",
    "fraud_monthly": "fraud.csv",
    "cards": "cards.csv",
    "macro": "macro.csv",
    "inflation": "macro.csv",
}
FUTURE_PANELS = tuple(FUTURE_FILES)
TITLES = {panel.key: panel.title for panel in PANELS}

runner = CliRunner()


# --------------------------------------------------------------------------- helpers


def assert_real_png(path: Path) -> None:
    """The file is a PNG that decodes to a sizeable image with visible content."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[0] > 200
    assert pixels.shape[1] > 400
    assert float(np.var(pixels[..., :3])) > 1e-4, f"{path} looks blank"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A CSV table with the given header and rows."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def invariants_block(passed: bool = True) -> dict[str, Any]:
    """The summary's invariant results; the first one fails when ``passed`` is false."""
    out = {}
    for i, name in enumerate(INVARIANTS):
        ok = passed or i > 0
        out[name] = {
            "passed": ok,
            "examined": 1000 + i,
            "counterexamples": {
                "count": 0 if ok else 3,
                "first": None,
                "worst": None,
                "last": None,
            },
        }
    return out


def make_run(
    folder: Path,
    *,
    name: str,
    seed: int,
    start: datetime.date = START,
    days: int = 40,
    arrears_pct: int = 2,
    lending: bool = True,
    fraud: bool = True,
    fraud_surge: tuple[datetime.date, datetime.date] | None = None,
    cards: bool = True,
    macro: bool = True,
    passed: bool = True,
) -> Path:
    """A synthetic run folder: summary.json, kpis.csv, rejections.csv and optional tables.

    Lending: each tenant's loan book is AUD 500,000.00 on every day, with
    ``arrears_pct`` % of it 90+ days past due; 1 default and AUD 100.00 of
    losses a day. Fraud: AUD 50.00 lost, AUD 20.00 detected and three campaigns
    started per tenant-day, one a takeover and one a scam (ten times each
    between the ``fraud_surge`` dates, inclusive). Cards: AUD 3,000.00 owed of
    AUD 10,000.00 limits per tenant, AUD 1,000.00 of it accruing interest.
    Each table carries an extra column the panels do not read.
    """
    folder.mkdir(parents=True)
    recorder = KpiRecorder()
    for i in range(days):
        day = start + datetime.timedelta(days=i)
        for k, tenant in enumerate(TENANTS, start=1):
            recorder.add_day(
                KpiRow(
                    date=day,
                    tenant_id=tenant,
                    members=100 * k + i,
                    accounts=170 * k + i,
                    deposits_cents=k * 1_000_000_00 + seed * 1_000_00 + i * 12_345,
                    entries=50 * k,
                    postings=(100 if day.weekday() < 5 else 30) * k,
                    events=150 * k,
                    commands=200 * k,
                    rejections=i % 3,
                )
            )
            if i % 3:
                recorder.add_rejections(day, tenant, {"OVERDRAFT_LIMIT": i % 3})
    recorder.write(folder)
    expectations = [
        {"name": "members onboarded", "tenant": t, "expected": 1, "actual": 1, "passed": True}
        for t in TENANTS
    ]
    if not passed:
        expectations[1] = {**expectations[1], "actual": 0, "passed": False}
        expectations.append({"name": "arrears at 2030-01-01", "actual": None, "passed": None})
    summary = {
        "scenario": {"name": name, "start": start.isoformat(), "days": days},
        "seed": seed,
        "passed": passed,
        "fingerprint": {t: f"{seed:02d}{t[-1]}" + "ab" * 31 for t in TENANTS},
        "invariants": invariants_block(passed),
        "expectations": expectations,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    dates = [start + datetime.timedelta(days=i) for i in range(days)]
    if lending:
        book = 500_000_00
        write_csv(
            folder / "lending.csv",
            [
                "date",
                "tenant_id",
                "loan_book_cents",
                "arrears_30_cents",
                "arrears_60_cents",
                "arrears_90_cents",
                "defaults",
                "losses_cents",
                "approvals",
            ],
            (
                [d.isoformat(), t, book, book // 50, book // 100, book * arrears_pct // 100]
                + [1, 100_00, 3]
                for d in dates
                for t in TENANTS
            ),
        )
    if fraud:

        def surge(day: datetime.date) -> int:
            return 10 if fraud_surge and fraud_surge[0] <= day <= fraud_surge[1] else 1

        write_csv(
            folder / "fraud.csv",
            [
                "date",
                "tenant_id",
                "fraud_losses_cents",
                "detected_cents",
                "prevented_cents",
                "alerts",
                "campaigns_started",
                "takeovers_started",
                "scams_started",
            ],
            (
                [d.isoformat(), t, 50_00 * surge(d), 20_00 * surge(d), 10_00, 2, 3 * surge(d)]
                + [surge(d), surge(d)]
                for d in dates
                for t in TENANTS
            ),
        )
    if cards:
        write_csv(
            folder / "cards.csv",
            [
                "date",
                "tenant_id",
                "cards",
                "limits_cents",
                "balances_cents",
                "revolving_cents",
                "interest_cents",
                "statements",
            ],
            (
                [d.isoformat(), t, 2, 10_000_00, 3_000_00, 1_000_00, 50, 1]
                for d in dates
                for t in TENANTS
            ),
        )
    if macro:
        months = sorted({(d.year, d.month) for d in dates})
        write_csv(
            folder / "macro.csv",
            ["month", "regime", "cash_rate", "unemployment", "inflation", "house_price_index"],
            (
                [f"{y}-{m:02d}", "expansion", "4.35", f"{4 + i}.0", "3.1", 100 + 2 * i]
                for i, (y, m) in enumerate(months)
            ),
        )
    return folder


def section(page: str, heading: str) -> str:
    """The text of one `## heading` section of the page."""
    assert f"## {heading}\n" in page, f"no section {heading!r}"
    return page.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def row_of(page: str, first_cell: str) -> list[str]:
    """The cells of the Markdown table row that starts with ``first_cell``."""
    rows = [line for line in page.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"no single row {first_cell!r}"
    return [cell.strip() for cell in rows[0].strip("|").split(" | ")]


def unavailable_line(page: str, key: str) -> str:
    """The page's 'not available' line of one panel."""
    lines = [line for line in page.splitlines() if line.startswith(f"- **{TITLES[key]}**")]
    assert len(lines) == 1, f"{key} is not listed as not available"
    return lines[0]


def page_only(run_dirs: Sequence[Path], out_dir: Path, labels: Sequence[str] | None = None) -> str:
    """compare.md's text for some run folders, without drawing (for tests of the page alone)."""
    runs = load_runs(run_dirs, labels)
    drawn, skipped = plan_panels(runs)
    return render_page(CompareContext.of(runs), drawn, skipped, out_dir)


def draw_one(key: str, run_dirs: Sequence[Path], path: Path) -> Path:
    """Draw one panel of some run folders into ``path``."""
    runs = load_runs(run_dirs)
    panel = next(p for p in PANELS if p.key == key)
    assert not panel.missing_in(runs)
    panel.draw(CompareContext.of(runs), path)
    return path


def twin(*args: str | Path):  # noqa: ANN201 - typer's Result
    """Invoke `twin ARGS...` in-process."""
    return runner.invoke(app, [str(arg) for arg in args])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def seed8_run(small_scenario, run_scenario, tmp_path_factory):  # noqa: ANN001, ANN201
    """The small scenario run again with seed 8 (a second, different real run)."""
    return run_scenario(small_scenario, tmp_path_factory.mktemp("seed8") / "run", 8)


@pytest.fixture(scope="module")
def real_page(small_run, seed8_run, tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    """compare.md of the two real runs, and its text."""
    out = tmp_path_factory.mktemp("real") / "cmp"
    page = compare_runs([small_run.dir, seed8_run.dir], out)
    return page, page.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def synthetic_pair(tmp_path_factory) -> tuple[Path, Path]:  # noqa: ANN001
    """Two synthetic runs with every table: a baseline and a recession with 4% 90+ arrears."""
    root = tmp_path_factory.mktemp("synthetic")
    base = make_run(root / "baseline-1", name="baseline", seed=1, arrears_pct=2)
    rec = make_run(root / "recession-1", name="recession", seed=1, arrears_pct=4)
    return base, rec


@pytest.fixture(scope="module")
def full_page(synthetic_pair, tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    """compare.md of the synthetic pair (every panel can be drawn)."""
    out = tmp_path_factory.mktemp("full") / "cmp"
    page = compare_runs(list(synthetic_pair), out)
    return page, page.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- real runs


def test_real_runs_draw_every_kpi_panel_as_a_real_png(real_page) -> None:
    """Each panel the KPI tables feed is a non-blank PNG beside the page, embedded by name."""
    page, text = real_page
    charts = section(text, "Charts")
    for key in KPI_PANELS:
        assert_real_png(page.parent / f"{key}.png")
        assert f"({key}.png)" in charts


def test_real_runs_draw_a_newer_panel_exactly_when_both_runs_have_its_table(
    real_page, small_run, seed8_run
) -> None:
    """Lending, fraud and macro panels: drawn if the twin wrote their table, else listed.

    The twin gains these tables issue by issue; whichever it writes today,
    a panel is a real PNG when both runs have its file and is otherwise
    named under "Not available" with both runs and the file they lack.
    """
    page, text = real_page
    for key, file in FUTURE_FILES.items():
        if all((run.dir / file).is_file() for run in (small_run, seed8_run)):
            assert_real_png(page.parent / f"{key}.png")
            assert f"({key}.png)" in section(text, "Charts")
        else:
            assert not (page.parent / f"{key}.png").exists()
            line = unavailable_line(section(text, "Not available"), key)
            assert f"not available in: small (seed 7) (no `{file}`); small (seed 8)" in line


def test_real_runs_page_lists_both_runs_with_verdict_and_fingerprint(
    real_page, small_run, seed8_run
) -> None:
    """The runs table has a row per run: scenario, seed, days, verdict, fingerprint prefix."""
    page, text = real_page
    assert text.startswith("# Comparison: small (seed 7) vs small (seed 8)\n")
    runs = section(text, "Runs")
    for run, seed in ((small_run, 7), (seed8_run, 8)):
        cells = row_of(runs, f"**small (seed {seed})**")
        assert cells[2:6] == ["`small`", str(seed), "5", "✅ PASS"]
        for tenant, head in run.summary["fingerprint"].items():
            assert f"`{tenant}:{head[:12]}`" in cells[6]
        link = cells[1].split("](", 1)[1].rstrip(")")
        assert (page.parent / link).resolve() == (run.dir / "report.md").resolve()


def test_real_runs_headline_kpis_are_exact(real_page, small_run, seed8_run) -> None:
    """Headline deposits, members, entries and rejection rate match the KPI tables exactly."""
    _, text = real_page
    headlines = section(text, "Headline KPIs")
    expected: dict[str, list[str]] = {k: [] for k in ("members", "deposits", "entries", "rate")}
    for run in (small_run, seed8_run):
        rows = read_kpis(run.dir)
        last = max(r.date for r in rows)
        final = [r for r in rows if r.date == last]
        expected["members"].append(f"{sum(r.members for r in final):,}")
        expected["deposits"].append(aud_text(sum(r.deposits_cents for r in final)))
        expected["entries"].append(f"{sum(r.entries for r in rows):,}")
        rate = 100 * sum(r.rejections for r in rows) / sum(r.commands for r in rows)
        expected["rate"].append(f"{rate:.2f}%")
    assert row_of(headlines, "final members")[1:] == expected["members"]
    assert row_of(headlines, "deposits, end (AUD)")[1:] == expected["deposits"]
    assert row_of(headlines, "entries")[1:] == expected["entries"]
    assert row_of(headlines, "rejection rate (of commands)")[1:] == expected["rate"]
    assert "," in expected["deposits"][0]  # thousands separators: AUD 2 million and up
    books = []  # the twin's lending model writes lending.csv: the loan book on the last day
    for run in (small_run, seed8_run):
        with (run.dir / "lending.csv").open(newline="") as handle:
            lending = list(csv.DictReader(handle))
        end = max(row["date"] for row in lending)
        books.append(aud_text(sum(int(r["loan_book_cents"]) for r in lending if r["date"] == end)))
    assert row_of(headlines, "loan book, end (AUD)")[1:] == books


def test_verdicts_table_shows_each_invariant_per_run(real_page, small_run) -> None:
    """Every invariant has a row with a pass mark and its examined count for each run."""
    _, text = real_page
    verdicts = section(text, "Invariants and expectations")
    for name in INVARIANTS:
        cells = row_of(verdicts, f"`{name}`")
        examined = small_run.summary["invariants"][name]["examined"]
        assert cells[1] == f"✅ pass ({examined:,} examined)"
        assert cells[2].startswith("✅ pass")
    total = len(small_run.summary["expectations"])
    assert row_of(verdicts, "expectations met")[1] == f"{total} of {total}"


# --------------------------------------------------------------------------- future tables


def test_every_panel_is_drawn_from_synthetic_tables(full_page) -> None:
    """With lending, fraud and macro tables in both runs every panel is a real PNG."""
    page, text = full_page
    for panel in PANELS:
        assert_real_png(page.parent / panel.file)
        assert f"![{panel.title}]({panel.file})" in text
    assert "## Not available" not in text


def test_headline_kpis_from_lending_and_fraud_tables(full_page) -> None:
    """Loan book, 90+ arrears rate, losses and fraud losses are exact sums of the tables."""
    _, text = full_page
    headlines = section(text, "Headline KPIs")
    # 2 tenants x AUD 500,000.00; 40 days x 2 tenants of AUD 100.00 losses, AUD 50.00 fraud.
    assert row_of(headlines, "loan book, end (AUD)")[1:] == ["1,000,000.00"] * 2
    assert row_of(headlines, "90+ days arrears, end (% of loan book)")[1:] == ["2.00%", "4.00%"]
    assert row_of(headlines, "credit losses (AUD)")[1:] == ["8,000.00"] * 2
    assert row_of(headlines, "fraud losses (AUD)")[1:] == ["4,000.00"] * 2
    assert row_of(headlines, "fraud detected (AUD)")[1:] == ["1,600.00"] * 2


def test_monthly_fraud_sums_each_calendar_month(tmp_path) -> None:
    """Per-month fraud is the exact sum of the month's rows: a three-month surge is a step."""
    surge = (datetime.date(2025, 8, 1), datetime.date(2025, 10, 31))
    spike = make_run(tmp_path / "spike", name="fraud_spike", seed=1, days=184, fraud_surge=surge)
    table = read_table(spike / "fraud.csv")
    months, losses = _monthly(table, "fraud_losses_cents")
    assert months == [datetime.date(2025, m, 1) for m in range(7, 13)]
    # 2 tenants x AUD 50.00 a day; ten-fold from August to October.
    days = [31, 31, 30, 31, 30, 31]
    factor = [1, 10, 10, 10, 1, 1]
    assert losses.tolist() == [2 * 50_00 * n * f for n, f in zip(days, factor, strict=True)]
    _, started = _monthly(table, "campaigns_started")
    assert started.tolist() == [2 * 3 * n * f for n, f in zip(days, factor, strict=True)]


def test_monthly_fraud_chart_shows_a_surge(tmp_path) -> None:
    """The per-month panel of baseline vs spike differs from one where the spike is missing.

    Both pairs have the same labels, so only the data can make the PNGs differ.
    """
    surge = (datetime.date(2025, 8, 1), datetime.date(2025, 10, 31))
    base = make_run(tmp_path / "b1", name="baseline", seed=1, days=184)
    again = make_run(tmp_path / "b2", name="fraud_spike", seed=1, days=184)
    spike = make_run(tmp_path / "s", name="fraud_spike", seed=1, days=184, fraud_surge=surge)
    same = draw_one("fraud_monthly", [base, again], tmp_path / "same.png")
    differ = draw_one("fraud_monthly", [base, spike], tmp_path / "differ.png")
    assert_real_png(differ)
    assert same.read_bytes() != differ.read_bytes()


def test_arrears_chart_shows_the_difference_between_runs(synthetic_pair, tmp_path) -> None:
    """The arrears panel is drawn from the data: two baselines differ from baseline vs recession."""
    base, rec = synthetic_pair
    twin_base = make_run(tmp_path / "baseline-2", name="baseline", seed=1, arrears_pct=2)
    same = draw_one("arrears", [base, twin_base], tmp_path / "same.png")
    differ = draw_one("arrears", [base, rec], tmp_path / "differ.png")
    assert_real_png(same)
    assert same.read_bytes() != differ.read_bytes()


def test_panel_needs_every_run_to_have_its_table(tmp_path) -> None:
    """A table only one run has: its panels are not drawn and name the run that lacks it."""
    with_all = make_run(tmp_path / "a", name="baseline", seed=1, macro=False)
    no_lending = make_run(tmp_path / "b", name="recession", seed=1, lending=False, macro=False)
    page = compare_runs([with_all, no_lending], tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    for key in ("loan_book", "arrears", "defaults_losses"):
        line = unavailable_line(text, key)
        assert line.endswith("not available in: recession (seed 1) (no `lending.csv`)")
        assert not (page.parent / f"{key}.png").exists()
    for key in ("fraud", "deposits_total"):
        assert_real_png(page.parent / f"{key}.png")
    assert "(no `macro.csv`); recession (seed 1) (no `macro.csv`)" in unavailable_line(
        text, "macro"
    )
    assert row_of(text, "loan book, end (AUD)")[1:] == ["1,000,000.00", "—"]


def test_a_table_with_no_rows_counts_as_present_but_shows_dashes(tmp_path) -> None:
    """A header-only lending.csv: its panels are drawn (no rows), its headlines are dashes."""
    a = make_run(tmp_path / "a", name="baseline", seed=1, fraud=False, macro=False)
    b = make_run(tmp_path / "b", name="baseline", seed=2, fraud=False, macro=False)
    header = (b / "lending.csv").read_text(encoding="utf-8").splitlines()[0]
    (b / "lending.csv").write_text(header + "\n", encoding="utf-8")
    text = page_only([a, b], tmp_path / "out")
    assert "(arrears.png)" in section(text, "Charts")
    assert row_of(text, "loan book, end (AUD)")[1:] == ["1,000,000.00", "—"]
    assert row_of(text, "credit losses (AUD)")[1:] == ["8,000.00", "—"]
    assert row_of(text, "90+ days arrears, end (% of loan book)")[1:] == ["2.00%", "—"]


def test_missing_column_is_named_and_only_its_panels_are_skipped(tmp_path) -> None:
    """lending.csv without arrears_90_cents: the arrears panel says so; the loan book is drawn."""
    a = make_run(tmp_path / "a", name="baseline", seed=1, fraud=False, macro=False)
    b = make_run(tmp_path / "b", name="baseline", seed=2, fraud=False, macro=False)
    table = read_table(b / "lending.csv")
    header = [c for c in table.columns if c != "arrears_90_cents"]
    with (b / "lending.csv").open(encoding="utf-8") as fh:
        rows = [dict(zip(table.columns, r, strict=True)) for r in list(csv.reader(fh))[1:]]
    write_csv(b / "lending.csv", header, ([r[c] for c in header] for r in rows))
    text = page_only([a, b], tmp_path / "out")
    line = unavailable_line(text, "arrears")
    assert "baseline (seed 2) (`lending.csv` has no column arrears_90_cents)" in line
    assert "baseline (seed 1)" not in line
    charts = section(text, "Charts")
    assert "(loan_book.png)" in charts
    assert "(defaults_losses.png)" in charts
    assert "(arrears.png)" not in charts
    assert row_of(text, "90+ days arrears, end (% of loan book)")[1:] == ["2.00%", "—"]


def test_runs_starting_on_different_dates_share_an_elapsed_time_axis(tmp_path) -> None:
    """Scenarios starting on different dates align on days since start; the page says so."""
    a = make_run(tmp_path / "a", name="baseline", seed=1, lending=False, fraud=False, macro=False)
    b = make_run(
        tmp_path / "b",
        name="recession",
        seed=1,
        start=datetime.date(2026, 1, 1),
        lending=False,
        fraud=False,
        macro=False,
    )
    assert "Time axis: days since each run's start" in page_only([a, b], tmp_path / "out")
    assert_real_png(draw_one("deposits_total", [a, b], tmp_path / "elapsed.png"))
    c = make_run(tmp_path / "c", name="x", seed=2, lending=False, fraud=False, macro=False)
    aligned = page_only([a, c], tmp_path / "out")
    assert "Time axis: calendar dates (every run starts on 2025-07-01)" in aligned


def test_failed_run_shows_fail_in_runs_and_verdicts(tmp_path) -> None:
    """A failing run is marked FAIL, its failed invariant and expectation are named."""
    good = make_run(tmp_path / "good", name="baseline", seed=1, lending=False, fraud=False)
    bad = make_run(tmp_path / "bad", name="baseline", seed=2, passed=False, lending=False)
    text = page_only([good, bad], tmp_path / "out")
    runs = section(text, "Runs")
    assert row_of(runs, "**baseline (seed 1)**")[5] == "✅ PASS"
    assert row_of(runs, "**baseline (seed 2)**")[5] == "❌ FAIL"
    verdicts = section(text, "Invariants and expectations")
    assert row_of(verdicts, f"`{INVARIANTS[0]}`")[1:] == [
        "✅ pass (1,000 examined)",
        "❌ FAIL (1,000 examined)",
    ]
    assert row_of(verdicts, "expectations met")[1:] == ["2 of 2", "1 of 2; 1 not reached"]
    assert "- baseline (seed 2): “members onboarded” [cu-b] — expected 1, actual 0" in verdicts


def test_labels_default_unique_and_custom_labels_are_used(tmp_path) -> None:
    """Same scenario and seed in two folders get folder-qualified labels; --label wins."""
    a = make_run(tmp_path / "first", name="baseline", seed=1, lending=False, fraud=False)
    b = make_run(tmp_path / "second", name="baseline", seed=1, lending=False, fraud=False)
    text = page_only([a, b], tmp_path / "out")
    assert "# Comparison: baseline (seed 1) [first] vs baseline (seed 1) [second]" in text
    custom = page_only([a, b], tmp_path / "out", labels=["before fix", "after fix"])
    assert custom.startswith("# Comparison: before fix vs after fix\n")
    headlines = section(custom, "Headline KPIs")
    assert headlines.splitlines()[1] == "| KPI | before fix | after fix |"


def test_read_table_types_known_columns_and_keeps_the_header(tmp_path) -> None:
    """Known columns are typed (YYYY-MM months, decimals, ints); unknown ones are tolerated."""
    path = write_csv(
        tmp_path / "macro.csv",
        ["month", "regime", "cash_rate", "extra"],
        [["2025-07", "recession", "0.0435", "x"]],
    )
    table = read_table(path)
    assert table.columns == ("month", "regime", "cash_rate", "extra")
    assert table.rows == ({"month": datetime.date(2025, 7, 1), "cash_rate": 0.0435},)


def test_every_panel_need_is_a_known_typed_column() -> None:
    """Panels only ask for columns the schema types (else a typo would hide a panel forever)."""
    keys = [panel.key for panel in PANELS]
    assert len(keys) == len(set(keys))
    assert set(KPI_PANELS + FUTURE_PANELS) == set(keys)
    for panel in PANELS:
        for need in panel.needs:
            assert need.file in TABLE_SCHEMAS, panel.key
            assert set(need.columns) <= set(TABLE_SCHEMAS[need.file]), panel.key


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path]:  # noqa: ANN001
    """Two small synthetic runs (KPI tables only), private to the test."""
    kinds = {"lending": False, "fraud": False, "macro": False, "days": 10}
    a = make_run(tmp_path / "runs" / "a", name="baseline", seed=1, **kinds)
    b = make_run(tmp_path / "runs" / "b", name="recession", seed=1, **kinds)
    return a, b


@pytest.fixture
def bare_runs(tmp_path) -> tuple[Path, Path]:  # noqa: ANN001
    """Two run folders with only a summary.json: nothing to draw, so quick to compare."""
    folders = []
    for name, deposits in (("a", 123_456_789), ("b", 1_000_000_000_01)):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        tenant = {
            "members": 10,
            "deposits_cents": deposits,
            "entries": 7,
            "commands": 200,
            "rejections": {"OVERDRAFT_LIMIT": 3},
        }
        summary = {"scenario": {"name": name, "days": 3}, "seed": 5, "tenants": {"cu-a": tenant}}
        (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        folders.append(folder)
    return folders[0], folders[1]


def break_cell(path: Path, line: int, column: str, value: str) -> None:
    """Replace one cell of a CSV (line numbers count the header as 1)."""
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(column)] = value
    write_csv(path, rows[0], rows[1:])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("one_run", "need at least two run folders to compare, got 1"),
        ("missing", "{b}: no such run folder"),
        ("no_summary", "{b}: not a run folder (no summary.json)"),
        ("bad_json", "{b}/summary.json:1: invalid JSON"),
        ("bad_int", "{b}/kpis.csv:3: deposits_cents '12.5' is not an integer"),
        ("bad_date", "{b}/rejections.csv:2: date '2025-13-01' is not a date"),
        ("short_row", "{b}/kpis.csv:4: expected 10 cells, got 9"),
        ("bad_lending", "{b}/lending.csv:2: loan_book_cents 'lots' is not an integer"),
        ("twice", "{a}: given twice"),
        ("labels", "--label: 1 label(s) for 2 runs"),
    ],
)
def test_bad_input_raises_compare_error_naming_the_place(
    two_runs, tmp_path, damage: str, message: str
) -> None:
    """Each kind of bad input is a CompareError naming folder, file and line; nothing written."""
    a, b = two_runs
    dirs: list[Path] = [a, b]
    labels = None
    if damage == "one_run":
        dirs = [a]
    elif damage == "missing":
        b = b.with_name("nope")
        dirs = [a, b]
    elif damage == "no_summary":
        (b / "summary.json").unlink()
    elif damage == "bad_json":
        (b / "summary.json").write_text("{not json", encoding="utf-8")
    elif damage == "bad_int":
        break_cell(b / "kpis.csv", 3, "deposits_cents", "12.5")
    elif damage == "bad_date":
        break_cell(b / "rejections.csv", 2, "date", "2025-13-01")
    elif damage == "short_row":
        with (b / "kpis.csv").open(encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        lines[3] = lines[3].rsplit(",", 1)[0]
        (b / "kpis.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif damage == "bad_lending":
        write_csv(
            b / "lending.csv", ["date", "tenant_id", "loan_book_cents"], [[START, "x", "lots"]]
        )
    elif damage == "twice":
        dirs = [a, a]
    elif damage == "labels":
        labels = ["only one"]
    out = tmp_path / "out"
    with pytest.raises(CompareError) as info:
        compare_runs(dirs, out, labels)
    assert message.format(a=a, b=b) in str(info.value)
    assert not out.exists()


def test_summary_only_runs_fall_back_to_the_summary_and_list_every_panel(
    bare_runs, tmp_path
) -> None:
    """Runs without tables: headline KPIs come from summary.json; no panel is drawn."""
    a, b = bare_runs
    page = compare_runs([a, b], tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    headlines = section(text, "Headline KPIs")
    assert row_of(headlines, "deposits, end (AUD)")[1:] == ["1,234,567.89", "1,000,000,000.01"]
    assert row_of(headlines, "rejection rate (of commands)")[1:] == ["1.50%", "1.50%"]
    assert "_No panel could be drawn for every run._" in text
    assert "(no `kpis.csv`)" in unavailable_line(text, "deposits_total")
    assert sorted(p.name for p in page.parent.iterdir()) == ["compare.md"]


def test_non_empty_output_needs_force_and_force_replaces_only_comparison_files(
    bare_runs, tmp_path
) -> None:
    """A non-empty folder is refused; with force the page is rewritten, stale panels go."""
    a, b = bare_runs
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    (out / "loan_book.png").write_bytes(b"stale panel from an earlier comparison")
    with pytest.raises(CompareError, match="folder is not empty"):
        compare_runs([a, b], out)
    assert not (out / "compare.md").exists()
    page = compare_runs([a, b], out, force=True)
    assert page == out / "compare.md"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not (out / "loan_book.png").exists()
    assert "# Comparison: a (seed 5) vs b (seed 5)" in page.read_text(encoding="utf-8")


def test_output_cannot_be_a_compared_run_folder(bare_runs) -> None:
    """Writing the comparison into one of its inputs is refused, even with force."""
    a, b = bare_runs
    with pytest.raises(CompareError, match="is one of the compared run folders"):
        compare_runs([a, b], b, force=True)
    assert not (b / "compare.md").exists()


def test_default_out_dir_is_named_after_the_run_folders() -> None:
    """runs/compare-<run1>-vs-<run2>: folder names, unique where scenario names are not."""
    got = default_out_dir([Path("runs/baseline-42"), Path("runs/recession-42")])
    assert got == Path("runs/compare-baseline-42-vs-recession-42")


# --------------------------------------------------------------------------- CLI


def test_cli_compare_writes_the_page_and_prints_its_path(bare_runs, tmp_path) -> None:
    """`twin compare A B --out DIR --label x --label y` exits 0 and prints the page path."""
    a, b = bare_runs
    out = tmp_path / "cmp"
    result = twin("compare", a, b, "--out", out, "--label", "x", "--label", "y")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "compare.md")
    assert "# Comparison: x vs y" in (out / "compare.md").read_text(encoding="utf-8")


def test_cli_compare_defaults_to_a_folder_under_runs(bare_runs, tmp_path, monkeypatch) -> None:
    """Without --out the page goes to runs/compare-a-vs-b/ under the working folder."""
    a, b = bare_runs
    monkeypatch.chdir(tmp_path)
    result = twin("compare", a, b)
    assert result.exit_code == 0, result.output
    page = Path("runs") / "compare-a-vs-b" / "compare.md"
    assert result.stdout.strip() == str(page)
    assert (tmp_path / page).is_file()


@pytest.mark.parametrize("case", ["one_run", "missing", "not_empty"])
def test_cli_compare_bad_input_exits_2_with_a_message(bare_runs, tmp_path, case: str) -> None:
    """One run, a missing folder, or a non-empty --out without --force: exit 2, `twin: error:`."""
    a, b = bare_runs
    out = tmp_path / "cmp"
    args: list[str | Path] = ["compare", a, b, "--out", out]
    expected = ""
    if case == "one_run":
        args = ["compare", a, "--out", out]
        expected = "need at least two run folders"
    elif case == "missing":
        args = ["compare", a, tmp_path / "nope", "--out", out]
        expected = f"{tmp_path / 'nope'}: no such run folder"
    else:
        out.mkdir()
        (out / "old.md").write_text("x", encoding="utf-8")
        expected = "pass --force"
    result = twin(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("twin: error: ")
    assert expected in result.stderr
    assert not (out / "compare.md").exists()
    if case == "not_empty":
        forced = twin(*args, "--force")
        assert forced.exit_code == 0, forced.output
        assert (out / "compare.md").is_file()
