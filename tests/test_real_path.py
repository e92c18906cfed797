"""The real path end to end: the twin over HTTP, PostgreSQL with RLS, the outbox relay, Kafka.

Every part is real: the service in a thread on the PostgreSQL store (a fresh
database per test), the relay publishing the store's outbox to a Tansu
broker of the test's own, and the twin following the tenant topics
(`--events kafka://`), so the five invariants run on what the broker
delivered. The embedded run of the same scenario and seed is the reference:
the chain heads must be equal, byte for byte.

The outage tests kill the broker process mid-run: on durable storage
(S3 on a local moto server) it comes back with its topics; in memory it
comes back empty and the relay republishes from the outbox (the database is
the system of record). Either way the run passes, and each tenant's chain
verifies from its topic alone with the database's head.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from conftest import SMALL_SEED, SmallRun, run_twin
from http_server import running
from kafka_fixtures import wait_for
from pg_fixtures import PgDatabase
from token_builders import AUDIENCE, ISSUER, SECRET, claims_for
from typer.testing import CliRunner

from scenarios.schema import Scenario
from sim.cli import app as twin_app
from sim.http_target import HttpTarget, TokenBook
from sim.kafka_feed import KafkaEventFeed
from turingcore.auth import AuthConfig
from turingcore.broker import TansuBroker
from turingcore.pgstore import PostgresLedger, PostgresOutbox
from turingcore.relay import OutboxRelay
from turingcore.service import create_app
from turingcore.topics import TopicReader, verify_topic

TENANTS = ("cu-a", "cu-b")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    """A running real path: the service's URL, its store, the relay, the broker."""

    url: str
    ledger: PostgresLedger
    relay: OutboxRelay
    broker: TansuBroker


@contextmanager
def real_stack(database: PgDatabase, broker: TansuBroker) -> Iterator[Stack]:
    """Service on PostgreSQL + outbox relay to `broker`, for one test."""
    ledger = PostgresLedger(database.dsn)
    outbox = PostgresOutbox(database.dsn)
    relay = OutboxRelay(
        outbox,
        broker.bootstrap,
        poll_interval_s=0.005,
        backoff_max_s=0.5,
        message_timeout_s=5.0,
        check_interval_s=1.0,
    )
    app = create_app(ledger, AuthConfig(SECRET, ISSUER, AUDIENCE))
    relay.start()
    try:
        with running(app) as url:
            yield Stack(url, ledger, relay, broker)
    finally:
        relay.stop()
        relay.close()
        ledger.close()


def tokens(tenants: tuple[str, ...] = TENANTS) -> TokenBook:
    return TokenBook([jwt.encode(claims_for(t), SECRET, algorithm="HS256") for t in tenants])


def run_on(stack: Stack, scenario: Scenario, out: Path) -> SmallRun:
    """The twin over HTTP with its events read from the tenants' topics."""

    def factory(log: Path | None) -> HttpTarget:
        return HttpTarget(
            stack.url,
            tokens(),
            log,
            feed=lambda _target: KafkaEventFeed(stack.broker.bootstrap, timeout_s=90),
        )

    return run_twin(scenario, out, SMALL_SEED, target_factory=factory)


def assert_topics_are_the_database(stack: Stack, tenants: tuple[str, ...] = TENANTS) -> None:
    """Each tenant's topic verifies from genesis, alone, and ends at the database's head."""
    wait_for(
        lambda: (
            all(stack.relay.outbox.head(t)[0] == stack.ledger.head(t)[0] for t in tenants)
            and not stack.relay.outbox.tenants_with_unsent()
        ),
        60,
        "the relay to drain the outbox",
    )
    with TopicReader(stack.broker.bootstrap) as reader:
        for tenant in tenants:
            verdict = verify_topic(stack.broker.bootstrap, tenant, reader=reader)
            assert verdict.verified, verdict.to_dict()
            assert verdict.head == stack.ledger.head(tenant)


@pytest.fixture
def short_scenario(small_scenario: Scenario) -> Scenario:
    """The small scenario cut to two days (the outage runs)."""
    return small_scenario.with_overrides(days=2)


@pytest.fixture
def short_embedded(short_scenario: Scenario, tmp_path: Path) -> SmallRun:
    """The two-day run on the embedded platform: the reference."""
    return run_twin(short_scenario, tmp_path / "embedded", SMALL_SEED)


# --------------------------------------------------------------------------- parity


@pytest.mark.slow
def test_the_small_scenario_over_the_real_path_matches_embedded(
    fresh_pg_database: PgDatabase,
    make_broker: Callable[..., TansuBroker],
    small_run: SmallRun,
    small_scenario: Scenario,
    tmp_path: Path,
) -> None:
    """HTTP + PostgreSQL + Kafka: all five invariants pass on the stream, heads equal embedded."""
    with real_stack(fresh_pg_database, make_broker()) as stack:
        run = run_on(stack, small_scenario, tmp_path / "run")
        assert {n: r["passed"] for n, r in run.summary["invariants"].items()} == dict.fromkeys(
            small_run.summary["invariants"], True
        )
        assert run.outcome.passed
        assert run.summary["fingerprint"] == small_run.summary["fingerprint"]
        assert_topics_are_the_database(stack)


@pytest.mark.slow
def test_demo_yaml_through_the_cli_gives_the_embedded_fingerprints(
    fresh_pg_database: PgDatabase, make_broker: Callable[..., TansuBroker], tmp_path: Path
) -> None:
    """`twin run scenarios/demo.yaml --target ... --token @file --events kafka://...` (one day).

    The README's demo (four credit unions, 2,300 members) through the CLI,
    against the real path: exit 0, and the same fingerprints as the
    embedded run of the same command.
    """
    demo = str(ROOT / "scenarios" / "demo.yaml")
    runner = CliRunner()
    embedded = runner.invoke(
        twin_app, ["run", demo, "--days", "1", "--quiet", "--out", str(tmp_path / "emb")]
    )
    assert embedded.exit_code == 0, embedded.output
    expected = json.loads((tmp_path / "emb" / "summary.json").read_text())["fingerprint"]
    tenants = tuple(expected)
    token_file = tmp_path / "tokens.json"
    token_file.write_text(json.dumps(tokens(tenants).by_tenant))
    with real_stack(fresh_pg_database, make_broker()) as stack:
        over_wire = runner.invoke(
            twin_app,
            [
                "run", demo, "--days", "1", "--quiet", "--out", str(tmp_path / "real"),
                "--target", stack.url, "--token", f"@{token_file}",
                "--events", stack.broker.url,
            ],
        )  # fmt: skip
        assert over_wire.exit_code == 0, over_wire.output
        summary = json.loads((tmp_path / "real" / "summary.json").read_text())
        assert summary["fingerprint"] == expected
        manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
        assert manifest["target"] == "http"
        assert_topics_are_the_database(stack, tenants)


# --------------------------------------------------------------------------- outages


def _outage(stack: Stack, restart: Callable[[], None], errors: list[BaseException]) -> None:
    """Kill the broker once the relay has published some events; restart it once it noticed."""
    try:
        wait_for(lambda: stack.relay.stats.published > 500, 120, "the relay to publish")
        stack.broker.kill()
        wait_for(lambda: stack.relay.stats.failed_passes > 0, 60, "the relay to see the outage")
        restart()
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        errors.append(exc)


@pytest.mark.slow
@pytest.mark.parametrize("durable", [True, False], ids=["s3-storage", "comes-back-empty"])
def test_a_broker_killed_mid_run_loses_nothing(
    durable: bool,
    fresh_pg_database: PgDatabase,
    make_broker: Callable[..., TansuBroker],
    short_scenario: Scenario,
    short_embedded: SmallRun,
    tmp_path: Path,
) -> None:
    """SIGKILL the broker mid-run and start it again (with its topics, or empty).

    The relay holds the events in the outbox meanwhile and republishes what
    the broker lost; the twin's feed waits and reconnects. The run passes
    with the embedded fingerprints and each topic verifies alone with the
    database's head.
    """
    broker = make_broker(durable=durable)
    errors: list[BaseException] = []
    with real_stack(fresh_pg_database, broker) as stack:
        chaos = threading.Thread(target=_outage, args=(stack, broker.start, errors))
        chaos.start()
        run = run_on(stack, short_scenario, tmp_path / "run")
        chaos.join(120)
        assert not errors, errors
        assert stack.relay.stats.failed_passes > 0  # the outage happened during the run
        assert run.outcome.passed
        assert run.summary["fingerprint"] == short_embedded.summary["fingerprint"]
        assert_topics_are_the_database(stack)
