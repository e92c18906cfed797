"""PNG charts of a run's KPI rows, for the report and for people.

Only things a picture shows better than a table get a chart: how deposits
and membership grow, how daily volume moves with weekdays and holidays, and
which rules refuse commands. Everything else is in the report's tables.

Charts are drawn with matplotlib's object API (``Figure`` +
``FigureCanvasAgg``) rather than ``pyplot``: no global figure registry, no
GUI backend, safe to call from worker processes and from tests, and nothing
to close afterwards. Each tenant keeps the same colour in every chart.
Money is integer cents in the records; it becomes float dollars only here,
to place points on an axis.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps, ticker
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from analysis.kpis import KpiRow, RejectionRow

DPI = 110
FIGSIZE = (10.0, 5.0)
ROLLING_DAYS = 7
_PALETTE = "tab10"


def _figure(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A fresh figure with an Agg canvas attached and one axes."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG, creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path


def _colours(tenants: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A stable colour per tenant (sorted ids), so charts agree with each other."""
    cmap = _palette()
    return {t: cmap(i % cmap.N) for i, t in enumerate(sorted(tenants))}


def _palette() -> Colormap:
    """The qualitative colour map used for tenants and rules."""
    return colormaps[_PALETTE]


def _by_tenant(kpis: Sequence[KpiRow]) -> dict[str, list[KpiRow]]:
    """KPI rows grouped per tenant, each list in date order."""
    groups: dict[str, list[KpiRow]] = defaultdict(list)
    for row in kpis:
        groups[row.tenant_id].append(row)
    return {t: sorted(rows, key=lambda r: r.date) for t, rows in sorted(groups.items())}


def _date_axis(ax: Axes) -> None:
    """Readable dates on the x axis at any run length (days to years)."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("Simulated date")


def no_data(ax: Axes, message: str, fontsize: int = 16) -> None:
    """Turn an axes into a plain message, for runs with nothing to plot."""
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        fontsize=fontsize,
        color="0.35",
        transform=ax.transAxes,
    )


def _finish(ax: Axes, title: str) -> None:
    """Title, grid and (when there is more than one series) a legend."""
    ax.set_title(title, fontsize=13, loc="left")
    ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(title="Tenant", fontsize=9, title_fontsize=9, loc="best")


def _days(rows: Sequence[KpiRow]) -> list[datetime.date]:
    return [r.date for r in rows]


def _line_chart(
    kpis: Sequence[KpiRow],
    path: Path,
    *,
    title: str,
    ylabel: str,
    value: Callable[[KpiRow], float],
    yformat: str,
) -> Path:
    """One line per tenant of ``value(row)`` over time."""
    fig, ax = _figure()
    groups = _by_tenant(kpis)
    if not groups:
        no_data(ax, "No KPI rows in this run")
        ax.set_title(title, fontsize=13, loc="left")
        return _save(fig, path)
    colours = _colours(list(groups))
    for tenant, rows in groups.items():
        ax.plot(
            _days(rows),
            [value(r) for r in rows],
            color=colours[tenant],
            linewidth=1.8,
            label=tenant,
            marker="o" if len(rows) == 1 else None,
        )
    _date_axis(ax)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(ticker.StrMethodFormatter(yformat))
    ax.set_ylim(bottom=0)
    _finish(ax, title)
    return _save(fig, path)


def deposits_chart(kpis: Sequence[KpiRow], path: Path) -> Path:
    """Member deposits per tenant over time, in AUD millions.

    Deposits are the read model's member balances at each day's end, so a
    flat line through a busy period is worth a look in the ledger.
    """
    return _line_chart(
        kpis,
        path,
        title="Member deposits per tenant (end of day)",
        ylabel="Deposits (AUD millions)",
        value=lambda r: r.deposits_cents / 100_000_000,
        yformat="{x:,.2f}",
    )


def members_chart(kpis: Sequence[KpiRow], path: Path) -> Path:
    """Members (customers in the read model) per tenant over time."""
    return _line_chart(
        kpis,
        path,
        title="Members per tenant (end of day)",
        ylabel="Members (customers)",
        value=lambda r: r.members,
        yformat="{x:,.0f}",
    )


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and up to ``window - 1`` before it (shorter at the start)."""
    csum = np.cumsum(np.concatenate(([0], values.astype(np.float64))))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def postings_chart(kpis: Sequence[KpiRow], path: Path) -> Path:
    """Postings (ledger legs) per day per tenant: thin daily line, bold 7-day mean.

    Daily volume swings with weekdays, paydays and holidays; the trailing
    mean shows the trend through that noise while the thin line keeps the
    real days visible.
    """
    title = "Postings per day per tenant"
    fig, ax = _figure()
    groups = _by_tenant(kpis)
    if not groups:
        no_data(ax, "No KPI rows in this run")
        ax.set_title(title, fontsize=13, loc="left")
        return _save(fig, path)
    colours = _colours(list(groups))
    for tenant, rows in groups.items():
        days = _days(rows)
        values = np.array([r.postings for r in rows], dtype=np.int64)
        ax.plot(days, values, color=colours[tenant], linewidth=0.7, alpha=0.35)
        ax.plot(
            days,
            _trailing_mean(values, ROLLING_DAYS),
            color=colours[tenant],
            linewidth=2.0,
            label=f"{tenant} ({ROLLING_DAYS}-day mean)",
            marker="o" if len(rows) == 1 else None,
        )
    _date_axis(ax)
    ax.set_ylabel("Postings per day (ledger legs)")
    ax.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_ylim(bottom=0)
    _finish(ax, f"{title} (thin: daily, bold: {ROLLING_DAYS}-day trailing mean)")
    return _save(fig, path)


def rejections_chart(
    rejections: Sequence[RejectionRow], path: Path, tenants: Sequence[str] = ()
) -> Path:
    """Total rejections per tenant, stacked by rule, as horizontal bars.

    Totals over the whole run are what a reader compares (which tenant, which
    rule); the daily detail is in ``rejections.csv``. With no rejections at
    all the chart says so plainly instead of drawing empty axes.

    Args:
        rejections: the run's rejection rows.
        path: where to write the PNG.
        tenants: tenants to show even if nothing of theirs was refused, so a
            clean tenant is visibly clean rather than missing.
    """
    title = "Rejected commands by rule (whole run)"
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rejections:
        totals[row.tenant_id][row.rule] += row.count
    grand_total = sum(sum(by_rule.values()) for by_rule in totals.values())
    all_tenants = sorted(set(tenants) | set(totals))
    height = max(3.0, min(12.0, 1.2 + 0.55 * len(all_tenants)))
    fig, ax = _figure((FIGSIZE[0], height))
    if grand_total == 0:
        no_data(ax, "No rejections in this run (no command was refused)")
        ax.set_title(title, fontsize=13, loc="left")
        return _save(fig, path)
    rules = sorted({rule for by_rule in totals.values() for rule in by_rule})
    cmap = _palette() if len(rules) <= 10 else colormaps["tab20"]
    y = np.arange(len(all_tenants))
    left = np.zeros(len(all_tenants), dtype=np.int64)
    for i, rule in enumerate(rules):
        widths = np.array([totals[t].get(rule, 0) for t in all_tenants], dtype=np.int64)
        ax.barh(y, widths, left=left, color=cmap(i % cmap.N), label=rule, height=0.6)
        left += widths
    for yi, total in zip(y, left, strict=True):
        ax.annotate(
            f"{int(total):,}",
            (int(total), yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.set_yticks(y, all_tenants)
    ax.invert_yaxis()
    ax.set_xlabel("Rejected commands (count)")
    ax.set_ylabel("Tenant")
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlim(0, max(1, int(left.max())) * 1.12)
    ax.set_title(title, fontsize=13, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(
        title="Rule", fontsize=9, title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    return _save(fig, path)


def draw_charts(
    kpis: Sequence[KpiRow], rejections: Sequence[RejectionRow], out_dir: Path
) -> list[Path]:
    """Draw every run chart into ``out_dir`` and return the paths written.

    The order is the order the report shows them in.
    """
    out_dir = Path(out_dir)
    tenants = sorted({r.tenant_id for r in kpis})
    return [
        deposits_chart(kpis, out_dir / "deposits.png"),
        members_chart(kpis, out_dir / "members.png"),
        postings_chart(kpis, out_dir / "postings.png"),
        rejections_chart(rejections, out_dir / "rejections.png", tenants),
    ]
