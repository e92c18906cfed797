"""Charts: real, non-blank PNGs for normal runs, empty runs and runs without rejections."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from analysis.charts import (
    _trailing_mean,
    deposits_chart,
    draw_charts,
    members_chart,
    postings_chart,
    rejections_chart,
)
from analysis.kpis import KpiRow, RejectionRow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = datetime.date(2025, 7, 1)


def kpis(days: int = 30, tenants: tuple[str, ...] = ("cu-small", "cu-large")) -> list[KpiRow]:
    """A small, varied KPI series: growing deposits and members, weekly posting cycle."""
    rows = []
    for i in range(days):
        day = START + datetime.timedelta(days=i)
        for k, tenant in enumerate(tenants, start=1):
            rows.append(
                KpiRow(
                    date=day,
                    tenant_id=tenant,
                    members=100 * k + i,
                    accounts=170 * k + i,
                    deposits_cents=k * 250_000_000_00 + i * 1_000_000,
                    entries=50 * k,
                    postings=(100 if day.weekday() < 5 else 30) * k,
                    events=120 * k,
                    commands=60 * k,
                    rejections=i % 3,
                )
            )
    return rows


def assert_real_png(path: Path) -> None:
    """The file is a PNG that decodes to an image with visible content (not one flat colour)."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[0] > 200
    assert pixels.shape[1] > 400
    assert float(np.var(pixels[..., :3])) > 1e-4, f"{path} looks blank"


def test_draw_charts_writes_the_four_charts(tmp_path: Path) -> None:
    """All four named charts are written, returned in order, and are real images."""
    rejections = [
        RejectionRow(START, "cu-small", "OVERDRAFT_LIMIT", 3),
        RejectionRow(START, "cu-large", "ACCOUNT_CLOSED", 1),
        RejectionRow(START + datetime.timedelta(days=1), "cu-small", "ACCOUNT_CLOSED", 2),
    ]
    paths = draw_charts(kpis(), rejections, tmp_path / "charts")
    assert [p.name for p in paths] == [
        "deposits.png",
        "members.png",
        "postings.png",
        "rejections.png",
    ]
    for path in paths:
        assert path.parent == tmp_path / "charts"
        assert_real_png(path)


def test_zero_rejections_still_draws_a_message(tmp_path: Path) -> None:
    """With no rejections the chart is a readable 'no rejections' picture, not an error."""
    path = rejections_chart([], tmp_path / "rejections.png", tenants=["cu-small"])
    assert_real_png(path)
    with_data = rejections_chart(
        [RejectionRow(START, "cu-small", "OVERDRAFT_LIMIT", 3)], tmp_path / "with.png"
    )
    assert path.read_bytes() != with_data.read_bytes()


def test_rejections_of_zero_count_draw_the_message_too(tmp_path: Path) -> None:
    """Rows that add up to nothing are drawn like no rows at all (the 'no rejections' chart)."""
    empty = rejections_chart([], tmp_path / "empty.png")
    zero = rejections_chart([RejectionRow(START, "cu-a", "X", 0)], tmp_path / "zero.png")
    assert zero.read_bytes() == empty.read_bytes()


@pytest.mark.parametrize("chart", [deposits_chart, members_chart, postings_chart])
def test_each_chart_alone_handles_one_day_and_no_data(tmp_path: Path, chart: object) -> None:
    """Each chart function works on its own, for a one-day run and for an empty run."""
    one = chart(kpis(days=1), tmp_path / "one.png")  # type: ignore[operator]
    none = chart([], tmp_path / "sub" / "none.png")  # type: ignore[operator]
    assert one == tmp_path / "one.png"
    assert_real_png(one)
    assert_real_png(none)


def test_charts_are_deterministic(tmp_path: Path) -> None:
    """Same rows give byte-identical PNGs, so run folders compare cleanly across reruns."""
    a = draw_charts(kpis(), [], tmp_path / "a")
    b = draw_charts(list(reversed(kpis())), [], tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_deposit_chart_depends_on_the_data(tmp_path: Path) -> None:
    """Different deposits draw a different picture (the chart is not a fixed image)."""
    rows = kpis()
    more = [dataclasses.replace(r, deposits_cents=r.deposits_cents * 3) for r in rows]
    a = deposits_chart(rows, tmp_path / "a.png")
    b = deposits_chart(more, tmp_path / "b.png")
    assert a.read_bytes() != b.read_bytes()


def test_trailing_mean_uses_a_shorter_window_at_the_start() -> None:
    """The 7-day mean averages what exists at the start instead of dropping those days."""
    values = np.array([7, 0, 0, 0, 0, 0, 0, 7, 14], dtype=np.int64)
    got = _trailing_mean(values, 7)
    np.testing.assert_allclose(got[:3], [7.0, 3.5, 7 / 3])
    np.testing.assert_allclose(got[6:], [1.0, 1.0, 3.0])
