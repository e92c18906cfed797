"""End-to-end throughput and memory on fixed slices of `scenarios/baseline.yaml`.

Runs `twin run` on the full-size baseline (115,000 members in four tenants)
for slices of increasing length, each in a fresh process, and prints
simulated member-days per second, postings per second (a posting is one leg
of an entry), ledger events per second, wall time and peak memory (max RSS).
Peak memory should stay flat as the slice grows: nothing in the run keeps
per-event state in memory.

    .venv/bin/python benchmarks/bench_baseline.py [--days 7 28] [--scale 1.0] [--keep-events all]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, resource, sys
from pathlib import Path
from scenarios.loader import load_scenario
from sim.twin import RunOptions, Twin
scenario = load_scenario(sys.argv[1])
scenario = scenario.with_overrides(days=int(sys.argv[2]), scale=float(sys.argv[3]))
options = RunOptions(out_dir=Path(sys.argv[4]), keep_events=sys.argv[5] == "all", progress=False)
outcome = Twin(scenario, scenario.seed, options).run()
timings = outcome.summary["timings"]
timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
timings["passed"] = outcome.passed
timings["postings"] = sum(t["postings"] for t in outcome.summary["tenants"].values())
print(json.dumps(timings))
"""


def run_slice(days: int, scale: float, keep_events: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(ROOT / "scenarios" / "baseline.yaml"),
                str(days),
                str(scale),
                str(out),
                keep_events,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[7, 28])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--keep-events", choices=["all", "none"], default="all")
    args = parser.parse_args()
    print(f"baseline.yaml, scale {args.scale}, keep-events {args.keep_events}")
    print(
        f"{'days':>5} {'member-days/s':>14} {'postings/s':>11} {'events/s':>10} "
        f"{'postings':>11} {'sim s':>7} {'wall s':>7} {'peak MB':>8} verdict"
    )
    for days in args.days:
        t = run_slice(days, args.scale, args.keep_events)
        print(
            f"{days:>5} {t['member_days_per_s']:>14,.0f} {t['postings_per_s']:>11,.0f} "
            f"{t['events_per_s']:>10,.0f} {t['postings']:>11,} {t['simulation_wall_s']:>7.1f} "
            f"{t['wall_s']:>7.1f} {t['peak_rss_mb']:>8.0f} {'PASS' if t['passed'] else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
