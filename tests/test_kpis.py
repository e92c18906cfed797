"""KPI rows: recording, exact CSV round trip, clear errors, whole-run totals."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from analysis.kpis import (
    KPI_FIELDS,
    KpiRecorder,
    KpiRow,
    RejectionRow,
    read_kpis,
    read_rejections,
    tenant_totals,
)

D1 = datetime.date(2025, 7, 1)
D2 = datetime.date(2025, 7, 2)


def row(day: datetime.date, tenant: str, **kw: int) -> KpiRow:
    """A KPI row with distinct small numbers unless overridden."""
    values = {
        "members": 10,
        "accounts": 17,
        "deposits_cents": 123_456_789,
        "entries": 5,
        "postings": 11,
        "events": 16,
        "commands": 7,
        "rejections": 2,
    }
    values.update(kw)
    return KpiRow(date=day, tenant_id=tenant, **values)


def filled_recorder() -> KpiRecorder:
    """Two tenants over two days, added out of order, with some rejections."""
    rec = KpiRecorder()
    rec.add_day(row(D2, "cu-b", deposits_cents=-5, members=3))
    rec.add_day(row(D1, "cu-b", deposits_cents=10**15 + 1))
    rec.add_day(row(D2, "cu-a", members=12, deposits_cents=987_654_321_099))
    rec.add_day(row(D1, "cu-a"))
    rec.add_rejections(D1, "cu-a", {"OVERDRAFT_LIMIT": 2, "ACCOUNT_CLOSED": 0})
    rec.add_rejections(D2, "cu-b", {"OVERDRAFT_LIMIT": 1, "ACCOUNT_CLOSED": 4})
    return rec


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    """Rows written and read back are equal, field for field, including huge and negative cents."""
    rec = filled_recorder()
    kpi_path, rej_path = rec.write(tmp_path / "run")
    assert kpi_path == tmp_path / "run" / "kpis.csv"
    assert rej_path == tmp_path / "run" / "rejections.csv"
    assert read_kpis(tmp_path / "run") == rec.rows
    assert read_rejections(tmp_path / "run") == rec.rejection_rows
    kpis = read_kpis(tmp_path / "run")
    assert all(type(r.deposits_cents) is int for r in kpis)
    assert {r.deposits_cents for r in kpis} >= {-5, 10**15 + 1, 987_654_321_099}


def test_csv_text_is_sorted_iso_and_integer(tmp_path: Path) -> None:
    """The files have a header, ISO dates, plain integers and a stable (date, tenant) order."""
    kpi_path, rej_path = filled_recorder().write(tmp_path)
    lines = kpi_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(KPI_FIELDS)
    assert lines[1] == "2025-07-01,cu-a,10,17,123456789,5,11,16,7,2"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["2025-07-01", "cu-a"],
        ["2025-07-01", "cu-b"],
        ["2025-07-02", "cu-a"],
        ["2025-07-02", "cu-b"],
    ]
    assert rej_path.read_text(encoding="utf-8") == (
        "date,tenant_id,rule,count\n"
        "2025-07-01,cu-a,OVERDRAFT_LIMIT,2\n"
        "2025-07-02,cu-b,ACCOUNT_CLOSED,4\n"
        "2025-07-02,cu-b,OVERDRAFT_LIMIT,1\n"
    )


def test_zero_rejection_counts_are_skipped_and_repeats_add_up() -> None:
    """Zero counts leave no row; two reports for the same day and rule are summed."""
    rec = KpiRecorder()
    rec.add_rejections(D1, "cu-a", {"OVERDRAFT_LIMIT": 0})
    assert rec.rejection_rows == []
    rec.add_rejections(D1, "cu-a", {"OVERDRAFT_LIMIT": 2})
    rec.add_rejections(D1, "cu-a", {"OVERDRAFT_LIMIT": 3})
    assert rec.rejection_rows == [RejectionRow(D1, "cu-a", "OVERDRAFT_LIMIT", 5)]


def test_empty_recorder_writes_header_only_files(tmp_path: Path) -> None:
    """A run with no days still writes readable tables (header only)."""
    KpiRecorder().write(tmp_path)
    assert read_kpis(tmp_path) == []
    assert read_rejections(tmp_path) == []


def test_duplicate_day_is_refused() -> None:
    """A second row for the same tenant-day would double flows, so it is an error."""
    rec = KpiRecorder()
    rec.add_day(row(D1, "cu-a"))
    rec.add_day(row(D1, "cu-b"))
    with pytest.raises(ValueError, match="duplicate KPI row for tenant cu-a on 2025-07-01"):
        rec.add_day(row(D1, "cu-a", members=99))


@pytest.mark.parametrize("bad", [1.5, True, "3"])
def test_non_int_counts_are_refused(bad: object) -> None:
    """Floats, bools or text in a count field would break the exact round trip."""
    rec = KpiRecorder()
    with pytest.raises(ValueError, match="deposits_cents must be an int"):
        rec.add_day(row(D1, "cu-a", deposits_cents=bad))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="OVERDRAFT_LIMIT"):
        rec.add_rejections(D1, "cu-a", {"OVERDRAFT_LIMIT": bad})  # type: ignore[dict-item]


def test_negative_rejection_count_is_refused() -> None:
    """A negative count cannot be a number of refused commands."""
    with pytest.raises(ValueError, match="must be an int >= 0"):
        KpiRecorder().add_rejections(D1, "cu-a", {"X": -1})


@pytest.mark.parametrize(
    ("line3", "message"),
    [
        ("2025-07-02,cu-a,10,17,12.50,5,11,16,7,2", "deposits_cents '12.50' is not an integer"),
        ("2025-07-02,cu-a,10,17,1e3,5,11,16,7,2", "deposits_cents '1e3' is not an integer"),
        ("2025-07-02,cu-a,10, 17,1,5,11,16,7,2", "accounts ' 17' is not an integer"),
        ("2025-13-02,cu-a,10,17,1,5,11,16,7,2", "date '2025-13-02' is not an ISO date"),
        ("2025-07-02,,10,17,1,5,11,16,7,2", "tenant_id is empty"),
        ("2025-07-02,cu-a,10,17,1,5,11,16,7", "expected 10 cells, got 9"),
    ],
)
def test_malformed_kpis_name_file_and_line(tmp_path: Path, line3: str, message: str) -> None:
    """Each kind of bad cell is reported with the file path and the 1-based line number."""
    KpiRecorder().write(tmp_path)
    path = tmp_path / "kpis.csv"
    good = "2025-07-01,cu-a,10,17,1,5,11,16,7,2"
    path.write_text(f"{','.join(KPI_FIELDS)}\n{good}\n{line3}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="kpis.csv:3: ") as info:
        read_kpis(tmp_path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_wrong_header_names_file_and_line_one(tmp_path: Path) -> None:
    """A table with other columns (e.g. an older layout) is refused at line 1."""
    (tmp_path / "kpis.csv").write_text("date,tenant,members\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"kpis\.csv:1: header is 'date,tenant,members'"):
        read_kpis(tmp_path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """A zero-byte table (an interrupted write) is an error, not an empty run."""
    (tmp_path / "kpis.csv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"kpis\.csv:1: empty file"):
        read_kpis(tmp_path)


def test_malformed_rejections_name_file_and_line(tmp_path: Path) -> None:
    """Rejection tables get the same line-numbered errors, including negative counts."""
    path = tmp_path / "rejections.csv"
    path.write_text(
        "date,tenant_id,rule,count\n2025-07-01,cu-a,X,1\n2025-07-01,cu-a,Y,-2\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"rejections\.csv:3: count -2 is negative"):
        read_rejections(tmp_path)
    path.write_text("date,tenant_id,rule,count\n2025-07-01,cu-a,,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rejections\.csv:2: rule is empty"):
        read_rejections(tmp_path)


def test_tenant_totals_take_final_stocks_and_sum_flows() -> None:
    """Stocks come from each tenant's last day, flows are summed, rules are totalled."""
    rec = filled_recorder()
    totals = tenant_totals(reversed(rec.rows), rec.rejection_rows)
    assert list(totals) == ["cu-a", "cu-b"]
    a, b = totals["cu-a"], totals["cu-b"]
    assert (a["members"], a["deposits_cents"]) == (12, 987_654_321_099)
    assert (b["members"], b["deposits_cents"]) == (3, -5)
    assert (a["entries"], a["postings"], a["events"], a["commands"]) == (10, 22, 32, 14)
    assert a["rejections"] == 4
    assert (a["days"], a["first_date"], a["last_date"]) == (2, D1, D2)
    assert a["rejections_by_rule"] == {"OVERDRAFT_LIMIT": 2}
    assert b["rejections_by_rule"] == {"ACCOUNT_CLOSED": 4, "OVERDRAFT_LIMIT": 1}


def test_tenant_totals_of_nothing_is_empty() -> None:
    """No rows give no tenants (the report then says there are no KPIs)."""
    assert tenant_totals([], []) == {}
