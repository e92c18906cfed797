"""Per tenant, per simulated day KPI rows, and their CSV tables.

A run's charts, report and notebook all read the same two small tables, so
they are written once, at the end of a run, as plain CSV: anyone can open
them in a spreadsheet or ``pandas`` without installing the twin, and they
re-read exactly (integers stay integers, money stays integer cents).

The recorder keeps one small frozen row per tenant-day (a few thousand rows
for a multi-year run of a handful of tenants), so holding them in memory
until the run ends costs next to nothing and keeps the simulation loop free
of file I/O.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KPI_FILE = "kpis.csv"
REJECTIONS_FILE = "rejections.csv"


@dataclass(frozen=True, slots=True)
class KpiRow:
    """One tenant's KPIs at the end of one simulated day.

    Stocks (members, accounts, deposits) are end-of-day levels read from the
    platform's read model; flows (entries ... rejections) count only that
    day, so summing them over days gives run totals.
    """

    date: datetime.date
    tenant_id: str
    members: int
    accounts: int
    deposits_cents: int
    entries: int
    postings: int
    events: int
    commands: int
    rejections: int


@dataclass(frozen=True, slots=True)
class RejectionRow:
    """How many commands one rule refused for one tenant on one day."""

    date: datetime.date
    tenant_id: str
    rule: str
    count: int


KPI_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(KpiRow))
REJECTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RejectionRow))
_INT_FIELDS = frozenset(KPI_FIELDS) - {"date", "tenant_id"}
_INT_TEXT = re.compile(r"-?[0-9]+")


class KpiRecorder:
    """Collects KPI and rejection rows during a run and writes them as CSV.

    Duplicate tenant-days are refused when added, because a second row for
    the same day would silently double every flow total downstream.
    """

    def __init__(self) -> None:
        self._rows: list[KpiRow] = []
        self._days: set[tuple[datetime.date, str]] = set()
        self._rejections: dict[tuple[datetime.date, str, str], int] = {}

    @property
    def rows(self) -> list[KpiRow]:
        """KPI rows ordered by (date, tenant), a copy safe to keep."""
        return sorted(self._rows, key=lambda r: (r.date, r.tenant_id))

    @property
    def rejection_rows(self) -> list[RejectionRow]:
        """Rejection rows ordered by (date, tenant, rule), a copy safe to keep."""
        return [
            RejectionRow(date=d, tenant_id=t, rule=rule, count=n)
            for (d, t, rule), n in sorted(self._rejections.items())
        ]

    def add_day(self, row: KpiRow) -> None:
        """Record one tenant's end-of-day KPIs.

        Raises:
            ValueError: if that tenant already has a row for that day, or a
                count field is not a non-bool int (floats would break the
                exact round trip).
        """
        for name in _INT_FIELDS:
            value = getattr(row, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"KpiRow.{name} must be an int, got {value!r}")
        key = (row.date, row.tenant_id)
        if key in self._days:
            raise ValueError(f"duplicate KPI row for tenant {row.tenant_id} on {row.date}")
        self._days.add(key)
        self._rows.append(row)

    def add_rejections(self, day: datetime.date, tenant_id: str, counts: Mapping[str, int]) -> None:
        """Record one tenant's rejections for a day, by rule.

        Zero counts are skipped so the table only lists rules that fired.
        Calling twice for the same day adds up, which lets a caller report
        rejections per batch rather than collecting them for the whole day.

        Raises:
            ValueError: for a negative or non-int count.
        """
        for rule, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"rejection count for {rule!r} must be an int >= 0: {count!r}")
            if count == 0:
                continue
            key = (day, tenant_id, str(rule))
            self._rejections[key] = self._rejections.get(key, 0) + count

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``kpis.csv`` and ``rejections.csv`` into ``folder``.

        Rows are sorted so the files are byte-identical for identical runs,
        whatever order the simulation happened to add them in.

        Returns:
            The paths of the KPI table and the rejections table.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        kpi_path = folder / KPI_FILE
        rej_path = folder / REJECTIONS_FILE
        _write_csv(
            kpi_path,
            KPI_FIELDS,
            ([_cell(getattr(r, f)) for f in KPI_FIELDS] for r in self.rows),
        )
        _write_csv(
            rej_path,
            REJECTION_FIELDS,
            ([_cell(getattr(r, f)) for f in REJECTION_FIELDS] for r in self.rejection_rows),
        )
        return kpi_path, rej_path


def _cell(value: object) -> str:
    """A CSV cell: dates in ISO form, everything else as ``str``."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[list[str]]) -> None:
    """Write a CSV with ``\\n`` line ends so outputs hash the same on every OS."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(list(header))
        writer.writerows(rows)


def _read_csv(path: Path, fields: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with exactly ``fields`` as header, keeping each row's line number.

    Raises:
        ValueError: naming the file and line when the header is wrong or a row
            has the wrong number of cells.
    """
    out: list[tuple[int, dict[str, str]]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}:1: empty file, expected header {','.join(fields)}") from None
        except csv.Error as exc:
            raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
        if tuple(header) != fields:
            raise ValueError(
                f"{path}:1: header is {','.join(header)!r}, expected {','.join(fields)!r}"
            )
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
            line = reader.line_num
            if not cells:
                continue
            if len(cells) != len(fields):
                raise ValueError(f"{path}:{line}: expected {len(fields)} cells, got {len(cells)}")
            out.append((line, dict(zip(fields, cells, strict=True))))
    return out


def _parse_date(path: Path, line: int, text: str) -> datetime.date:
    """An ISO date cell, or a ValueError that says where it was."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: date {text!r} is not an ISO date (YYYY-MM-DD)") from None


def _parse_int(path: Path, line: int, name: str, text: str) -> int:
    """An integer cell (no spaces, no decimals), or a ValueError that says where."""
    if not _INT_TEXT.fullmatch(text):
        raise ValueError(f"{path}:{line}: {name} {text!r} is not an integer")
    return int(text)


def _parse_text(path: Path, line: int, name: str, text: str) -> str:
    """A non-empty identifier cell, or a ValueError that says where."""
    if not text:
        raise ValueError(f"{path}:{line}: {name} is empty")
    return text


def read_kpis(folder: Path) -> list[KpiRow]:
    """Read ``kpis.csv`` from a run folder back into KpiRows, exactly.

    Raises:
        ValueError: naming the file and line of the first malformed cell.
        FileNotFoundError: if the run folder has no KPI table.
    """
    path = Path(folder) / KPI_FILE
    rows: list[KpiRow] = []
    for line, cells in _read_csv(path, KPI_FIELDS):
        values: dict[str, Any] = {
            "date": _parse_date(path, line, cells["date"]),
            "tenant_id": _parse_text(path, line, "tenant_id", cells["tenant_id"]),
        }
        for name in KPI_FIELDS[2:]:
            values[name] = _parse_int(path, line, name, cells[name])
        rows.append(KpiRow(**values))
    return rows


def read_rejections(folder: Path) -> list[RejectionRow]:
    """Read ``rejections.csv`` from a run folder back into RejectionRows.

    Raises:
        ValueError: naming the file and line of the first malformed cell.
        FileNotFoundError: if the run folder has no rejections table.
    """
    path = Path(folder) / REJECTIONS_FILE
    rows: list[RejectionRow] = []
    for line, cells in _read_csv(path, REJECTION_FIELDS):
        count = _parse_int(path, line, "count", cells["count"])
        if count < 0:
            raise ValueError(f"{path}:{line}: count {count} is negative")
        rows.append(
            RejectionRow(
                date=_parse_date(path, line, cells["date"]),
                tenant_id=_parse_text(path, line, "tenant_id", cells["tenant_id"]),
                rule=_parse_text(path, line, "rule", cells["rule"]),
                count=count,
            )
        )
    return rows


def tenant_totals(
    rows: Iterable[KpiRow], rejections: Iterable[RejectionRow] = ()
) -> dict[str, dict[str, Any]]:
    """Whole-run totals per tenant, the shape the report's KPI table needs.

    Stocks are taken from each tenant's latest day (a sum of daily balances
    would mean nothing); flows are summed over all days.

    Returns:
        ``{tenant_id: {"first_date", "last_date", "days", "members", "accounts",
        "deposits_cents", "entries", "postings", "events", "commands",
        "rejections", "rejections_by_rule": {rule: count}}}``, tenants sorted.
        A tenant that appears only in ``rejections`` gets zero stocks.
    """
    totals: dict[str, dict[str, Any]] = {}
    latest: dict[str, datetime.date] = {}

    def blank() -> dict[str, Any]:
        return {
            "first_date": None,
            "last_date": None,
            "days": 0,
            "members": 0,
            "accounts": 0,
            "deposits_cents": 0,
            "entries": 0,
            "postings": 0,
            "events": 0,
            "commands": 0,
            "rejections": 0,
            "rejections_by_rule": {},
        }

    for row in rows:
        t = totals.setdefault(row.tenant_id, blank())
        t["days"] += 1
        for name in ("entries", "postings", "events", "commands", "rejections"):
            t[name] += getattr(row, name)
        if t["first_date"] is None or row.date < t["first_date"]:
            t["first_date"] = row.date
        if row.tenant_id not in latest or row.date >= latest[row.tenant_id]:
            latest[row.tenant_id] = row.date
            t["last_date"] = row.date
            t["members"] = row.members
            t["accounts"] = row.accounts
            t["deposits_cents"] = row.deposits_cents
    for rej in rejections:
        by_rule = totals.setdefault(rej.tenant_id, blank())["rejections_by_rule"]
        by_rule[rej.rule] = by_rule.get(rej.rule, 0) + rej.count
    for t in totals.values():
        t["rejections_by_rule"] = dict(sorted(t["rejections_by_rule"].items()))
    return dict(sorted(totals.items()))
