"""The twin: a scenario, a seed and a target in; a run folder out.

`Twin.run()` builds the SimPy environment (virtual clock, time warp), one
`TenantWorld` per credit union with its processes (onboarding, growth,
payments), a day-close process that records KPIs and probes idempotency, and
the streaming invariant checks subscribed to the platform's event stream.
At the end it compares expected with actual and writes the run folder:
`manifest.json`, `summary.json`, `report.md`, `charts/*.png`, `kpis.csv`,
`rejections.csv` and (unless told otherwise) `events.sqlite`.

Wall-clock time is read only to report throughput and warp lag; nothing in
the simulation depends on it.
"""

from __future__ import annotations

import csv
import json
import math
import platform as python_platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from analysis.charts import draw_charts
from analysis.expectations import evaluate
from analysis.invariants import InvariantSuite
from analysis.kpis import KpiRecorder, KpiRow
from analysis.report import write_report
from analysis.verify import snapshot_tables
from models import credit_cards, fraud, lending, savings, term_deposits
from models.lifecycle import LabourForce, grow_prices, grow_wages
from models.macro import Economy, MacroMonth
from models.members import Onboarding, member_growth, onboard, setup_tenant
from models.payments import hourly_payments
from models.world import TenantWorld
from scenarios.schema import Scenario
from sim.bus import CommandBus
from sim.clock import VirtualClock
from sim.context import RunContext
from sim.gcpolicy import checkpoint as gc_checkpoint
from sim.gcpolicy import long_run_gc
from sim.rng import RandomStreams
from sim.shadow import shadow_view
from sim.target import EmbeddedTarget, Target, read_model_balances
from sim.warp import LagMonitor, make_environment
from turingcore.contract import CommandResult, Envelope
from turingcore.events import BalanceUpdatedPayload, SealedEvent

EVENT_LOG = "events.sqlite"
#: Models that plug into a run through `sim.context.RunContext` (lending, fraud, ...).
#: Lending and cards move money at the day close before savings takes its
#: end-of-day balances (each puts its day-close hook first, lending ahead).
EXTENSIONS: tuple[Callable[[RunContext], None], ...] = (
    savings.attach,
    term_deposits.attach,
    credit_cards.attach,
    lending.attach,
    fraud.attach,
)
#: Product types whose accounts are money members owe, not deposits (left out of deposits).
NOT_DEPOSITS = frozenset({"LOAN", "CREDIT_CARD"})
#: z for a two-sided 99.9% interval: statistical expectations fail by chance
#: once in a thousand runs, not once in twenty.
Z_999 = 3.2905


class RunFolderError(ValueError):
    """The run folder cannot be used (bad input: exit code 2)."""


@dataclass(frozen=True)
class RunOptions:
    """How to run: where to write, how fast, what to keep."""

    out_dir: Path
    warp: float | None = None
    keep_events: bool = True
    progress: bool = True
    force: bool = False
    command_line: str = ""
    scenario_source: str | None = None


@dataclass
class RunOutcome:
    passed: bool
    summary: dict[str, Any]
    out_dir: Path
    charts: list[Path] = field(default_factory=list)


class Twin:
    """Runs one scenario with one seed against one target."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        options: RunOptions,
        target_factory: Callable[[Path | None], Target] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.options = options
        self.target_factory = target_factory or (lambda log: EmbeddedTarget(log))

    # ------------------------------------------------------------------ run

    def run(self) -> RunOutcome:
        out = _prepare_folder(self.options.out_dir, self.options.force)
        with long_run_gc():
            return self._run(out)

    def _run(self, out: Path) -> RunOutcome:
        scenario, seed = self.scenario, self.seed
        wall_start = time.perf_counter()
        streams = RandomStreams(seed)
        clock = VirtualClock(scenario.start)
        env = make_environment(self.options.warp)
        lag = LagMonitor(env, 3600.0)
        target = self.target_factory(out / EVENT_LOG if self.options.keep_events else None)
        self.target_name = target.name
        suite = InvariantSuite(rng=streams.stream("analysis", "idempotency-probes"))
        bus = CommandBus(target)
        self.worlds: dict[str, TenantWorld] = {}
        target.subscribe(suite.on_events)
        target.subscribe(self._tap)
        bus.observe(suite.on_results)
        bus.observe(self._count)
        kpis = KpiRecorder()
        for spec in scenario.tenants:
            self.worlds[spec.id] = TenantWorld(scenario, spec, streams, clock, bus)
        onboardings = {tenant: Onboarding(world) for tenant, world in self.worlds.items()}
        for tenant, world in self.worlds.items():
            setup_tenant(world, 0.0)
            onboard(world, onboardings[tenant], 0.0, scenario.members_at_scale(tenant))
        economy = self._start_economy(env, clock, streams)
        self.context = RunContext(
            env, clock, scenario, streams, bus, economy, self.worlds, series=self.series
        )
        for attach in EXTENSIONS:
            attach(self.context)
        env.process(hourly_payments(env, list(self.worlds.values())))
        for tenant, world in self.worlds.items():
            env.process(member_growth(env, world, onboardings[tenant]))
        gc_checkpoint()
        progress = _Progress(scenario, self.options.progress, self.worlds)
        env.process(self._day_close(env, clock, target, suite, kpis, progress))
        end_time = clock.day_start(scenario.end)
        if self.options.warp is not None:
            env.sync()  # type: ignore[attr-defined]
        sim_start = time.perf_counter()
        env.run(until=end_time)
        sim_wall = time.perf_counter() - sim_start
        progress.close()

        shadows = shadow_view({t: w.shadow for t, w in self.worlds.items()})
        invariants = suite.finish(target, shadows)
        replays = {tenant: suite.replayed_balances(tenant) for tenant in self.worlds}
        expectations = self._expectations(target, shadows, replays)
        for hook in self.context.finish_hooks:
            expectations += hook(out)
        expectations += evaluate(
            scenario.expectations, kpis.rows, kpis.rejection_rows, self.context.series
        )
        fingerprint = {tenant: target.head(tenant)[1] for tenant in self.worlds}
        heads = {tenant: target.head(tenant)[0] for tenant in self.worlds}
        log = getattr(target, "log", None)  # the run folder's event log, embedded or over HTTP
        if self.options.keep_events and log is not None:
            for name, (columns, rows) in snapshot_tables(target, shadows, suite).items():
                log.write_table(name, columns, rows)
            log.write_meta({"seed": str(seed), "scenario": scenario.name})
        target.close()
        wall = time.perf_counter() - wall_start

        kpis.write(out)
        self._write_economy(out)
        # A declared expectation dated after a shortened run is "not reached"
        # (passed None): reported, not a failure.
        passed = all(report.passed for report in invariants.values()) and all(
            item["passed"] is not False for item in expectations
        )
        summary = self._summary(
            out, invariants, expectations, fingerprint, heads, passed, wall, sim_wall, lag
        )
        fraud_summary = out / "fraud_summary.json"
        if fraud_summary.is_file():  # written by models.fraud's finish hook
            summary["fraud"] = json.loads(fraud_summary.read_text())
        charts = draw_charts(kpis.rows, kpis.rejection_rows, out / "charts")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (out / "manifest.json").write_text(
            json.dumps(self._manifest(wall, sim_wall), indent=2, default=str) + "\n"
        )
        write_report(summary, charts, out / "report.md")
        return RunOutcome(passed, summary, out, charts)

    # ------------------------------------------------------------------ economy

    def _start_economy(self, env: Any, clock: VirtualClock, streams: RandomStreams) -> Economy:
        """One economy for all tenants; each month moves jobs and wages with it."""
        economy = Economy(self.scenario.economy, streams.stream("economy"), self.scenario.start)
        labour = {tenant: LabourForce() for tenant in self.worlds}
        self.macro_rows: list[MacroMonth] = []
        self.labour_rows: list[tuple[Any, ...]] = []
        self.series: dict[str, dict[tuple[str, date], Any]] = {
            name: {}
            for name in (
                "cash_rate",
                "unemployment",
                "inflation",
                "house_price_index",
                "member_unemployment",
            )
        }

        def on_month(month: MacroMonth) -> None:
            first = not self.macro_rows
            self.macro_rows.append(month)
            for name in ("cash_rate", "unemployment", "inflation", "house_price_index"):
                self.series[name][("all", month.month)] = getattr(month, name)
            for tenant, world in self.worlds.items():
                change = labour[tenant].step(
                    world.members, world.behaviour, world.rng("lifecycle"), month.unemployment / 100
                )
                if not first:
                    grow_wages(world.members, world.behaviour, month.inflation)
                    grow_prices(world.members, month.inflation)
                self.series["member_unemployment"][(tenant, month.month)] = round(
                    change.unemployment_rate, 6
                )
                self.labour_rows.append(
                    (
                        month.month.isoformat(),
                        tenant,
                        change.labour_force,
                        change.unemployed,
                        change.lost_jobs,
                        change.found_jobs,
                        round(change.unemployment_rate, 6),
                    )
                )

        economy.on_month(on_month)
        env.process(economy.process(env, clock))
        return economy

    def _write_economy(self, out: Path) -> None:
        """macro.csv (the economy by month) and labour.csv (members' jobs by month)."""
        with (out / "macro.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(
                ["month", "regime", "cash_rate", "unemployment", "inflation", "house_price_index"]
            )
            for m in self.macro_rows:
                writer.writerow(
                    [
                        m.month.isoformat(),
                        m.regime,
                        round(m.cash_rate, 4),
                        round(m.unemployment, 4),
                        round(m.inflation, 4),
                        round(m.house_price_index, 4),
                    ]
                )
        with (out / "labour.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(
                [
                    "month",
                    "tenant_id",
                    "labour_force",
                    "unemployed",
                    "lost_jobs",
                    "found_jobs",
                    "unemployment_rate",
                ]
            )
            writer.writerows(self.labour_rows)

    # ------------------------------------------------------------------ stream + counters

    def _tap(self, tenant_id: str, events: list[SealedEvent]) -> None:
        """Learn assigned ids and actual deposits from the platform's event stream.

        Member deposits are the balances of members' deposit accounts (everyday,
        savings, term deposits); loan and credit card accounts are what members
        owe, so the tap learns them from `AccountOpened` and leaves them out.
        """
        world = self.worlds.get(tenant_id)
        if world is None:
            return
        world.today.events += len(events)
        awaiting = world.awaiting
        not_deposits = world.not_deposits
        deposits = 0
        for sealed in events:
            event = sealed.event
            payload = event.payload
            if type(payload) is BalanceUpdatedPayload:
                account_id = payload.account_id
                if not account_id.startswith("GL_") and account_id not in not_deposits:
                    deposits += payload.delta_cents
                continue
            event_type = event.event_type
            if event_type == "AccountOpened" and payload["productType"] in NOT_DEPOSITS:
                not_deposits.add(event.entity_id)
            if awaiting and event.causation_id in awaiting:
                if event_type == "CustomerCreated":
                    _kind, index = awaiting[event.causation_id]
                    world.customer_ids[index] = event.entity_id
                elif event_type == "AccountOpened":
                    kind, index = awaiting[event.causation_id]
                    if kind == "transaction":
                        world.transaction_accounts[index] = event.entity_id
                    else:
                        world.savings_accounts[index] = event.entity_id
        world.deposits_cents += deposits

    def _count(
        self, tenant_id: str, envelopes: Sequence[Envelope], results: Sequence[CommandResult]
    ) -> None:
        world = self.worlds.get(tenant_id)
        if world is None:
            return
        today = world.today
        today.commands += len(envelopes)
        for envelope, result in zip(envelopes, results, strict=True):
            if result.status == "ACCEPTED":
                if envelope.command_type == "PostEntry":
                    today.entries += 1
                    today.postings += len(envelope.payload.legs)
            else:
                today.rejections[result.rule or "UNKNOWN"] += 1

    def _close_counters(self, world: TenantWorld) -> None:
        totals, today = world.totals, world.today
        totals.commands += today.commands
        totals.entries += today.entries
        totals.postings += today.postings
        totals.events += today.events
        totals.rejections.update(today.rejections)
        world.today = type(today)()

    def _day_close(
        self,
        env: Any,
        clock: VirtualClock,
        target: Target,
        suite: InvariantSuite,
        kpis: KpiRecorder,
        progress: _Progress,
    ) -> Any:
        """At 23:59:59 each day: KPIs, idempotency probes, progress."""
        day = self.scenario.start
        while day < self.scenario.end:
            close_at = clock.day_start(day) + clock.day_length(day) - 1
            if close_at > env.now:
                yield env.timeout(close_at - env.now)
            for tenant, world in self.worlds.items():
                today = world.today
                kpis.add_day(
                    KpiRow(
                        date=day,
                        tenant_id=tenant,
                        members=world.active_members(),
                        accounts=target.accounts(tenant, limit=1)["total"],
                        deposits_cents=world.deposits_cents,
                        entries=today.entries,
                        postings=today.postings,
                        events=today.events,
                        commands=today.commands,
                        rejections=sum(today.rejections.values()),
                    )
                )
                kpis.add_rejections(day, tenant, today.rejections)
                self._close_counters(world)
            for hook in self.context.day_hooks:
                hook(day)
            suite.probe_idempotency(target)
            gc_checkpoint()
            progress.day_done(day)
            day += timedelta(days=1)

    # ------------------------------------------------------------------ expectations

    def _expectations(
        self,
        target: Target,
        shadows: dict[str, dict[str, int]],
        replays: dict[str, dict[str, int]],
    ) -> list[dict[str, Any]]:
        """Expected (twin) beside actual (platform), per tenant, exact to the cent."""
        items: list[dict[str, Any]] = []
        for tenant, world in self.worlds.items():
            shadow = shadows[tenant]
            replay = replays[tenant]
            replay_differs = [
                account
                for account in set(shadow) | set(replay)
                if shadow.get(account, 0) != replay.get(account, 0)
            ]
            items.append(
                {
                    "name": "shadow book equals event replay (all accounts incl. GL, cents)",
                    "tenant": tenant,
                    "expected": sum(abs(cents) for cents in shadow.values()),
                    "actual": sum(abs(cents) for cents in replay.values()),
                    "passed": not replay_differs,
                    "detail": f"{len(replay)} accounts replayed; {len(replay_differs)} differ"
                    + (f"; first differing {sorted(replay_differs)[0]}" if replay_differs else ""),
                }
            )
            actual = read_model_balances(target, tenant)
            differing = [
                account for account, cents in actual.items() if shadow.get(account, 0) != cents
            ]
            missing = [
                account
                for account in shadow
                if not account.startswith("GL_") and account not in actual
            ]
            expected_total = sum(
                cents for account, cents in shadow.items() if not account.startswith("GL_")
            )
            items.append(
                {
                    "name": "shadow book equals read model (member deposits, cents)",
                    "tenant": tenant,
                    "expected": expected_total,
                    "actual": sum(actual.values()),
                    "passed": not differing and not missing,
                    "detail": f"{len(actual)} accounts compared; {len(differing)} differ, "
                    f"{len(missing)} missing"
                    + (f"; first differing {differing[0]}" if differing else ""),
                }
            )
            members = target.customers(tenant, limit=1)["total"]
            items.append(
                {
                    "name": "members onboarded",
                    "tenant": tenant,
                    "expected": world.totals.members_joined,
                    "actual": members,
                    "passed": members == world.totals.members_joined,
                    "detail": f"{world.totals.onboarding_refused} refused at onboarding",
                }
            )
            totals = world.totals
            platform_refusals = totals.rejections.get("OVERDRAFT_LIMIT", 0)
            items.append(
                {
                    "name": "insufficient-funds refusals predicted by the shadow book",
                    "tenant": tenant,
                    "expected": totals.predicted_rejections,
                    "actual": platform_refusals,
                    "passed": totals.prediction_misses == 0
                    and platform_refusals == totals.predicted_rejections,
                    "detail": f"{totals.prediction_misses} predictions missed",
                }
            )
            items.append(self._card_expectation(tenant, world))
        return items

    @staticmethod
    def _card_expectation(tenant: str, world: TenantWorld) -> dict[str, Any]:
        totals = world.totals
        days = totals.card_member_days
        if days == 0:
            return {
                "name": "mean card spend attempted per member-day (cents)",
                "tenant": tenant,
                "expected": None,
                "actual": None,
                "passed": True,
                "detail": "no member-days simulated",
            }
        expected = totals.card_expected_cents / days
        observed = totals.card_spend_cents / days
        sigma = math.sqrt(totals.card_expected_variance) / days
        return {
            "name": "mean card spend attempted per member-day (cents)",
            "tenant": tenant,
            "expected": round(expected, 2),
            "actual": round(observed, 2),
            "passed": abs(observed - expected) <= Z_999 * sigma,
            "detail": f"drawn card spend (refused ones included) vs the analytic mean; "
            f"99.9% band +/- {Z_999 * sigma:.2f} over {days} member-days",
        }

    # ------------------------------------------------------------------ outputs

    def _summary(
        self,
        out: Path,
        invariants: dict[str, Any],
        expectations: list[dict[str, Any]],
        fingerprint: dict[str, str],
        heads: dict[str, int],
        passed: bool,
        wall: float,
        sim_wall: float,
        lag: LagMonitor,
    ) -> dict[str, Any]:
        scenario = self.scenario
        tenants: dict[str, Any] = {}
        member_days = postings = events = 0
        for tenant, world in self.worlds.items():
            totals = world.totals
            member_days += totals.member_days
            postings += totals.postings
            events += totals.events
            tenants[tenant] = {
                "members": world.totals.members_joined,
                "accounts": sum(1 for a in world.transaction_accounts if a)
                + sum(1 for a in world.savings_accounts if a),
                "deposits_cents": world.deposits_cents,
                "entries": totals.entries,
                "postings": totals.postings,
                "events": totals.events,
                "commands": totals.commands,
                "rejections": dict(sorted(totals.rejections.items())),
                "head_seq": heads[tenant],
            }
        rate = (lambda n: round(n / sim_wall, 1)) if sim_wall > 0 else (lambda n: None)
        warp = self.options.warp
        return {
            "scenario": {
                "name": scenario.name,
                "hash": scenario.fingerprint(),
                "source": self.options.scenario_source,
                "start": scenario.start.isoformat(),
                "days": scenario.duration_days,
                "scale": scenario.scale,
            },
            "seed": self.seed,
            "passed": passed,
            "fingerprint": fingerprint,
            "invariants": {name: report.to_dict() for name, report in invariants.items()},
            "expectations": expectations,
            "tenants": tenants,
            "timings": {
                "wall_s": round(wall, 3),
                "simulation_wall_s": round(sim_wall, 3),
                "simulated_days": scenario.duration_days,
                "member_days_per_s": rate(member_days),
                "postings_per_s": rate(postings),
                "events_per_s": rate(events),
                "warp": "max" if warp is None else warp,
                "lag": lag.summary(),
            },
            "run": {"command": self.options.command_line, "out": str(out)},
        }

    def _manifest(self, wall: float, sim_wall: float) -> dict[str, Any]:
        versions = {}
        for package in ("simpy", "numpy", "msgspec", "faker", "holidays", "pydantic"):
            try:
                versions[package] = package_metadata.version(package)
            except package_metadata.PackageNotFoundError:
                versions[package] = None
        return {
            "scenario": json.loads(self.scenario.canonical_json()),
            "scenario_hash": self.scenario.fingerprint(),
            "seed": self.seed,
            "target": getattr(self, "target_name", "embedded"),
            "warp": "max" if self.options.warp is None else self.options.warp,
            "keep_events": "all" if self.options.keep_events else "none",
            "python": sys.version.split()[0],
            "platform": python_platform.platform(),
            "versions": versions,
            "timings": {"wall_s": round(wall, 3), "simulation_wall_s": round(sim_wall, 3)},
            "command": self.options.command_line,
        }


def _prepare_folder(out: Path, force: bool) -> Path:
    """Refuse to mix runs: an existing non-empty folder needs --force."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise RunFolderError(
                f"{out}: folder is not empty; choose another --out or pass --force to replace it"
            )
        try:
            shutil.rmtree(out)
        except OSError as exc:
            raise RunFolderError(f"{out}: cannot replace the run folder ({exc.strerror})") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{out}: cannot create the run folder ({exc.strerror})") from None
    return out


class _Progress:
    """A progress bar over simulated days: date and throughput (stderr)."""

    def __init__(self, scenario: Scenario, enabled: bool, worlds: dict[str, TenantWorld]) -> None:
        self.worlds = worlds
        self.bar = None
        self.started = time.perf_counter()
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=scenario.duration_days,
                unit="day",
                desc=scenario.name,
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def day_done(self, day: date) -> None:
        if self.bar is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        postings = sum(w.totals.postings for w in self.worlds.values())
        self.bar.set_postfix_str(f"{day.isoformat()} {postings / elapsed:,.0f} postings/s")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["RunFolderError", "RunOptions", "RunOutcome", "Twin"]
