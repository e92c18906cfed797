"""The seam through which behaviour models plug into a run.

A model that is more than a daily draw (lending, fraud, ...) exposes
`attach(ctx: RunContext) -> None`. At attach time (after every tenant is set
up and its first members have joined, before the clock starts) it may submit
set-up commands, start SimPy processes on `ctx.env`, subscribe to the
economy, and register hooks: what to do at each day close, and at the end of
the run (write its CSV tables into the run folder, return expected-vs-actual
items for the report). The engine knows nothing of what the models do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

DayHook = Callable[[date], None]
FinishHook = Callable[[Path], list[dict[str, Any]]]


@dataclass
class RunContext:
    """What a model can reach during a run (typed loosely: sim knows no banking)."""

    env: Any
    clock: Any
    scenario: Any
    streams: Any
    bus: Any
    economy: Any
    worlds: dict[str, Any]
    day_hooks: list[DayHook] = field(default_factory=list)
    finish_hooks: list[FinishHook] = field(default_factory=list)
    #: extra KPI series for declared expectations: name -> {(tenant or "all", date): value}
    series: dict[str, dict[tuple[str, date], Any]] = field(default_factory=dict)

    def at_day_close(self, hook: DayHook) -> None:
        """Run `hook(day)` at 23:59:59 local time each day, after the KPI row."""
        self.day_hooks.append(hook)

    def at_finish(self, hook: FinishHook) -> None:
        """Run `hook(run_folder)` at the end; it returns expectation items."""
        self.finish_hooks.append(hook)

    def record(self, series: str, tenant: str, day: date, value: Any) -> None:
        """Publish a KPI value that declared expectations can refer to."""
        self.series.setdefault(series, {})[(tenant, day)] = value
