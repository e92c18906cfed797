"""Lending (`models.lending`): loans through the twin, exact to the cent, and their arrears.

The end-to-end tests run a small "lending world" through `sim.twin.Twin`: two
credit unions of 150 members over 15 months, where most members already hold
a loan (so that 300 members carry ~250 loans) and payments are fewer and
larger than by default (the same monthly budget in a quarter of the
entries, which is what keeps fifteen runs fast). Its book is riskier than
the default one (a higher monthly miss hazard), so that five seeds hold
enough defaults to compare scenarios; the tests compare *directions*, not
levels.

The same seeds run three economies: the baseline, a recession
(unemployment to 8% over 12 months) and a rate shock (cash rate +3 points
over 12 months). Runs with one seed share every random stream the scenario
does not touch, and each loan draws its fate from its own stream, so the
comparisons are paired by seed (one-sided paired t-tests, alpha 0.05).
Charts are not drawn (they are not under test here and cost half a second
a run).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

import sim.twin
from analysis.compare import LENDING_FILE as COMPARE_LENDING_FILE
from analysis.expectations import KNOWN_KPIS, evaluate
from analysis.invariants import INVARIANT_NAMES
from analysis.kpis import KpiRow
from models.amortization import accumulation_factor, schedule
from models.lending import (
    LENDING_COLUMNS,
    LENDING_FILE,
    LENDING_SOURCES,
    LOANS_FILE,
    LendingParams,
    arrears_bucket,
    migrated_balance,
)
from models.loan_products import HOME_FIXED, HOME_VARIABLE, PERSONAL, loan_products
from models.params import SOURCES, Behaviour
from scenarios.loader import ScenarioError, parse_scenario
from scenarios.schema import DeclaredExpectation
from sim.twin import RunOptions, Twin

SEEDS = (1, 2, 3, 4, 5)
ALPHA = 0.05
START = date(2025, 7, 1)
DAYS = 455
#: Arrears are compared over the last nine months (months 7-15: unemployment 6-8%
#: in the recession, the cash rate up 1.5-3 points in the rate shock).
WINDOW_DAYS = 270

LEAN_PAYMENTS = """\
  card_spend: {rate_per_day: 0.03, mean_amount: 1571.67}
  bpay: {rate_per_day: 0.03, mean_amount: 1540.00}
  npp_out: {rate_per_day: 0.03, mean_amount: 1866.67}
  npp_in: {rate_per_day: 0.02, mean_amount: 360.00}
  savings_transfer: {rate_per_day: 0.01, mean_amount: 900.00}
"""

ECONOMIES = {
    "baseline": "",
    "recession": "economy:\n  shocks:\n"
    "    - {at: 2025-07-01, kind: unemployment, to: 8.0, over_months: 12}\n",
    "rate_shock": "economy:\n  shocks:\n"
    "    - {at: 2025-07-01, kind: cash_rate, by: 3.0, over_months: 12, hold: true}\n",
}

WORLD_YAML = """\
name: lending-{economy}
description: a small credit union pair where most members borrow
start: 2025-07-01
days: {days}
seed: 1
behaviour:
{payments}{lending}
{economy_block}
tenants:
  - id: cu-a
    code: CU_A
    display_name: Alpha Lending Credit Union
    archetype: small
    state: NSW
    members: {members}
    annual_growth: 0.0
  - id: cu-b
    code: CU_B
    display_name: Bravo Lending Credit Union
    archetype: mid
    state: VIC
    members: {members}
    annual_growth: 0.0
{expectations}"""

RISKY_BOOK = """\
  lending:
    home: {initial_share: 0.8, miss_monthly: 0.01}
    personal: {initial_share: 0.4, miss_monthly: 0.02}
"""

DECLARED = """\
expectations:
  - {name: a loan book exists, kpi: loan_book_cents, tenant: all, at: 2026-09-28, min: 1}
  - {name: approval rate is a rate, kpi: approval_rate, tenant: cu-a, at: 2026-09-28, min: 0,
     max: 1}
  - {name: 90+ arrears rate is a rate, kpi: arrears_90_rate, tenant: all, at: 2026-09-28,
     window_days: 30, min: 0, max: 1}
  - {name: defaults counted, kpi: defaults, tenant: all, at: 2026-09-28, min: 0}
  - {name: losses counted, kpi: losses_cents, tenant: all, at: 2026-09-28, min: 0}
"""


def world_yaml(
    economy: str,
    *,
    days: int = DAYS,
    members: int = 150,
    lending: str = RISKY_BOOK,
    expectations: str = "",
) -> str:
    """The lending world's scenario text for one economy."""
    return WORLD_YAML.format(
        economy=economy.replace("_", "-"),
        days=days,
        payments=LEAN_PAYMENTS,
        lending=lending,
        economy_block=ECONOMIES[economy],
        members=members,
        expectations=expectations,
    )


def run_world(text: str, seed: int, out: Path, keep_events: bool = False) -> Any:
    """Run a scenario text with `seed` into `out` (no progress bar, no charts)."""
    scenario = parse_scenario(text, "lending-world.yaml")
    options = RunOptions(out_dir=out, progress=False, keep_events=keep_events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sim.twin, "draw_charts", lambda *args, **kwargs: [])
        return Twin(scenario, seed, options).run()


def read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV table of the run folder as dicts."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Any]:
    """(economy, seed) -> outcome of the lending world; baseline seed 1 keeps its events."""
    root = tmp_path_factory.mktemp("lending")
    outcomes = {}
    for seed in SEEDS:
        for economy in ECONOMIES:
            text = world_yaml(economy, expectations=DECLARED if economy == "baseline" else "")
            keep = economy == "baseline" and seed == SEEDS[0]
            outcomes[(economy, seed)] = run_world(text, seed, root / f"{economy}-{seed}", keep)
    return outcomes


@pytest.fixture(scope="module")
def baseline(runs: dict[tuple[str, int], Any]) -> Any:
    """The baseline run of the first seed."""
    return runs[("baseline", SEEDS[0])]


def window_rate(outcome: Any, arrears: str, book: str) -> float:
    """Sum of an arrears column over the last WINDOW_DAYS days / sum of a book column."""
    rows = read_rows(outcome.out_dir / LENDING_FILE)
    last = date.fromisoformat(rows[-1]["date"])
    first = (last - timedelta(days=WINDOW_DAYS - 1)).isoformat()
    tail = [row for row in rows if row["date"] >= first]
    return sum(int(r[arrears]) for r in tail) / sum(int(r[book]) for r in tail)


# ------------------------------------------------------------------ pure parts


def test_products_are_priced_off_the_cash_rate() -> None:
    """Variable = cash rate + margin (to the basis point); fixed and personal rates as set."""
    products = {p.product_code: p for p in loan_products(LendingParams(), 3.85)}
    assert set(products) == {PERSONAL, HOME_VARIABLE, HOME_FIXED}
    assert all(p.product_type == "LOAN" for p in products.values())
    assert products[HOME_VARIABLE].interest.rate == Decimal("6.15")
    assert products[HOME_FIXED].interest.rate == Decimal("5.90")
    assert products[PERSONAL].interest.rate == Decimal("11.50")
    assert products[PERSONAL].constraints.term_months_options == [12, 24, 36, 48, 60, 72, 84]
    criteria = products[HOME_VARIABLE].credit_criteria
    assert (criteria.min_income, criteria.max_dti_ratio, criteria.min_credit_score) == (
        4_000_000,
        Decimal("0.50"),
        620,
    )
    shifted = {p.product_code: p for p in loan_products(LendingParams(), 6.849)}
    assert shifted[HOME_VARIABLE].interest.rate == Decimal("9.15")


def leaves(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted key paths of every leaf of a dumped parameter tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def test_every_lending_default_has_a_source() -> None:
    """Each leaf of LendingParams has a source, and `twin params` lists it under behaviour."""
    defaults = LendingParams().model_dump(mode="json")
    assert set(leaves(defaults)) == set(LENDING_SOURCES)
    assert all(source.strip() for source in LENDING_SOURCES.values())
    assert Behaviour().lending == LendingParams()
    for key in LENDING_SOURCES:
        assert SOURCES[f"lending.{key}"] == LENDING_SOURCES[key]


def test_a_typo_in_the_lending_block_fails_loading() -> None:
    """Unknown lending keys are errors, like every behaviour block."""
    text = world_yaml("baseline", lending="  lending: {home: {miss_montly: 0.01}}\n")
    with pytest.raises(ScenarioError, match="lending.home.miss_montly: unknown key"):
        parse_scenario(text, "typo.yaml")


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(0, 0), (1, 0), (29, 0), (30, 30), (59, 30), (60, 60), (89, 60), (90, 90), (400, 90)],
)
def test_arrears_buckets_are_disjoint(days: int, bucket: int) -> None:
    """30-59, 60-89 and 90+ days past due, as analysis.compare reads them."""
    assert arrears_bucket(days) == bucket


@pytest.mark.parametrize(
    ("principal", "rate", "months", "paid"),
    [
        (45_000_000, Decimal("6.15"), 360, 0),
        (45_000_000, Decimal("6.15"), 360, 1),
        (45_000_000, Decimal("6.15"), 360, 117),
        (1_500_000, Decimal("11.50"), 60, 59),
        (1_200_000, Decimal("0"), 12, 5),
    ],
)
def test_migrated_balance_follows_the_schedule(
    principal: int, rate: Decimal, months: int, paid: int
) -> None:
    """The closed-form balance after k instalments is the schedule's, to its rounding drift.

    Each month's interest is rounded to half a cent at most, and that error
    compounds by (1 + r), so the schedule can differ from the closed form by
    at most ``s_k / 2`` cents (0 when nothing was paid or the rate is 0).
    """
    balance = migrated_balance(principal, rate, months, paid)
    rows = schedule(principal, rate, months, START)
    expected = principal if paid == 0 else rows[paid - 1].closing_balance
    drift = float(accumulation_factor(rate, paid)) / 2 if rate else 0.0
    assert abs(balance - expected) <= drift
    assert balance > 0
    with pytest.raises(ValueError, match="paid"):
        migrated_balance(principal, rate, months, months)


def test_lending_kpis_are_registered_and_sum_tenants() -> None:
    """arrears_90_rate, loan_book_cents, defaults, losses_cents, approval_rate from series."""
    assert {"arrears_90_rate", "loan_book_cents", "defaults", "losses_cents", "approval_rate"} <= (
        set(KNOWN_KPIS)
    )
    day1, day2 = date(2025, 7, 1), date(2025, 7, 2)
    series: dict[str, dict[tuple[str, date], int]] = {
        "loan_book_cents": {("a", day1): 1000, ("b", day1): 3000, ("a", day2): 900, ("b", day2): 0},
        "arrears_90_cents": {("a", day1): 10, ("b", day1): 30, ("a", day2): 90, ("b", day2): 0},
        "loan_defaults": {("a", day1): 1, ("b", day1): 0, ("a", day2): 2, ("b", day2): 1},
        "loan_losses_cents": {("a", day1): 0, ("b", day1): 5, ("a", day2): 7, ("b", day2): 0},
        "loan_applications": {("a", day1): 4, ("b", day1): 0, ("a", day2): 4, ("b", day2): 2},
        "loan_approvals": {("a", day1): 3, ("b", day1): 0, ("a", day2): 1, ("b", day2): 1},
    }
    rows = [
        KpiRow(day, tenant, 1, 1, 1, 1, 1, 1, 1, 0) for day in (day1, day2) for tenant in ("a", "b")
    ]

    def declared(kpi: str, tenant: str, window: int | None = None) -> DeclaredExpectation:
        return DeclaredExpectation(
            name=kpi, kpi=kpi, tenant=tenant, at=day2, window_days=window, min=Decimal(0)
        )

    items = evaluate(
        [
            declared("loan_book_cents", "all"),
            declared("arrears_90_rate", "a"),
            declared("arrears_90_rate", "all", 2),
            declared("defaults", "all"),
            declared("losses_cents", "b"),
            declared("approval_rate", "all"),
        ],
        rows,
        (),
        series,
    )
    assert all(item["passed"] is True for item in items), items
    # book on day 2; 90/900; (10+30+90+0)/(1000+3000+900+0); 1+0+2+1; 5+0; 5/10
    expected = [900, 0.1, round(130 / 4900, 6), 4, 5, 0.5]
    assert [item["actual"] for item in items] == expected
    empty = {**series, "loan_book_cents": {key: 0 for key in series["loan_book_cents"]}}
    (undefined,) = evaluate([declared("arrears_90_rate", "all")], rows, (), empty)
    assert undefined["passed"] is False
    assert "empty" in undefined["detail"]


# ------------------------------------------------------------------ through the twin


def test_lending_world_passes_with_every_invariant(baseline: Any) -> None:
    """The run PASSes: five invariants, the twin's own checks and the lending ones."""
    summary = baseline.summary
    assert baseline.passed, [e for e in summary["expectations"] if e["passed"] is False]
    assert set(summary["invariants"]) == set(INVARIANT_NAMES)
    assert all(report["passed"] for report in summary["invariants"].values())
    names = {(e["name"], e["tenant"]): e for e in summary["expectations"]}
    for tenant in ("cu-a", "cu-b"):
        for name in (
            "shadow book equals read model (member deposits, cents)",
            "shadow book equals event replay (all accounts incl. GL, cents)",
            "loans: principal repaid + written off + outstanding equals amount lent (cents)",
            "loan balances: shadow book equals the amortization model (cents owed)",
        ):
            assert names[(name, tenant)]["passed"] is True, names[(name, tenant)]
        assert names[("loan approval rate beside the configured target", tenant)]["actual"]
    declared = [e for e in summary["expectations"] if e["name"] in DECLARED]
    assert len(declared) == 5
    assert all(e["passed"] is True for e in declared), declared


def test_loans_are_on_the_platform(baseline: Any, events_in: Any) -> None:
    """Every loan account was opened on a LOAN product with its facility, and is owed money."""
    loans = read_rows(baseline.out_dir / LOANS_FILE)
    assert {row["product"] for row in loans} == {PERSONAL, HOME_VARIABLE, HOME_FIXED}
    assert len(loans) > 200
    for tenant in ("cu-a", "cu-b"):
        events = events_in(baseline.out_dir, tenant)
        opened = {
            e["entityId"]
            for e in events
            if e["eventType"] == "AccountOpened" and e["payload"]["productType"] == "LOAN"
        }
        facilities = {e["entityId"] for e in events if e["eventType"] == "LoanFacilityCreated"}
        mine = {row["account_id"] for row in loans if row["tenant_id"] == tenant}
        assert mine == opened == facilities
        balances: dict[str, int] = {}
        for event in events:
            if event["eventType"] == "AccountBalanceUpdated":
                payload = event["payload"]
                balances[payload["accountId"]] = payload["balanceCents"]
        for row in loans:
            if row["tenant_id"] == tenant:
                assert balances[row["account_id"]] == -int(row["balance_cents"])
                assert int(row["balance_cents"]) >= 0


def test_lending_csv_has_what_compare_needs(baseline: Any) -> None:
    """lending.csv: one row per tenant per day with the columns `twin compare` reads."""
    assert COMPARE_LENDING_FILE == LENDING_FILE
    rows = read_rows(baseline.out_dir / LENDING_FILE)
    assert tuple(rows[0]) == LENDING_COLUMNS
    needed = {
        "date",
        "tenant_id",
        "loan_book_cents",
        "arrears_30_cents",
        "arrears_60_cents",
        "arrears_90_cents",
        "defaults",
        "losses_cents",
    }
    assert needed <= set(rows[0])
    assert len(rows) == 2 * DAYS
    assert [row["date"] for row in rows[:4]] == ["2025-07-01", "2025-07-01", "2025-07-02"] + [
        "2025-07-02"
    ]
    for row in rows:
        book = int(row["loan_book_cents"])
        buckets = sum(int(row[f"arrears_{n}_cents"]) for n in (1, 30, 60, 90))
        assert 0 <= buckets <= book
    totals = {name: sum(int(r[name]) for r in rows) for name in ("applications", "approvals")}
    assert 0 < totals["approvals"] <= totals["applications"]


def test_fully_repaid_loans_repaid_exactly_what_was_lent(baseline: Any) -> None:
    """Principal repaid sums to the amount lent, to the cent, for every loan repaid in full."""
    loans = read_rows(baseline.out_dir / LOANS_FILE)
    closed = [row for row in loans if row["status"] == "CLOSED"]
    assert len(closed) >= 20
    for row in closed:
        assert int(row["principal_repaid_cents"]) == int(row["lent_cents"]), row
        assert int(row["balance_cents"]) == 0
        assert int(row["interest_paid_cents"]) == int(row["interest_charged_cents"]), row
    for row in loans:
        if row["status"] in ("OPEN", "DEFAULTED"):
            assert int(row["balance_cents"]) > 0


def test_arrears_roll_30_60_90_then_default(tmp_path: Path) -> None:
    """Borrowers who never pay again roll 30 -> 60 -> 90+ days past due, then default.

    Every borrower misses from their first instalment (miss hazard 1 whatever
    the economy or score, no cure, no hardship, no payouts), so the book's arrears move through the
    buckets one month apart, each a month after the first due dates.
    """
    never_pay = """\
  lending:
    cure_monthly_employed: 0.0
    cure_monthly_unemployed: 0.0
    hardship_share: 0.0
    unemployment_sensitivity: 0.0
    score_sensitivity: 0.0
    home: {initial_share: 0.5, miss_monthly: 1.0, discharge_monthly: 0.0, application_monthly: 0}
    personal: {initial_share: 0.3, miss_monthly: 1.0, discharge_monthly: 0.0,
               application_monthly: 0}
"""
    outcome = run_world(
        world_yaml("baseline", days=160, members=40, lending=never_pay), 3, tmp_path / "run"
    )
    assert outcome.passed
    rows = read_rows(outcome.out_dir / LENDING_FILE)
    for tenant in ("cu-a", "cu-b"):
        mine = [row for row in rows if row["tenant_id"] == tenant]

        def first(column: str, rows: list[dict[str, str]] = mine) -> date:
            return next(date.fromisoformat(r["date"]) for r in rows if int(r[column]) > 0)

        # Missed on its due date, a loan is 1 day past due the next day.
        due = first("arrears_1_cents") - timedelta(days=1)
        assert START <= due < START + timedelta(days=31)
        assert first("arrears_30_cents") == due + timedelta(days=30)
        assert first("arrears_60_cents") == due + timedelta(days=60)
        assert first("arrears_90_cents") == due + timedelta(days=90)
        assert first("defaults") == due + timedelta(days=90)
        loans = [r for r in read_rows(outcome.out_dir / LOANS_FILE) if r["tenant_id"] == tenant]
        unpaid = [r for r in loans if r["status"] != "CLOSED"]
        assert len(unpaid) >= 10
        assert sum(int(r["defaults"]) for r in mine) == len(unpaid)
        assert all(r["status"] == "DEFAULTED" and r["defaulted_on"] for r in unpaid)
        end = mine[-1]
        assert int(end["arrears_90_cents"]) == int(end["loan_book_cents"]) > 0
        assert int(end["repayments_cents"]) == 0 == int(end["arrears_30_cents"])


def rates(outcome: Any) -> dict[tuple[str, str, str], tuple[str, int]]:
    """(tenant, member, product) of migrated loans -> (rate, payment) at the end of the run."""
    return {
        (r["tenant_id"], r["member"], r["product"]): (r["rate"], int(r["payment_cents"]))
        for r in read_rows(outcome.out_dir / LOANS_FILE)
        if r["migrated"] == "1" and r["status"] == "OPEN"
    }


def test_variable_loans_reprice_with_the_cash_rate_and_fixed_do_not(runs: Any) -> None:
    """+3 points of cash rate: variable loans carry cash + 2.30 and pay more; fixed ones don't.

    The shock ramps the cash rate from 3.85% by 0.25 points a month to 6.85%
    and holds it there, so the variable product steps from 6.15% to 9.15%.
    """
    shocked, base = runs[("rate_shock", SEEDS[0])], runs[("baseline", SEEDS[0])]
    path = [row["variable_rate"] for row in read_rows(shocked.out_dir / LENDING_FILE)]
    assert path[0] == "6.15"
    assert path[-1] == "9.15"
    steps = sorted({Decimal(rate) for rate in path})
    assert steps == [Decimal("6.15") + Decimal("0.25") * k for k in range(13)]
    after, before = rates(shocked), rates(base)
    shared = set(after) & set(before)
    variable = [key for key in shared if key[2] == HOME_VARIABLE]
    fixed = [key for key in shared if key[2] == HOME_FIXED]
    assert len(variable) > 50
    assert len(fixed) > 5
    for key in variable:
        assert after[key][0] == path[-1]
        assert after[key][1] > before[key][1]
    for key in fixed:
        assert after[key] == before[key]
        assert after[key][0] == "5.90"


def paired_greater(treated: list[float], control: list[float]) -> float:
    """One-sided paired t-test p-value that `treated` exceeds `control`."""
    result = stats.ttest_rel(treated, control, alternative="greater")
    return float(result.pvalue)


def test_recession_raises_90_plus_arrears(runs: Any) -> None:
    """Over five seeds, unemployment 4% -> 8% raises the 90+ day arrears rate (p < 0.05)."""
    base = [
        window_rate(runs[("baseline", s)], "arrears_90_cents", "loan_book_cents") for s in SEEDS
    ]
    rec = [
        window_rate(runs[("recession", s)], "arrears_90_cents", "loan_book_cents") for s in SEEDS
    ]
    p_value = paired_greater(rec, base)
    assert p_value < ALPHA, (base, rec, p_value)
    assert sum(rec) > 1.2 * sum(base)
    assert all(math.isfinite(x) and 0 <= x < 1 for x in base + rec)


def test_rate_shock_raises_arrears_on_variable_loans(runs: Any) -> None:
    """Over five seeds, +3 points of cash rate raise 30+ arrears on variable loans (p < 0.05)."""
    column, book = "variable_arrears_30_plus_cents", "variable_book_cents"
    base = [window_rate(runs[("baseline", s)], column, book) for s in SEEDS]
    shocked = [window_rate(runs[("rate_shock", s)], column, book) for s in SEEDS]
    p_value = paired_greater(shocked, base)
    assert p_value < ALPHA, (base, shocked, p_value)
    assert sum(shocked) > sum(base)


def test_lending_can_be_switched_off(tmp_path: Path) -> None:
    """`lending: {enabled: false}`: no loan products, no loans, no lending tables."""
    outcome = run_world(
        world_yaml("baseline", days=3, members=20, lending="  lending: {enabled: false}\n"),
        1,
        tmp_path / "off",
    )
    assert outcome.passed
    assert not (outcome.out_dir / LENDING_FILE).exists()
    assert not (outcome.out_dir / LOANS_FILE).exists()
    assert not [e for e in outcome.summary["expectations"] if "loan" in e["name"]]
