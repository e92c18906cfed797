"""`twin`: the command line of the CU Digital Twin.

Exit codes: 0 when every invariant and expectation holds, 1 when any breaks
(the report says which and where), 2 on bad input (a scenario error, a bad
option, an unusable folder), with a message that names the file, field or
line. Nothing is written when the input is bad.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from turingcore.money import cents_text

app = typer.Typer(
    name="twin",
    help="Digital twin of Australian credit unions driving TuringCore-v3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scenario_app = typer.Typer(help="Work with scenario files.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


class KeepEvents(StrEnum):
    all = "all"
    none = "none"


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"twin: error: {message}", err=True)
    raise typer.Exit(code)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _load(path: Path):  # noqa: ANN202 - Scenario, imported lazily to keep --help fast
    from scenarios.loader import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        _fail(str(exc))


@app.command()
def run(
    scenario_file: Annotated[Path, typer.Argument(metavar="SCENARIO", help="scenario YAML")],
    seed: Annotated[int | None, typer.Option(help="root seed (default: the scenario's)")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/NAME-SEED)")] = None,
    warp: Annotated[
        str, typer.Option(help="'max' (as fast as possible) or simulated seconds per second")
    ] = "max",
    days: Annotated[int | None, typer.Option(help="override the scenario's length in days")] = None,
    years: Annotated[int | None, typer.Option(help="override the length in years")] = None,
    scale: Annotated[float | None, typer.Option(help="override member-count scale")] = None,
    keep_events: Annotated[
        KeepEvents, typer.Option(help="keep the event log (needed by verify/replay)")
    ] = KeepEvents.all,
    force: Annotated[bool, typer.Option(help="replace an existing run folder")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    target: Annotated[
        str,
        typer.Option(help="'embedded' (in-process, default) or a TuringCore URL http://HOST:PORT"),
    ] = "embedded",
    token: Annotated[
        list[str] | None,
        typer.Option(help="bearer JWT for a tenant, or @FILE (JSON tenant -> token); repeat"),
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(help="over HTTP, read events from kafka://HOST:PORT instead of the API"),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(help="over HTTP, tenants' batches in flight at once (1-8; order per tenant)"),
    ] = 4,
) -> None:
    """Run a scenario against TuringCore (embedded by default) and write a run folder."""
    from sim.http_target import TargetError
    from sim.twin import RunFolderError, RunOptions, Twin
    from sim.warp import parse_warp

    if days is not None and years is not None:
        _fail("--days and --years: give one of them, not both")
    try:
        warp_value = parse_warp(warp)
    except ValueError as exc:
        _fail(f"--warp: {exc}")
    scenario = _load(scenario_file)
    try:
        scenario = scenario.with_overrides(seed=seed, days=days, years=years, scale=scale)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        _fail(f"{scenario_file}: option overrides are invalid: {problems}")
    if not 1 <= concurrency <= 8:
        _fail(f"--concurrency: must be between 1 and 8, not {concurrency}")
    target_factory = _target_factory(target, token or [], events, scenario, concurrency)
    run_seed = scenario.seed
    folder = out or Path("runs") / f"{scenario.name}-{run_seed}"
    options = RunOptions(
        out_dir=folder,
        warp=warp_value,
        keep_events=keep_events is KeepEvents.all,
        progress=not quiet,
        force=force,
        command_line=shlex.join(["twin", *sys.argv[1:]]),
        scenario_source=str(scenario_file),
    )
    try:
        outcome = Twin(scenario, run_seed, options, target_factory=target_factory).run()
    except RunFolderError as exc:
        _fail(str(exc))
    except TargetError as exc:
        _fail(f"--target {target}: {exc}", code=1)
    summary = outcome.summary
    timings = summary["timings"]
    verdict = "PASS" if outcome.passed else "FAIL"
    typer.echo(f"{verdict}: {outcome.out_dir}/report.md")
    for name, report in summary["invariants"].items():
        mark = "ok  " if report["passed"] else "FAIL"
        typer.echo(f"  {mark} {name} (examined {report['examined']:,})")
    for item in summary["expectations"]:
        if item["passed"] is False:
            typer.echo(
                f"  FAIL expectation {item['name']} [{item.get('tenant')}]: "
                f"expected {item['expected']}, actual {item['actual']}"
            )
        elif item["passed"] is None:
            typer.echo(f"  not reached: {item['name']} [{item.get('tenant')}]: {item['detail']}")
    typer.echo(
        f"  {_plural(summary['scenario']['days'], 'simulated day')} in {timings['wall_s']:.1f} s; "
        f"{timings['postings_per_s'] or 0:,.0f} postings/s, "
        f"{timings['events_per_s'] or 0:,.0f} events/s"
    )
    raise typer.Exit(0 if outcome.passed else 1)


def _target_factory(
    target: str, tokens: list[str], events: str | None, scenario, concurrency: int = 4
):  # noqa: ANN001, ANN202 - lazily imported types
    """The Target factory for `--target` (None: the embedded default); exit 2 on a bad option."""
    from urllib.parse import urlparse

    if target == "embedded":
        if tokens or events:
            _fail("--token and --events need --target http://HOST:PORT")
        return None
    url = urlparse(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        _fail(f"--target: {target!r} is neither 'embedded' nor an http(s)://HOST:PORT URL")
    from sim.http_target import HttpTarget, TokenBook

    try:
        book = TokenBook.from_options(tokens)
    except ValueError as exc:
        _fail(f"--token: {exc}")
    missing = [t.id for t in scenario.tenants if t.id not in book.by_tenant]
    if missing:
        _fail(f"--token: no token for tenant(s) {', '.join(missing)} of the scenario")
    feed = None
    if events is not None:
        from sim.kafka_feed import KafkaEventFeed
        from turingcore.topics import parse_source

        try:
            bootstrap = parse_source(events)
        except ValueError as exc:
            _fail(f"--events: {exc}")

        def feed(http_target: HttpTarget) -> KafkaEventFeed:
            return KafkaEventFeed(bootstrap)

    base = target.rstrip("/")
    return lambda log: HttpTarget(base, book, log, feed, concurrency=concurrency)


def _source(
    run_dir: Path | None, source: str | None, kafka_only: dict[str, object]
) -> tuple[Path | None, str | None]:
    """(run folder, kafka bootstrap): exactly one of them, from RUN_DIR or --source."""
    from turingcore.topics import parse_source

    if run_dir is not None and source is not None:
        _fail("give a RUN_DIR or --source, not both")
    if source is None and run_dir is None:
        _fail("give a RUN_DIR or --source kafka://HOST:PORT")
    if source is not None and source.startswith("kafka://"):
        try:
            return None, parse_source(source)
        except ValueError as exc:
            _fail(f"--source: {exc}")
    for option, value in kafka_only.items():
        if value:
            _fail(f"{option} needs --source kafka://HOST:PORT")
    return (run_dir if run_dir is not None else Path(str(source))), None


def _print_reports(reports: dict) -> bool:  # noqa: ANN001 - name -> InvariantReport
    passed = True
    for name, report in reports.items():
        data = report.to_dict()
        mark = "ok  " if data["passed"] else "FAIL"
        typer.echo(f"{mark} {name}: examined {data['examined']:,}")
        if not data["passed"]:
            passed = False
            examples = data["counterexamples"]
            typer.echo(f"     {examples['count']} counterexample(s); first: {examples['first']}")
    return passed


@app.command()
def verify(
    run_dir: Annotated[
        Path | None, typer.Argument(metavar="[RUN_DIR]", help="a run folder")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="kafka://HOST:PORT: check the tenants' topics (or a run folder)"),
    ] = None,
    tenant_id: Annotated[
        list[str] | None,
        typer.Option("--tenant-id", help="with kafka://: only these tenants (repeat)"),
    ] = None,
    fingerprint: Annotated[
        Path | None,
        typer.Option(help="with kafka://: a run's summary.json the topics' heads must equal"),
    ] = None,
) -> None:
    """Re-check all five invariants offline: from a run folder, or from the Kafka topics."""
    folder, bootstrap = _source(
        run_dir, source, {"--tenant-id": tenant_id, "--fingerprint": fingerprint}
    )
    if bootstrap is not None:
        _verify_topics(bootstrap, tenant_id or None, fingerprint)
    from analysis.verify import VerifyError, verify_run

    try:
        reports = verify_run(folder)
    except VerifyError as exc:
        _fail(str(exc))
    passed = _print_reports(reports)
    typer.echo("PASS" if passed else "FAIL")
    raise typer.Exit(0 if passed else 1)


def _verify_topics(bootstrap: str, tenants: list[str] | None, fingerprint: Path | None) -> None:
    from analysis.kafka_verify import FULL, TOPIC_SCOPE, verify_topics
    from analysis.verify import VerifyError, _load_fingerprint
    from turingcore.topics import KafkaSourceError

    expected = None
    if fingerprint is not None:
        try:
            expected = _load_fingerprint(fingerprint)
        except VerifyError as exc:
            _fail(f"--fingerprint: {exc}")
    try:
        outcome = verify_topics(bootstrap, tenants, expected)
    except KafkaSourceError as exc:
        _fail(str(exc))
    typer.echo(
        f"source kafka://{bootstrap}: topics ledger_events.<tenant>, read from offset 0 "
        "(assigned, no consumer group)"
    )
    for topic in outcome.topics:
        seq, head = topic.head
        typer.echo(
            f"  {topic.tenant_id}: {topic.events:,} events ({topic.messages:,} messages; "
            f"{topic.duplicates:,} copies dropped, {topic.held_back:,} held back), "
            f"head seq {seq} {head}"
        )
    passed = True
    for name, report in outcome.reports.items():
        data = report.to_dict()
        scope, checked = TOPIC_SCOPE[name]
        mark = "ok  " if data["passed"] else "FAIL"
        part = "" if scope == FULL else " (in part)"
        typer.echo(f"{mark} {name}{part}: examined {data['examined']:,}")
        typer.echo(f"     checked: {checked}")
        if not data["passed"]:
            passed = False
            examples = data["counterexamples"]
            typer.echo(f"     {examples['count']} counterexample(s); first: {examples['first']}")
    partial = [name for name, (scope, _checked) in TOPIC_SCOPE.items() if scope != FULL]
    typer.echo(
        f"{'PASS' if passed else 'FAIL'} from the topics alone "
        f"({', '.join(partial)}: only what the topics carry, see 'checked')"
    )
    raise typer.Exit(0 if passed else 1)


@app.command("replay-events")
def replay_events(
    run_dir: Annotated[
        Path | None, typer.Argument(metavar="[RUN_DIR]", help="a run folder")
    ] = None,
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="tenant to rebuild")] = "",
    source: Annotated[
        str | None,
        typer.Option(help="kafka://HOST:PORT: rebuild from the tenant's topic (or a run folder)"),
    ] = None,
    from_timestamp: Annotated[
        str | None, typer.Option(help="window start, ISO 8601 with offset")
    ] = None,
    to_timestamp: Annotated[
        str | None, typer.Option(help="window end, ISO 8601 with offset")
    ] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write balances to CSV")] = None,
) -> None:
    """Rebuild one tenant's balances from its events alone (a run folder or its Kafka topic)."""
    from analysis.replay import ReplayError, parse_timestamp, replay_tenant

    if not tenant_id:
        _fail("--tenant-id: which tenant to rebuild")
    folder, bootstrap = _source(run_dir, source, {})
    try:
        start = parse_timestamp(from_timestamp, "--from-timestamp")
        end = parse_timestamp(to_timestamp, "--to-timestamp")
        if start and end and start > end:
            _fail("--from-timestamp is after --to-timestamp")
        if csv_out is not None and not csv_out.parent.is_dir():
            _fail(f"--csv: cannot write {csv_out}: {csv_out.parent} is not a folder")
        if bootstrap is not None:
            from analysis.kafka_verify import replay_topic
            from turingcore.topics import KafkaSourceError

            try:
                replay = replay_topic(bootstrap, tenant_id, start, end)
            except KafkaSourceError as exc:
                _fail(str(exc))
        else:
            replay = replay_tenant(folder, tenant_id, start, end)
    except ReplayError as exc:
        _fail(str(exc))
    members = [a for a in replay.accounts if a.customer_id is not None]
    typer.echo(
        f"{replay.tenant_id}: {replay.events_applied:,} events applied, "
        f"head seq {replay.last_seq}, hash {replay.head_hash}"
    )
    typer.echo(
        f"member accounts {len(members):,}; deposits at end "
        f"{cents_text(sum(a.balance_at_end for a in members))} AUD; change in window "
        f"{cents_text(sum(a.change for a in members))} AUD"
    )
    for problem in replay.problems[:10]:
        typer.echo(f"chain problem: {problem}", err=True)
    if csv_out is not None:
        with csv_out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["account_id", "customer_id", "product_code", "start_cents", "end_cents"]
            )
            for account in replay.accounts:
                writer.writerow(
                    [
                        account.account_id,
                        account.customer_id or "",
                        account.product_code,
                        account.balance_at_start,
                        account.balance_at_end,
                    ]
                )
        typer.echo(f"balances written to {csv_out}")
    if replay.problems:
        typer.echo(
            f"FAIL: the chain does not verify ({len(replay.problems)} problems); "
            "the balances above come from unverified events",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR", help="two or more run folders")
    ],
    out: Annotated[
        Path | None, typer.Option(help="output folder (default runs/compare-RUN1-vs-RUN2)")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="legend label of each run, in order (repeat)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace a comparison in a non-empty folder")] = False,
) -> None:
    """Draw runs side by side (PNG panels) and write a compare.md page."""
    from analysis.compare import CompareError, compare_runs, default_out_dir

    try:
        page = compare_runs(run_dirs, out or default_out_dir(run_dirs), label or None, force=force)
    except CompareError as exc:
        _fail(str(exc))
    typer.echo(str(page))


@scenario_app.command("check")
def scenario_check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="scenario YAML")],
) -> None:
    """Validate a scenario and print its resolved form (every default filled in)."""
    from scenarios.loader import resolved_yaml

    scenario = _load(file)
    typer.echo(resolved_yaml(scenario), nl=False)
    typer.echo(f"# ok: {scenario.duration_days} days, {len(scenario.tenants)} tenants", err=True)


@app.command()
def params(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every behaviour parameter's default, with its public source."""
    from models.macro import parameter_rows
    from models.params import SOURCES, Behaviour

    defaults = Behaviour().model_dump(mode="json")
    rows = []
    for path, source in SOURCES.items():
        value = defaults
        for part in path.split("."):
            value = value[part]
        rows.append({"parameter": f"behaviour.{path}", "default": value, "source": source})
    for path, value, source in parameter_rows():
        rows.append({"parameter": f"economy.{path}", "default": value, "source": source})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(row["parameter"]) for row in rows)
    for row in rows:
        typer.echo(f"{row['parameter']:<{width}}  {row['default']!s:<44}  {row['source']}")


@app.command()
def stack(
    scenario_file: Annotated[
        Path, typer.Option("--scenario", help="scenario whose tenants get tokens")
    ] = Path("scenarios/demo.yaml"),
    folder: Annotated[
        Path, typer.Option("--dir", help="stack folder: secret, tokens, logs")
    ] = Path("runs/stack"),
    pg: Annotated[
        str, typer.Option(help="PostgreSQL admin DSN (creates and migrates the database)")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    database: Annotated[str, typer.Option(help="database for the store")] = "turingcore",
    port: Annotated[int | None, typer.Option(help="service port (default: a free one)")] = None,
    broker_port: Annotated[
        int | None, typer.Option(help="Kafka broker port (default: a free one)")
    ] = None,
    check: Annotated[
        bool, typer.Option(help="start everything, print the twin run line, then stop")
    ] = False,
) -> None:
    """Start the local real path: durable broker, PostgreSQL store, service, relay.

    Prints the `twin run` line that drives it; Ctrl-C stops everything.
    """
    from sim.stack import StackError, local_stack, wait_for_interrupt

    scenario = _load(scenario_file)
    tenants = [tenant.id for tenant in scenario.tenants]

    def say(line: str) -> None:
        typer.echo(line, err=True)

    try:
        with local_stack(
            folder,
            tenants,
            scenario_file,
            admin_dsn=pg,
            database=database,
            port=port,
            broker_port=broker_port,
            echo=say,
        ) as info:
            say(f"ready: service {info.service_url}, broker {info.kafka_url}, database {database}")
            say("drive it with:")
            typer.echo(info.run_line)
            if check:
                return
            say("(Ctrl-C stops the stack)")
            wait_for_interrupt()
            say("stopping ...")
    except StackError as exc:
        _fail(str(exc))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
