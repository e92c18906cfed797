"""The exploration notebook runs headless, top to bottom, against a tiny fake run folder."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from analysis.kpis import KpiRecorder, KpiRow
from analysis.report import INVARIANTS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "explore_run.ipynb"


def fake_run(folder: Path, *, passed: bool = True) -> Path:
    """A run folder with summary.json, kpis.csv and rejections.csv for two tenants over 10 days."""
    rec = KpiRecorder()
    start = datetime.date(2025, 7, 1)
    for i in range(10):
        day = start + datetime.timedelta(days=i)
        for k, tenant in enumerate(("cu-small", "cu-large"), start=1):
            rec.add_day(
                KpiRow(
                    day, tenant, 10 * k + i, 17 * k + i, k * 10**9 + i * 10**6, 5, 10 + i, 16, 7, 1
                )
            )
        rec.add_rejections(day, "cu-small", {"OVERDRAFT_LIMIT": 1})
    rec.write(folder)
    invariants = {
        name: {"passed": True, "examined": 10, "counterexamples": {"count": 0, "first": None}}
        for name in INVARIANTS
    }
    if not passed:
        invariants["event_integrity"] = {
            "passed": False,
            "examined": 10,
            "counterexamples": {"count": 1, "first": {"tenant": "cu-small", "seq": 3}},
        }
    summary = {
        "scenario": {"name": "tiny", "start": "2025-07-01", "days": 10},
        "seed": 1,
        "passed": passed,
        "invariants": invariants,
        "expectations": [
            {"name": "members", "tenant": "cu-small", "expected": 19, "actual": 19, "passed": True}
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def kernel_name() -> str:
    """The python3 kernel spec, which ipykernel (a test dependency) installs.

    A missing kernel is a broken install, so it fails rather than skips.
    """
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:  # pragma: no cover - depends on the environment
        pytest.fail("no python3 Jupyter kernel spec: install the test extras ('.[test]')")
    return "python3"


def test_notebook_runs_without_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell executes against a failing fake run; verdict, totals and both plots come out.

    One execution only (a kernel start costs seconds); the failing run exercises
    more of the notebook than a passing one (it prints the counterexample).
    """
    run = fake_run(tmp_path / "run", passed=False)
    monkeypatch.setenv("TWIN_RUN_DIR", str(run))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports `analysis` from this checkout
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code_cells)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name(),
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},  # cwd outside the repo
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [out for cell in code_cells for out in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "FAIL: scenario 'tiny'" in text
    assert "event_integrity" in text
    assert "'seq': 3" in text
    assert "20 KPI rows, 2 tenants" in text
    assert "10,090,000.00" in text  # cu-small's last-day deposits, exact from cents
    pngs = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pngs) == 2  # deposits and postings
