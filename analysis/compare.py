"""``twin compare``: several run folders side by side, as PNG panels and one Markdown page.

Researchers compare scenarios (baseline against a recession, a rate shock, a
fraud wave) and seeds of one scenario; the question is always "how do these
runs differ", so every chart overlays the runs (one colour per run, the same
colour in every chart) or draws them as small multiples with shared axes.

Run folders grow new tables as the twin learns new behaviour (``macro.csv``,
``lending.csv``, ``fraud.csv``). Rather than one function that knows every
file, the charts are a registry of :class:`Panel` s: each declares the
files and columns it needs (:class:`Need`) and is drawn only when *every*
compared run has them, because a panel that silently leaves out one run
would read as "that run had none". A panel that cannot be drawn is listed
on the page with the runs that lack its data, so nothing disappears without
a word. Adding a chart for a new table is one schema entry and one panel.

Conventions the panels rely on (the same as ``kpis.csv``):

- Rows are per tenant per period (``date``; ``month`` for the tenant-free
  ``macro.csv``); ``YYYY-MM-DD`` or ``YYYY-MM`` (first of the month).
- Stocks (deposits, members, loan book, arrears balances) are end-of-period
  levels: totals across tenants are summed per date, run-level figures take
  each tenant's latest row. Flows (entries, postings, commands, rejections,
  defaults, losses, fraud losses, detected fraud) count only their period:
  run totals are sums and charts show them cumulatively.
- Arrears columns ``arrears_30/60/90_cents`` are read as the disjoint
  buckets 30-59, 60-89 and 90+ days past due, each as a share of the loan book.
- Macro rates (cash rate, unemployment, inflation) are in percent, as
  ``sim.twin`` writes ``macro.csv`` (3.85 means 3.85 %), and are drawn as
  written; one row per month, dated on its first day.
- Money is integer cents; it becomes float only to place points on an axis.
  Tables on the page show AUD exactly from cents (``analysis.report.aud_text``).

Input is validated before anything is written: a missing folder, a folder
without ``summary.json``, a malformed table (the message names file and
line) or a non-empty output folder raise :class:`CompareError`.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps, ticker
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.charts import DPI, FIGSIZE, ROLLING_DAYS, no_data
from analysis.kpis import KPI_FILE, REJECTIONS_FILE
from analysis.report import INVARIANTS, aud_text

PAGE_FILE = "compare.md"
SUMMARY_FILE = "summary.json"
MACRO_FILE = "macro.csv"
LENDING_FILE = "lending.csv"
FRAUD_FILE = "fraud.csv"
CARDS_FILE = "cards.csv"
FINGERPRINT_PREFIX = 12
_PALETTE = "tab10"
_MAX_DEFAULT_NAME = 100

# Cell kinds of the tables the panels read.
DATE = "date"
INT = "int"
NUMBER = "number"
TEXT = "text"

#: Every column a panel may read, per file, with its cell kind. Other columns
#: in a file are ignored (tables may carry more than the panels draw); these
#: are validated whenever present, so a malformed cell is an error, not a gap.
TABLE_SCHEMAS: dict[str, dict[str, str]] = {
    KPI_FILE: {
        "date": DATE,
        "tenant_id": TEXT,
        "members": INT,
        "deposits_cents": INT,
        "entries": INT,
        "postings": INT,
        "commands": INT,
        "rejections": INT,
    },
    REJECTIONS_FILE: {"date": DATE, "tenant_id": TEXT, "rule": TEXT, "count": INT},
    MACRO_FILE: {
        "month": DATE,
        "cash_rate": NUMBER,
        "unemployment": NUMBER,
        "inflation": NUMBER,
        "house_price_index": NUMBER,
    },
    LENDING_FILE: {
        "date": DATE,
        "tenant_id": TEXT,
        "loan_book_cents": INT,
        "arrears_30_cents": INT,
        "arrears_60_cents": INT,
        "arrears_90_cents": INT,
        "defaults": INT,
        "losses_cents": INT,
    },
    FRAUD_FILE: {
        "date": DATE,
        "tenant_id": TEXT,
        "fraud_losses_cents": INT,
        "detected_cents": INT,
        "campaigns_started": INT,
        "takeovers_started": INT,
        "scams_started": INT,
    },
    CARDS_FILE: {
        "date": DATE,
        "tenant_id": TEXT,
        "cards": INT,
        "limits_cents": INT,
        "balances_cents": INT,
        "revolving_cents": INT,
        "interest_cents": INT,
    },
}

#: The period column of each table (``date`` unless listed).
TIME_COLUMNS: dict[str, str] = {MACRO_FILE: "month"}

_INT_TEXT = re.compile(r"-?[0-9]+")
_DATE_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class CompareError(ValueError):
    """Bad input to a comparison; the message names the folder, file, line or option."""


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """One CSV table of a run: the columns its header has and its typed rows.

    Only the columns in :data:`TABLE_SCHEMAS` are kept (typed); ``columns``
    still lists the whole header so a panel can say which column is missing.
    """

    path: Path
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]

    @property
    def time_column(self) -> str:
        """The column that dates each row."""
        return TIME_COLUMNS.get(self.path.name, "date")


def _parse_cell(path: Path, line: int, name: str, kind: str, text: str) -> Any:
    """One typed cell, or a CompareError saying where and what was expected."""
    where = f"{path}:{line}: {name}"
    if kind == INT:
        if not _INT_TEXT.fullmatch(text):
            raise CompareError(f"{where} {text!r} is not an integer")
        return int(text)
    if kind == NUMBER:
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise CompareError(f"{where} {text!r} is not a number") from None
        if not value.is_finite():
            raise CompareError(f"{where} {text!r} is not a finite number")
        return float(value)
    if kind == DATE:
        match = _DATE_TEXT.fullmatch(text)
        try:
            if match is None:
                raise ValueError
            year, month, day = match.groups()
            return datetime.date(int(year), int(month), int(day or 1))
        except ValueError:
            raise CompareError(f"{where} {text!r} is not a date (YYYY-MM-DD or YYYY-MM)") from None
    if not text:
        raise CompareError(f"{where} is empty")
    return text


def read_table(path: Path) -> Table:
    """Read one of a run's CSV tables, typing the columns the panels know.

    Raises:
        CompareError: naming the file and line for an empty file, a repeated
            header name, a row with the wrong number of cells, a cell of the
            wrong kind, or bytes that are not UTF-8.
    """
    path = Path(path)
    schema = TABLE_SCHEMAS.get(path.name, {})
    rows: list[dict[str, Any]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise CompareError(f"{path}:1: empty file, expected a header row") from None
            duplicates = sorted({c for c in header if header.count(c) > 1})
            if duplicates:
                raise CompareError(f"{path}:1: column(s) named twice: {', '.join(duplicates)}")
            typed = [(i, name, schema[name]) for i, name in enumerate(header) if name in schema]
            for cells in reader:
                line = reader.line_num
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise CompareError(
                        f"{path}:{line}: expected {len(header)} cells, got {len(cells)}"
                    )
                rows.append(
                    {name: _parse_cell(path, line, name, kind, cells[i]) for i, name, kind in typed}
                )
    except csv.Error as exc:
        raise CompareError(f"{path}: malformed CSV ({exc})") from None
    except UnicodeDecodeError:
        raise CompareError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CompareError(f"{path}: cannot read ({exc.strerror})") from None
    return Table(path=path, columns=tuple(header), rows=tuple(rows))


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class CompareRun:
    """One run folder, loaded: its label, summary and the tables it has."""

    path: Path
    label: str
    summary: Mapping[str, Any]
    tables: Mapping[str, Table]

    @property
    def scenario(self) -> Mapping[str, Any]:
        """The summary's scenario block (empty when absent)."""
        value = self.summary.get("scenario")
        return value if isinstance(value, Mapping) else {}

    @cached_property
    def start(self) -> datetime.date | None:
        """The scenario's first day: from the summary, else the earliest row of any table."""
        text = self.scenario.get("start")
        if isinstance(text, str):
            try:
                return datetime.date.fromisoformat(text)
            except ValueError:
                pass
        dates = [row.get(t.time_column) for t in self.tables.values() for row in t.rows]
        dates = [d for d in dates if isinstance(d, datetime.date)]
        return min(dates) if dates else None

    def has(self, need: Need) -> str | None:
        """None when this run satisfies ``need``, else why not (for the page)."""
        table = self.tables.get(need.file)
        if table is None:
            return f"no `{need.file}`"
        missing = [c for c in need.columns if c not in table.columns]
        if missing:
            return f"`{need.file}` has no column {', '.join(missing)}"
        return None


def _load_summary(path: Path) -> Mapping[str, Any]:
    """``summary.json`` as a mapping, or a CompareError naming the file."""
    file = path / SUMMARY_FILE
    if not file.is_file():
        raise CompareError(f"{path}: not a run folder (no {SUMMARY_FILE})")
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CompareError(f"{file}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except OSError as exc:
        raise CompareError(f"{file}: cannot read ({exc.strerror})") from None
    if not isinstance(summary, Mapping):
        raise CompareError(f"{file}: expected a JSON object, got {type(summary).__name__}")
    return summary


def _load_run(path: Path) -> CompareRun:
    """Read a run folder's summary and every known table it has (label set later)."""
    path = Path(path)
    if not path.exists():
        raise CompareError(f"{path}: no such run folder")
    if not path.is_dir():
        raise CompareError(f"{path}: not a folder")
    summary = _load_summary(path)
    tables = {name: read_table(path / name) for name in TABLE_SCHEMAS if (path / name).is_file()}
    return CompareRun(path=path, label="", summary=summary, tables=tables)


def _default_label(run: CompareRun) -> str:
    """Scenario name and seed, the two things that tell runs apart."""
    name = run.scenario.get("name") or run.path.name
    seed = run.summary.get("seed")
    return f"{name} (seed {seed})" if seed is not None else str(name)


def _labels(runs: Sequence[CompareRun], labels: Sequence[str] | None) -> list[str]:
    """The legend label of each run: given, or defaults made unique by folder name."""
    if labels is not None:
        labels = [str(label).strip() for label in labels]
        if len(labels) != len(runs):
            raise CompareError(
                f"--label: {len(labels)} label(s) for {len(runs)} runs; give one per run, in order"
            )
        if any(not label for label in labels):
            raise CompareError("--label: labels must not be empty")
        if len(set(labels)) != len(labels):
            raise CompareError("--label: labels must differ (each names one run in the legends)")
        return labels
    out = [_default_label(run) for run in runs]
    counts = defaultdict(int)
    for label in out:
        counts[label] += 1
    out = [
        f"{label} [{run.path.name}]" if counts[label] > 1 else label
        for label, run in zip(out, runs, strict=True)
    ]
    if len(set(out)) != len(out):  # same scenario, seed and folder name in two places
        out = [f"{label} #{i}" for i, label in enumerate(out, start=1)]
    return out


def default_out_dir(run_dirs: Sequence[Path], root: Path = Path("runs")) -> Path:
    """``runs/compare-<run1>-vs-<run2>...``: named after the run folders, which are unique.

    Folder names (``NAME-SEED`` by default) rather than scenario names, so
    two seeds of one scenario do not collide; long lists are shortened.
    """
    names = [_SAFE_NAME.sub("_", Path(p).resolve().name) or "run" for p in run_dirs]
    name = "compare-" + "-vs-".join(names)
    if len(name) > _MAX_DEFAULT_NAME and len(names) > 2:
        name = f"compare-{names[0]}-vs-{names[1]}-and-{len(names) - 2}-more"
    return Path(root) / name


# --------------------------------------------------------------------------- panels


@dataclass(frozen=True)
class Need:
    """A file and the columns of it that a panel reads."""

    file: str
    columns: tuple[str, ...]

    def text(self) -> str:
        """How the page names this need: ``lending.csv``: date, loan_book_cents."""
        return f"`{self.file}`: {', '.join(self.columns)}"


@dataclass(frozen=True)
class CompareContext:
    """What every panel draws from: the runs (in order) and the kind of time axis.

    ``calendar`` is true when all runs start on the same day, so dates line
    up; otherwise time is days since each run's own start, which is what a
    comparison of scenarios starting on different dates needs.
    """

    runs: tuple[CompareRun, ...]
    calendar: bool

    @classmethod
    def of(cls, runs: Sequence[CompareRun]) -> CompareContext:
        """The context of ``runs``: calendar dates when they all start on the same day."""
        return cls(runs=tuple(runs), calendar=len({run.start for run in runs}) == 1)

    def colour(self, index: int) -> tuple[float, ...]:
        """The colour of run ``index`` (the same in every panel)."""
        cmap = colormaps[_PALETTE]
        return cmap(index % cmap.N)

    def x(self, run: CompareRun, dates: Sequence[datetime.date]) -> Any:
        """X positions of ``dates`` for ``run``: the dates, or days since its start."""
        if self.calendar or run.start is None:
            return list(dates)
        return np.array([(d - run.start).days for d in dates], dtype=np.int64)


@dataclass(frozen=True)
class Panel:
    """One comparison chart: its PNG name, its title, what it needs, how to draw it.

    ``draw(ctx, path)`` is only called when every run satisfies every need,
    so it may index the tables without checks.
    """

    key: str
    title: str
    needs: tuple[Need, ...]
    draw: Callable[[CompareContext, Path], None]

    @property
    def file(self) -> str:
        """The PNG's file name in the output folder."""
        return f"{self.key}.png"

    def missing_in(self, runs: Sequence[CompareRun]) -> list[tuple[CompareRun, str]]:
        """The runs that lack something this panel needs, each with the reason."""
        out = []
        for run in runs:
            reasons = [r for r in (run.has(need) for need in self.needs) if r]
            if reasons:
                out.append((run, "; ".join(reasons)))
        return out


Series = tuple[list[datetime.date], np.ndarray]


def _series(table: Table, column: str, how: str = "sum") -> Series:
    """One value per date: summed across tenants (``sum``) or the last row's (``last``)."""
    values: dict[datetime.date, float] = {}
    for row in table.rows:
        day = row[table.time_column]
        if how == "sum":
            values[day] = values.get(day, 0) + row[column]
        else:
            values[day] = row[column]
    days = sorted(values)
    return days, np.array([values[d] for d in days], dtype=np.float64)


def _per_tenant(table: Table, column: str) -> dict[str, Series]:
    """tenant -> (dates, values) of one column, each in date order."""
    groups: dict[str, dict[datetime.date, float]] = defaultdict(dict)
    for row in table.rows:
        groups[row["tenant_id"]][row[table.time_column]] = row[column]
    out = {}
    for tenant, values in sorted(groups.items()):
        days = sorted(values)
        out[tenant] = (days, np.array([values[d] for d in days], dtype=np.float64))
    return out


def _latest_total(table: Table, column: str) -> int:
    """A stock's run-end level: each tenant's latest row, summed over tenants."""
    latest: dict[str, tuple[datetime.date, int]] = {}
    for row in table.rows:
        tenant, day = row.get("tenant_id", ""), row[table.time_column]
        if tenant not in latest or day >= latest[tenant][0]:
            latest[tenant] = (day, row[column])
    return sum(value for _, value in latest.values())


def _flow_total(table: Table, column: str) -> int:
    """A flow's run total: the sum over every row."""
    return sum(row[column] for row in table.rows)


def _trailing_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of each value and up to ``window - 1`` before it (fewer at the start)."""
    csum = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    idx = np.arange(1, len(values) + 1)
    return csum[idx] - csum[np.maximum(idx - window, 0)]


def _money_unit(max_cents: float) -> tuple[float, str, str]:
    """(cents per axis unit, unit name, tick format) for a money axis peaking at ``max_cents``.

    Millions or thousands keep tick labels short; the decimals follow the
    peak in those units so neighbouring ticks never print the same text.
    """
    dollars = abs(max_cents) / 100
    scale, unit = 100.0, "AUD"
    if dollars >= 1_000_000:
        scale, unit = 100_000_000.0, "AUD millions"
    elif dollars >= 1_000:
        scale, unit = 100_000.0, "AUD thousands"
    peak = abs(max_cents) / scale
    decimals = 0 if peak >= 100 else (1 if peak >= 10 else 2)
    return scale, unit, f"{{x:,.{decimals}f}}"


def _peak(series: Iterable[Series]) -> float:
    """The largest absolute value in any of the series (0 when all are empty)."""
    return max((float(np.max(np.abs(v))) for _, v in series if len(v)), default=0.0)


def _figure(
    figsize: tuple[float, float] = FIGSIZE, rows: int = 1, cols: int = 1
) -> tuple[Figure, list[Axes]]:
    """A fresh figure with an Agg canvas (no pyplot state) and its grid of axes."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    return fig, [ax for row in axes for ax in row]


def _save(fig: Figure, path: Path) -> None:
    """Write the figure as a PNG on white."""
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")


def _time_axis(ax: Axes, ctx: CompareContext) -> None:
    """Dates, or days since start, readable at any run length; labelled on the bottom row."""
    if ctx.calendar:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        label = "Simulated date"
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        label = "Days since scenario start"
    spec = ax.get_subplotspec()
    if spec is None or spec.is_last_row():
        ax.set_xlabel(label)


def _run_legend(fig: Figure, ctx: CompareContext, extra: Sequence[Line2D] = ()) -> None:
    """One legend for the figure: run label -> colour (plus any style keys)."""
    handles = [
        Line2D([], [], color=ctx.colour(i), linewidth=2.0, label=run.label)
        for i, run in enumerate(ctx.runs)
    ]
    handles += list(extra)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 4),
        fontsize=9,
        title="Run",
        title_fontsize=9,
    )


def _plot_runs(
    ax: Axes,
    ctx: CompareContext,
    series: Sequence[Series],
    *,
    scale: float = 1.0,
    linestyle: str = "-",
    linewidth: float = 1.8,
    alpha: float = 1.0,
) -> bool:
    """One line per run on ``ax``; False when no run has a single point.

    Earlier runs are drawn wider (up to 1.6 times), later ones on top of
    them, so runs that follow the same path (two seeds of a calm economy)
    still show every colour instead of the last run hiding the others.
    """
    drawn = False
    last = max(len(ctx.runs) - 1, 1)
    for i, (run, (days, values)) in enumerate(zip(ctx.runs, series, strict=True)):
        if not days:
            continue
        drawn = True
        wider = 1 + 0.6 * (len(ctx.runs) - 1 - i) / last
        ax.plot(
            ctx.x(run, days),
            values / scale,
            color=ctx.colour(i),
            linestyle=linestyle,
            linewidth=linewidth * wider,
            alpha=alpha,
            marker="o" if len(days) == 1 else None,
            markersize=5.0 * wider,
        )
    return drawn


def _style(
    ax: Axes, ctx: CompareContext, title: str, ylabel: str, yformat: str, *, from_zero: bool = True
) -> None:
    """Title, time axis, y label and format, grid."""
    ax.set_title(title, fontsize=11, loc="left")
    _time_axis(ax, ctx)
    ax.set_ylabel(ylabel)
    if yformat:  # "" keeps matplotlib's own ticks (an index near 100 needs its decimals)
        ax.yaxis.set_major_formatter(ticker.StrMethodFormatter(yformat))
    if from_zero:
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def _overlay(
    ctx: CompareContext,
    path: Path,
    *,
    title: str,
    series: Sequence[Series],
    ylabel: str,
    yformat: str = "{x:,.0f}",
    money: bool = False,
    from_zero: bool = True,
) -> None:
    """The common panel: one axes, one line per run."""
    fig, (ax,) = _figure()
    scale = 1.0
    if money:
        scale, unit, yformat = _money_unit(_peak(series))
        ylabel = f"{ylabel} ({unit})"
    if not _plot_runs(ax, ctx, series, scale=scale):
        no_data(ax, "No rows in any run", fontsize=14)
        ax.set_title(title, fontsize=13, loc="left")
    else:
        _style(ax, ctx, title, ylabel, yformat, from_zero=from_zero)
        _run_legend(fig, ctx)
    _save(fig, path)


def _small_multiples(
    ctx: CompareContext,
    path: Path,
    *,
    title: str,
    panels: Sequence[tuple[str, Sequence[Series]]],
    ylabel: str,
    yformat: str = "{x:,.0f}",
    scale: float = 1.0,
    cols: int = 3,
) -> None:
    """One axes per sub-panel (a tenant, a bucket, a variable), runs overlaid in each."""
    n = max(1, len(panels))
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = _figure((FIGSIZE[0], max(4.0, 1.2 + 3.0 * rows)), rows, cols)
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    if not panels:
        no_data(axes[0], "No rows in any run", fontsize=14)
    for ax, (name, series) in zip(axes, panels, strict=False):
        if _plot_runs(ax, ctx, series, scale=scale):
            _style(ax, ctx, name, ylabel, yformat)
        else:
            no_data(ax, f"{name}: no rows", fontsize=14)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if panels:
        _run_legend(fig, ctx)
    _save(fig, path)


def _table(run: CompareRun, file: str) -> Table:
    return run.tables[file]


def _draw_deposits_total(ctx: CompareContext, path: Path) -> None:
    _overlay(
        ctx,
        path,
        title="Member deposits, all tenants (end of day)",
        series=[_series(_table(r, KPI_FILE), "deposits_cents") for r in ctx.runs],
        ylabel="Deposits",
        money=True,
    )


def _draw_deposits_by_tenant(ctx: CompareContext, path: Path) -> None:
    per_run = [_per_tenant(_table(r, KPI_FILE), "deposits_cents") for r in ctx.runs]
    tenants = sorted({t for groups in per_run for t in groups})
    scale, unit, yformat = _money_unit(_peak(s for g in per_run for s in g.values()))
    empty: Series = ([], np.array([], dtype=np.float64))
    _small_multiples(
        ctx,
        path,
        title="Member deposits per tenant (end of day)",
        panels=[(t, [groups.get(t, empty) for groups in per_run]) for t in tenants],
        ylabel=f"Deposits ({unit})",
        scale=scale,
        yformat=yformat,
    )


def _draw_members(ctx: CompareContext, path: Path) -> None:
    _overlay(
        ctx,
        path,
        title="Members, all tenants (end of day)",
        series=[_series(_table(r, KPI_FILE), "members") for r in ctx.runs],
        ylabel="Members (customers)",
    )


def _draw_postings(ctx: CompareContext, path: Path) -> None:
    title = f"Postings per day, all tenants (thin: daily, bold: {ROLLING_DAYS}-day mean)"
    series = [_series(_table(r, KPI_FILE), "postings") for r in ctx.runs]
    fig, (ax,) = _figure()
    if not _plot_runs(ax, ctx, series, linewidth=0.7, alpha=0.35):
        no_data(ax, "No rows in any run", fontsize=14)
    else:
        means = [
            (
                days,
                _trailing_sum(v, ROLLING_DAYS) / np.minimum(np.arange(1, len(v) + 1), ROLLING_DAYS),
            )
            for days, v in series
        ]
        _plot_runs(ax, ctx, means, linewidth=2.0)
        _style(ax, ctx, title, "Postings per day (ledger legs)", "{x:,.0f}")
        _run_legend(fig, ctx)
    _save(fig, path)


def _draw_rejection_rate(ctx: CompareContext, path: Path) -> None:
    title = f"Rejected commands, % of commands (thin: daily, bold: {ROLLING_DAYS}-day pooled)"
    fig, (ax,) = _figure()
    daily: list[Series] = []
    pooled: list[Series] = []
    for run in ctx.runs:
        table = _table(run, KPI_FILE)
        days, rejected = _series(table, "rejections")
        _, commands = _series(table, "commands")
        with np.errstate(divide="ignore", invalid="ignore"):
            daily.append((days, np.where(commands > 0, 100 * rejected / commands, np.nan)))
            r7, c7 = _trailing_sum(rejected, ROLLING_DAYS), _trailing_sum(commands, ROLLING_DAYS)
            pooled.append((days, np.where(c7 > 0, 100 * r7 / c7, np.nan)))
    if not _plot_runs(ax, ctx, daily, linewidth=0.7, alpha=0.35):
        no_data(ax, "No rows in any run", fontsize=14)
    else:
        _plot_runs(ax, ctx, pooled, linewidth=2.0)
        _style(ax, ctx, title, "Rejection rate (%)", "{x:,.2f}")
        _run_legend(fig, ctx)
    _save(fig, path)


def _draw_rejections_by_rule(ctx: CompareContext, path: Path) -> None:
    """Rejections per 1,000 commands by rule: runs of different size compare fairly."""
    title = "Rejections by rule, per 1,000 commands (whole run)"
    rates: list[dict[str, float]] = []
    for run in ctx.runs:
        commands = _flow_total(_table(run, KPI_FILE), "commands")
        by_rule: dict[str, int] = defaultdict(int)
        for row in _table(run, REJECTIONS_FILE).rows:
            by_rule[row["rule"]] += row["count"]
        rates.append(
            {rule: 1000 * n / commands if commands else 0.0 for rule, n in by_rule.items() if n}
        )
    rules = sorted({rule for r in rates for rule in r})
    fig, (ax,) = _figure((FIGSIZE[0], max(3.5, 1.5 + 0.5 * len(rules) * len(ctx.runs))))
    if not rules:
        no_data(ax, "No rejections in any run (no command was refused)", fontsize=14)
        ax.set_title(title, fontsize=13, loc="left")
        _save(fig, path)
        return
    y = np.arange(len(rules), dtype=np.float64)
    height = 0.8 / len(ctx.runs)
    for i, rate in enumerate(rates):
        values = [rate.get(rule, 0.0) for rule in rules]
        ax.barh(y + i * height, values, height=height, color=ctx.colour(i))
        for yi, value in zip(y + i * height, values, strict=True):
            ax.annotate(
                f"{value:,.2f}",
                (value, yi),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(y + 0.4 - height / 2, rules)
    ax.invert_yaxis()
    ax.set_xlabel("Rejected commands per 1,000 commands")
    ax.set_xlim(0, max(max(r.values(), default=0.0) for r in rates) * 1.15 or 1.0)
    ax.set_title(title, fontsize=13, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    _run_legend(fig, ctx)
    _save(fig, path)


def _draw_loan_book(ctx: CompareContext, path: Path) -> None:
    _overlay(
        ctx,
        path,
        title="Loan book, all tenants (end of period)",
        series=[_series(_table(r, LENDING_FILE), "loan_book_cents") for r in ctx.runs],
        ylabel="Loans outstanding",
        money=True,
    )


ARREARS_BUCKETS: tuple[tuple[str, str], ...] = (
    ("arrears_30_cents", "30-59 days past due"),
    ("arrears_60_cents", "60-89 days past due"),
    ("arrears_90_cents", "90+ days past due"),
)


def _draw_arrears(ctx: CompareContext, path: Path) -> None:
    panels = []
    for column, name in ARREARS_BUCKETS:
        series = []
        for run in ctx.runs:
            table = _table(run, LENDING_FILE)
            days, arrears = _series(table, column)
            _, book = _series(table, "loan_book_cents")
            with np.errstate(divide="ignore", invalid="ignore"):
                series.append((days, np.where(book > 0, 100 * arrears / book, np.nan)))
        panels.append((name, series))
    _small_multiples(
        ctx,
        path,
        title="Arrears by bucket, % of loan book (all tenants)",
        panels=panels,
        ylabel="% of loan book",
        yformat="{x:,.2f}",
    )


def _cumulative(table: Table, column: str) -> Series:
    days, values = _series(table, column)
    return days, np.cumsum(values)


def _draw_defaults_losses(ctx: CompareContext, path: Path) -> None:
    defaults = [_cumulative(_table(r, LENDING_FILE), "defaults") for r in ctx.runs]
    losses = [_cumulative(_table(r, LENDING_FILE), "losses_cents") for r in ctx.runs]
    scale, unit, money_format = _money_unit(_peak(losses))
    fig, (left, right) = _figure((FIGSIZE[0] * 1.3, FIGSIZE[1]), 1, 2)
    fig.suptitle(
        "Defaults and credit losses, cumulative (all tenants)", fontsize=13, x=0.01, ha="left"
    )
    if _plot_runs(left, ctx, defaults):
        _style(left, ctx, "Loans defaulted (count)", "Defaults", "{x:,.0f}")
    else:
        no_data(left, "No rows in any run", fontsize=14)
    if _plot_runs(right, ctx, losses, scale=scale):
        _style(
            right,
            ctx,
            "Credit losses",
            f"Losses ({unit})",
            money_format,
        )
    else:
        no_data(right, "No rows in any run", fontsize=14)
    _run_legend(fig, ctx)
    _save(fig, path)


def _draw_fraud(ctx: CompareContext, path: Path) -> None:
    lost = [_cumulative(_table(r, FRAUD_FILE), "fraud_losses_cents") for r in ctx.runs]
    detected = [_cumulative(_table(r, FRAUD_FILE), "detected_cents") for r in ctx.runs]
    scale, unit, money_format = _money_unit(_peak([*lost, *detected]))
    title = "Fraud: losses (solid) vs detected (dashed), cumulative, all tenants"
    fig, (ax,) = _figure()
    drawn = _plot_runs(ax, ctx, lost, scale=scale)
    drawn = _plot_runs(ax, ctx, detected, scale=scale, linestyle="--") or drawn
    if not drawn:
        no_data(ax, "No rows in any run", fontsize=14)
        ax.set_title(title, fontsize=13, loc="left")
    else:
        _style(ax, ctx, title, f"Amount ({unit})", money_format)
        keys = [
            Line2D([], [], color="0.3", linestyle="-", label="fraud losses"),
            Line2D([], [], color="0.3", linestyle="--", label="detected"),
        ]
        _run_legend(fig, ctx, keys)
    _save(fig, path)


def _monthly(table: Table, column: str) -> Series:
    """A flow summed per calendar month over every tenant, dated on the month's first day.

    A surge of a few months shows as a step in the per-month values, where a
    cumulative line only bends; a month the run covers in part counts only
    its covered days.
    """
    values: dict[datetime.date, float] = {}
    for row in table.rows:
        month = row[table.time_column].replace(day=1)
        values[month] = values.get(month, 0) + row[column]
    months = sorted(values)
    return months, np.array([values[m] for m in months], dtype=np.float64)


def _draw_fraud_monthly(ctx: CompareContext, path: Path) -> None:
    lost = [_monthly(_table(r, FRAUD_FILE), "fraud_losses_cents") for r in ctx.runs]
    detected = [_monthly(_table(r, FRAUD_FILE), "detected_cents") for r in ctx.runs]
    started = [_monthly(_table(r, FRAUD_FILE), "campaigns_started") for r in ctx.runs]
    pushed = []  # account takeovers and push-payment scams: what a scam wave is made of
    for run in ctx.runs:
        days, takeovers = _monthly(_table(run, FRAUD_FILE), "takeovers_started")
        _, scams = _monthly(_table(run, FRAUD_FILE), "scams_started")
        pushed.append((days, takeovers + scams))
    scale, unit, money_format = _money_unit(_peak([*lost, *detected]))
    fig, (top, bottom) = _figure((FIGSIZE[0], 8.0), 2, 1)
    fig.suptitle("Fraud per month, all tenants", fontsize=13, x=0.01, ha="left")
    drawn = _plot_runs(top, ctx, lost, scale=scale)
    drawn = _plot_runs(top, ctx, detected, scale=scale, linestyle="--") or drawn
    if drawn:
        _style(top, ctx, "Losses (solid) vs detected (dashed)", f"Amount ({unit})", money_format)
    else:
        no_data(top, "No rows in any run", fontsize=14)
    drawn = _plot_runs(bottom, ctx, started)
    drawn = _plot_runs(bottom, ctx, pushed, linestyle=":") or drawn
    if drawn:
        _style(
            bottom,
            ctx,
            "Campaigns started: all (solid), takeovers + scams (dotted)",
            "Campaigns",
            "{x:,.0f}",
        )
    else:
        no_data(bottom, "No rows in any run", fontsize=14)
    keys = [
        Line2D([], [], color="0.3", linestyle="-", label="fraud losses / all campaigns"),
        Line2D([], [], color="0.3", linestyle="--", label="detected"),
        Line2D([], [], color="0.3", linestyle=":", label="takeovers + scams"),
    ]
    _run_legend(fig, ctx, keys)
    _save(fig, path)


def _draw_cards(ctx: CompareContext, path: Path) -> None:
    tables = [_table(r, CARDS_FILE) for r in ctx.runs]
    owed = [_series(t, "balances_cents") for t in tables]
    utilisation, revolving = [], []
    for table in tables:
        days, balances = _series(table, "balances_cents")
        _, limits = _series(table, "limits_cents")
        _, accruing = _series(table, "revolving_cents")
        with np.errstate(divide="ignore", invalid="ignore"):
            utilisation.append((days, np.where(limits > 0, 100 * balances / limits, np.nan)))
            revolving.append((days, np.where(balances > 0, 100 * accruing / balances, np.nan)))
    scale, unit, money_format = _money_unit(_peak(owed))
    fig, axes = _figure((FIGSIZE[0], 10.0), 3, 1)
    fig.suptitle("Credit cards, all tenants (end of day)", fontsize=13, x=0.01, ha="left")
    for ax, series, name, ylabel, fmt, unit_scale in (
        (axes[0], owed, "Owed on cards", f"Balances ({unit})", money_format, scale),
        (axes[1], utilisation, "Utilisation (owed / limits)", "% of limits", "{x:,.1f}", 1.0),
        (axes[2], revolving, "Owed on cards accruing interest", "% of owed", "{x:,.1f}", 1.0),
    ):
        if _plot_runs(ax, ctx, series, scale=unit_scale):
            _style(ax, ctx, name, ylabel, fmt)
        else:
            no_data(ax, f"{name}: no rows", fontsize=14)
    _run_legend(fig, ctx)
    _save(fig, path)


def _draw_macro(ctx: CompareContext, path: Path) -> None:
    tables = [_table(r, MACRO_FILE) for r in ctx.runs]
    cash = [_series(t, "cash_rate", "last") for t in tables]
    unemployment = [_series(t, "unemployment", "last") for t in tables]
    houses = [_series(t, "house_price_index", "last") for t in tables]
    fig, axes = _figure((FIGSIZE[0], 10.0), 3, 1)
    fig.suptitle("Macro paths", fontsize=13, x=0.01, ha="left")
    for ax, series, name, ylabel, fmt in (
        (axes[0], cash, "Cash rate", "% a year", "{x:,.2f}"),
        (axes[1], unemployment, "Unemployment rate", "% of labour force", "{x:,.1f}"),
        (axes[2], houses, "House price index", "index", ""),
    ):
        if _plot_runs(ax, ctx, series):
            _style(ax, ctx, name, ylabel, fmt, from_zero=name != "House price index")
        else:
            no_data(ax, f"{name}: no rows", fontsize=14)
    _run_legend(fig, ctx)
    _save(fig, path)


def _draw_inflation(ctx: CompareContext, path: Path) -> None:
    _overlay(
        ctx,
        path,
        title="Inflation (annual rate)",
        series=[_series(_table(r, MACRO_FILE), "inflation", "last") for r in ctx.runs],
        ylabel="% a year",
        yformat="{x:,.1f}",
        from_zero=False,
    )


_KPI_DEPOSITS = Need(KPI_FILE, ("date", "tenant_id", "deposits_cents"))

#: The comparison charts, in page order. A later table adds a schema entry
#: in :data:`TABLE_SCHEMAS` and a panel here.
PANELS: tuple[Panel, ...] = (
    Panel("deposits_total", "Member deposits, all tenants", (_KPI_DEPOSITS,), _draw_deposits_total),
    Panel(
        "deposits_by_tenant",
        "Member deposits per tenant",
        (_KPI_DEPOSITS,),
        _draw_deposits_by_tenant,
    ),
    Panel("members", "Members", (Need(KPI_FILE, ("date", "tenant_id", "members")),), _draw_members),
    Panel(
        "postings",
        "Postings per day",
        (Need(KPI_FILE, ("date", "tenant_id", "postings")),),
        _draw_postings,
    ),
    Panel(
        "rejection_rate",
        "Rejection rate",
        (Need(KPI_FILE, ("date", "tenant_id", "commands", "rejections")),),
        _draw_rejection_rate,
    ),
    Panel(
        "rejections_by_rule",
        "Rejections by rule",
        (Need(KPI_FILE, ("commands",)), Need(REJECTIONS_FILE, ("rule", "count"))),
        _draw_rejections_by_rule,
    ),
    Panel(
        "loan_book",
        "Loan book",
        (Need(LENDING_FILE, ("date", "tenant_id", "loan_book_cents")),),
        _draw_loan_book,
    ),
    Panel(
        "arrears",
        "Arrears by bucket (30/60/90+ days)",
        (
            Need(
                LENDING_FILE,
                ("date", "tenant_id", "loan_book_cents", *(c for c, _ in ARREARS_BUCKETS)),
            ),
        ),
        _draw_arrears,
    ),
    Panel(
        "defaults_losses",
        "Defaults and losses",
        (Need(LENDING_FILE, ("date", "tenant_id", "defaults", "losses_cents")),),
        _draw_defaults_losses,
    ),
    Panel(
        "fraud",
        "Fraud losses vs detected",
        (Need(FRAUD_FILE, ("date", "tenant_id", "fraud_losses_cents", "detected_cents")),),
        _draw_fraud,
    ),
    Panel(
        "fraud_monthly",
        "Fraud per month (losses, detected, campaigns)",
        (
            Need(
                FRAUD_FILE,
                (
                    "date",
                    "tenant_id",
                    "fraud_losses_cents",
                    "detected_cents",
                    "campaigns_started",
                    "takeovers_started",
                    "scams_started",
                ),
            ),
        ),
        _draw_fraud_monthly,
    ),
    Panel(
        "cards",
        "Credit cards (owed, utilisation, revolving share)",
        (
            Need(
                CARDS_FILE,
                ("date", "tenant_id", "balances_cents", "limits_cents", "revolving_cents"),
            ),
        ),
        _draw_cards,
    ),
    Panel(
        "macro",
        "Macro paths (cash rate, unemployment, house prices)",
        (Need(MACRO_FILE, ("month", "cash_rate", "unemployment", "house_price_index")),),
        _draw_macro,
    ),
    Panel("inflation", "Inflation", (Need(MACRO_FILE, ("month", "inflation")),), _draw_inflation),
)


# --------------------------------------------------------------------------- page


def _cell(value: object) -> str:
    """Any value made safe for one Markdown table cell."""
    if value is None:
        return "—"
    return str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has ``l`` or ``r`` per column (default left)."""
    spec = align.ljust(len(header), "l")
    out = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if a == "r" else "---" for a in spec) + " |",
    ]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def _verdict(summary: Mapping[str, Any]) -> bool | None:
    """The run's verdict: the summary's flag, else derived from its checks, else unknown."""
    if isinstance(summary.get("passed"), bool):
        return summary["passed"]
    checks = [
        v.get("passed")
        for v in _mapping(summary.get("invariants")).values()
        if isinstance(v, Mapping)
    ]
    checks += [e.get("passed") for e in _expectations(summary)]
    return all(c is True for c in checks) if checks else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _expectations(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = summary.get("expectations")
    return [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []


def _verdict_text(passed: bool | None) -> str:
    return {True: "✅ PASS", False: "❌ FAIL"}.get(passed, "— unknown")  # type: ignore[arg-type]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _percent(numerator: int, denominator: int) -> str:
    """An exact ratio as a percent with two places (half up), or a dash for 0/0."""
    if denominator == 0:
        return "—"
    value = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return f"{value:,}%"


def _summary_total(run: CompareRun, key: str) -> int | None:
    """A per-tenant summary figure summed over tenants (None when no tenant has it)."""
    values = []
    for tenant in _mapping(run.summary.get("tenants")).values():
        raw = _mapping(tenant).get(key)
        if key == "rejections" and isinstance(raw, Mapping):
            raw = sum(v for v in raw.values() if _int(v) is not None)
        if _int(raw) is not None:
            values.append(raw)
    return sum(values) if values else None


def _kpi(run: CompareRun, column: str) -> Table | None:
    """The KPI table when it has rows with ``column`` (else the headline uses the summary)."""
    table = run.tables.get(KPI_FILE)
    return table if table is not None and table.rows and column in table.columns else None


def _h_members(run: CompareRun) -> str:
    table = _kpi(run, "members")
    value = _latest_total(table, "members") if table else _summary_total(run, "members")
    return f"{value:,}" if value is not None else "—"


def _h_deposits(run: CompareRun) -> str:
    table = _kpi(run, "deposits_cents")
    value = (
        _latest_total(table, "deposits_cents") if table else _summary_total(run, "deposits_cents")
    )
    return aud_text(value) if value is not None else "—"


def _h_entries(run: CompareRun) -> str:
    table = _kpi(run, "entries")
    value = _flow_total(table, "entries") if table else _summary_total(run, "entries")
    return f"{value:,}" if value is not None else "—"


def _h_rejection_rate(run: CompareRun) -> str:
    table = _kpi(run, "rejections")
    if table is not None and "commands" in table.columns:
        return _percent(_flow_total(table, "rejections"), _flow_total(table, "commands"))
    rejected, commands = _summary_total(run, "rejections"), _summary_total(run, "commands")
    return _percent(rejected, commands) if rejected is not None and commands else "—"


def _h_money_stock(file: str, column: str) -> Callable[[CompareRun], str]:
    """A money stock's run-end level in AUD; a dash for a table with no rows."""
    return lambda run: (
        aud_text(_latest_total(run.tables[file], column)) if run.tables[file].rows else "—"
    )


def _h_money_flow(file: str, column: str) -> Callable[[CompareRun], str]:
    """A money flow's run total in AUD; a dash for a table with no rows."""
    return lambda run: (
        aud_text(_flow_total(run.tables[file], column)) if run.tables[file].rows else "—"
    )


def _h_arrears_90(run: CompareRun) -> str:
    table = run.tables[LENDING_FILE]
    return _percent(
        _latest_total(table, "arrears_90_cents"), _latest_total(table, "loan_book_cents")
    )


@dataclass(frozen=True)
class Headline:
    """One row of the headline KPI table.

    ``need`` None means the row is always shown (it falls back to the
    summary); otherwise it is shown when any run has the data, with a dash
    for the runs that do not.
    """

    name: str
    value: Callable[[CompareRun], str]
    need: Need | None = None


HEADLINES: tuple[Headline, ...] = (
    Headline("final members", _h_members),
    Headline("deposits, end (AUD)", _h_deposits),
    Headline("entries", _h_entries),
    Headline("rejection rate (of commands)", _h_rejection_rate),
    Headline(
        "loan book, end (AUD)",
        _h_money_stock(LENDING_FILE, "loan_book_cents"),
        Need(LENDING_FILE, ("date", "tenant_id", "loan_book_cents")),
    ),
    Headline(
        "90+ days arrears, end (% of loan book)",
        _h_arrears_90,
        Need(LENDING_FILE, ("date", "tenant_id", "loan_book_cents", "arrears_90_cents")),
    ),
    Headline(
        "credit losses (AUD)",
        _h_money_flow(LENDING_FILE, "losses_cents"),
        Need(LENDING_FILE, ("losses_cents",)),
    ),
    Headline(
        "fraud losses (AUD)",
        _h_money_flow(FRAUD_FILE, "fraud_losses_cents"),
        Need(FRAUD_FILE, ("fraud_losses_cents",)),
    ),
    Headline(
        "fraud detected (AUD)",
        _h_money_flow(FRAUD_FILE, "detected_cents"),
        Need(FRAUD_FILE, ("detected_cents",)),
    ),
)


def _link(target: Path, base: Path) -> str:
    """A relative POSIX link from the page's folder to ``target``."""
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def _days(run: CompareRun) -> str:
    days = _int(run.scenario.get("days"))
    if days is None and KPI_FILE in run.tables:
        days = len({row["date"] for row in run.tables[KPI_FILE].rows})
    return f"{days:,}" if days is not None else "—"


def _fingerprint(run: CompareRun) -> str:
    heads = _mapping(run.summary.get("fingerprint"))
    if not heads:
        return "—"
    return ", ".join(
        f"`{_cell(t)}:{_cell(h)[:FINGERPRINT_PREFIX]}`" for t, h in sorted(heads.items())
    )


def _section_runs(ctx: CompareContext, out_dir: Path) -> list[str]:
    rows = []
    for run in ctx.runs:
        report = run.path / "report.md"
        link = _link(report if report.is_file() else run.path, out_dir)
        rows.append(
            [
                f"**{_cell(run.label)}**",
                f"[`{_cell(run.path.resolve().name)}`]({link})",
                f"`{_cell(run.scenario.get('name'))}`",
                _cell(run.summary.get("seed")),
                _days(run),
                _verdict_text(_verdict(run.summary)),
                _fingerprint(run),
            ]
        )
    header = [
        "run",
        "folder",
        "scenario",
        "seed",
        "days",
        "verdict",
        "fingerprint (chain head prefix per tenant)",
    ]
    return ["## Runs", "", *_md_table(header, rows, "lllrrll"), ""]


def _section_headlines(ctx: CompareContext) -> list[str]:
    rows = []
    for headline in HEADLINES:
        has = [headline.need is None or run.has(headline.need) is None for run in ctx.runs]
        if not any(has):
            continue
        rows.append(
            [headline.name]
            + [headline.value(run) if ok else "—" for run, ok in zip(ctx.runs, has, strict=True)]
        )
    header = ["KPI", *(_cell(run.label) for run in ctx.runs)]
    return [
        "## Headline KPIs",
        "",
        *_md_table(header, rows, "l" + "r" * len(ctx.runs)),
        "",
        "Stocks (members, deposits, loan book, arrears) are each tenant's last day, summed "
        "over tenants; flows (entries, rejections, losses) are totals over the run. "
        "A dash: the run has no data for that row.",
        "",
    ]


def _invariant_cell(result: Mapping[str, Any]) -> str:
    passed = result.get("passed")
    examined = _int(result.get("examined"))
    text = {True: "✅ pass", False: "❌ FAIL"}.get(passed, "— not run")  # type: ignore[arg-type]
    return f"{text} ({examined:,} examined)" if examined is not None else text


def _section_verdicts(ctx: CompareContext) -> list[str]:
    names = list(INVARIANTS)
    for run in ctx.runs:
        names += [n for n in _mapping(run.summary.get("invariants")) if n not in names]
    rows = []
    for name in names:
        rows.append(
            [f"`{name}`"]
            + [
                _invariant_cell(_mapping(_mapping(run.summary.get("invariants")).get(name)))
                for run in ctx.runs
            ]
        )
    met_row = ["expectations met"]
    failed: list[str] = []
    for run in ctx.runs:
        records = _expectations(run.summary)
        ok = sum(1 for e in records if e.get("passed") is True)
        # passed None: a declared expectation dated after the run's end (not reached).
        open_ = sum(1 for e in records if not isinstance(e.get("passed"), bool))
        text = f"{ok} of {len(records) - open_}" if records else "none checked"
        met_row.append(f"{text}; {open_} not reached" if open_ else text)
        for e in records:
            if e.get("passed") is False:
                tenant = f" [{_cell(e.get('tenant'))}]" if e.get("tenant") else ""
                failed.append(
                    f"- {_cell(run.label)}: “{_cell(e.get('name'))}”{tenant} — expected "
                    f"{_cell(e.get('expected'))}, actual {_cell(e.get('actual'))}"
                )
    rows.append(met_row)
    header = ["check", *(_cell(run.label) for run in ctx.runs)]
    lines = ["## Invariants and expectations", "", *_md_table(header, rows), ""]
    if failed:
        lines += ["Failed expectations:", "", *failed, ""]
    return lines


def _section_charts(drawn: Sequence[Panel]) -> list[str]:
    lines = ["## Charts", ""]
    if not drawn:
        return lines + ["_No panel could be drawn for every run._", ""]
    for panel in drawn:
        lines += [f"### {panel.title}", "", f"![{panel.title}]({panel.file})", ""]
    return lines


def _section_unavailable(ctx: CompareContext, skipped: Sequence[Panel]) -> list[str]:
    if not skipped:
        return []
    lines = [
        "## Not available",
        "",
        "Panels are drawn only when every run has their data, so no run is silently left out.",
        "",
    ]
    for panel in skipped:
        where = "; ".join(
            f"{_cell(run.label)} ({reason})" for run, reason in panel.missing_in(ctx.runs)
        )
        needs = "; ".join(need.text() for need in panel.needs)
        lines.append(f"- **{panel.title}** (needs {needs}) — not available in: {where}")
    return lines + [""]


def render_page(
    ctx: CompareContext, drawn: Sequence[Panel], skipped: Sequence[Panel], out_dir: Path
) -> str:
    """The Markdown text of ``compare.md``; ``out_dir`` anchors the relative links."""
    title = " vs ".join(_cell(run.label) for run in ctx.runs)
    starts = {run.start for run in ctx.runs}
    if ctx.calendar:
        start = next(iter(starts))
        axis = f"calendar dates (every run starts on {start.isoformat() if start else '—'})"
    else:
        axis = "days since each run's start (the runs start on different dates)"
    lines = [
        f"# Comparison: {title}",
        "",
        f"{len(ctx.runs)} runs side by side; one colour per run in every chart. Time axis: {axis}.",
        "",
    ]
    lines += _section_runs(ctx, out_dir)
    lines += _section_headlines(ctx)
    lines += _section_verdicts(ctx)
    lines += _section_charts(drawn)
    lines += _section_unavailable(ctx, skipped)
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- entry point


def _prepare_out(out_dir: Path, runs: Sequence[CompareRun], force: bool) -> Path:
    """Refuse to mix outputs: a non-empty folder needs ``force``, a run folder is never used.

    With ``force`` only this module's own files (the page and panel PNGs) are
    removed, never the whole folder: ``--out`` may point anywhere, and a
    stale panel from an earlier comparison must not linger on the page.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CompareError(f"{out_dir}: exists and is not a folder")
    resolved = out_dir.resolve()
    for run in runs:
        if run.path.resolve() == resolved:
            raise CompareError(
                f"{out_dir}: is one of the compared run folders; choose another --out"
            )
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise CompareError(
                f"{out_dir}: folder is not empty; choose another --out or pass --force to replace "
                "the comparison in it"
            )
        for name in (PAGE_FILE, *(panel.file for panel in PANELS)):
            (out_dir / name).unlink(missing_ok=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompareError(f"{out_dir}: cannot create the folder ({exc.strerror})") from None
    return out_dir


def plan_panels(runs: Sequence[CompareRun]) -> tuple[list[Panel], list[Panel]]:
    """Split :data:`PANELS` into (drawable for every run, not available in some run)."""
    drawn = [panel for panel in PANELS if not panel.missing_in(runs)]
    return drawn, [panel for panel in PANELS if panel not in drawn]


def load_runs(run_dirs: Sequence[Path], labels: Sequence[str] | None = None) -> list[CompareRun]:
    """Load and validate the run folders, each with its legend label.

    Raises:
        CompareError: fewer than two runs, a folder given twice, a missing
            folder, no ``summary.json``, a malformed table, or bad labels.
    """
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise CompareError(f"need at least two run folders to compare, got {len(paths)}")
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise CompareError(f"{path}: given twice (also as {seen[key]})")
        seen[key] = path
    loaded = [_load_run(path) for path in paths]
    names = _labels(loaded, labels)
    return [
        CompareRun(path=r.path, label=name, summary=r.summary, tables=r.tables)
        for r, name in zip(loaded, names, strict=True)
    ]


def compare_runs(
    run_dirs: Sequence[Path],
    out_dir: Path,
    labels: Sequence[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    """Draw two or more runs side by side and write ``compare.md``; return its path.

    Every run is read and validated before anything is written, so bad
    input leaves no half-made folder behind.

    Args:
        run_dirs: the run folders, in the order of the legends and columns.
        out_dir: the output folder (created; must be empty unless ``force``).
        labels: one legend label per run; default "scenario (seed N)".
        force: write into a non-empty folder, replacing an earlier comparison.

    Raises:
        CompareError: for any bad input (see :func:`load_runs`) or an unusable
            output folder.
    """
    runs = load_runs(run_dirs, labels)
    ctx = CompareContext.of(runs)
    out_dir = _prepare_out(Path(out_dir), runs, force)
    drawn, skipped = plan_panels(runs)
    for panel in drawn:
        panel.draw(ctx, out_dir / panel.file)
    page = out_dir / PAGE_FILE
    page.write_text(render_page(ctx, drawn, skipped, out_dir), encoding="utf-8", newline="\n")
    return page
