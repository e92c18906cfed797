"""analysis.kafka_verify and `twin verify/replay-events --source kafka://`: verdicts from topics.

A real run of the small scenario feeds a MemoryOutbox (a listener on the
embedded platform) which the relay publishes to a broker of this module's
own, so its topics are exactly what the platform sealed. Tampered topics
are written raw to brokers of the tests' own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SmallRun
from kafka_fixtures import bodies, encode, produce_raw, rechain, start_or_skip, values
from typer.testing import CliRunner

from analysis.kafka_verify import TOPIC_SCOPE, replay_topic, verify_topics
from analysis.replay import replay_tenant
from scenarios.schema import Scenario
from sim.cli import app
from sim.target import EmbeddedTarget
from turingcore.broker import TansuBroker, free_port
from turingcore.relay import MemoryOutbox, OutboxRelay
from turingcore.topics import BrokerUnreachable, TopicMissing

TENANTS = ("cu-a", "cu-b")
runner = CliRunner()


def twin(*args: str | Path) -> Any:  # noqa: ANN401 - typer's Result
    """Invoke `twin ARGS...` in-process."""
    return runner.invoke(app, [str(arg) for arg in args])


@dataclass(frozen=True)
class RelayedRun:
    """A run of the small scenario whose events were relayed to a broker."""

    run: SmallRun
    outbox: MemoryOutbox
    broker: TansuBroker

    @property
    def fingerprint(self) -> dict[str, str]:
        summary = json.loads((self.run.dir / "summary.json").read_text())
        return {
            t: v["hash"] if isinstance(v, dict) else v for t, v in summary["fingerprint"].items()
        }


@pytest.fixture(scope="module")
def relayed(
    small_scenario: Scenario,
    run_scenario: Callable[..., SmallRun],
    tansu_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RelayedRun]:
    """The small scenario run once with its events also in a MemoryOutbox, relayed."""
    outbox = MemoryOutbox()

    def target(log: Path | None) -> EmbeddedTarget:
        made = EmbeddedTarget(log)
        made.subscribe(outbox.append)
        return made

    folder = tmp_path_factory.mktemp("relayed")
    run = run_scenario(small_scenario, folder / "run", 7, target_factory=target)
    broker = TansuBroker(log_path=folder / "tansu.log", binary=tansu_bin)
    start_or_skip(broker)
    relay = OutboxRelay(outbox, broker.bootstrap)
    relay.run_until_idle(timeout=120)
    relay.close()
    yield RelayedRun(run, outbox, broker)
    broker.stop()


def _events(relayed: RelayedRun, tenant_id: str) -> list[dict[str, Any]]:
    return bodies(values(relayed.outbox, tenant_id))


def _failing(result: Any) -> set[str]:  # noqa: ANN401 - typer's Result
    """The invariants a `twin verify` output marks FAIL."""
    names = set(TOPIC_SCOPE)
    return {
        match.group(1)
        for match in map(re.compile(r"^FAIL (\w+)").match, result.output.splitlines())
        if match and match.group(1) in names
    }


# --------------------------------------------------------------------------- passing


def test_topics_verify_and_their_heads_are_the_run_fingerprint(relayed: RelayedRun) -> None:
    """All five pass from the topics of a clean run; each head equals the run's fingerprint."""
    outcome = verify_topics(relayed.broker.bootstrap, fingerprint=relayed.fingerprint)
    assert outcome.passed, {n: r.to_dict() for n, r in outcome.reports.items() if not r.passed}
    assert [topic.tenant_id for topic in outcome.topics] == list(TENANTS)
    for topic in outcome.topics:
        assert topic.head == relayed.outbox.head(topic.tenant_id)
        assert topic.head[1] == relayed.fingerprint[topic.tenant_id]
        assert topic.events == topic.messages == topic.head[0]
    examined = {name: report.examined for name, report in outcome.reports.items()}
    assert all(count > 0 for count in examined.values()), examined


def test_twin_verify_from_kafka_says_what_the_topics_decide(relayed: RelayedRun) -> None:
    """`twin verify --source kafka://` passes (exit 0), prints each tenant's head and, for
    every invariant, what exactly the topics alone let it check."""
    summary = relayed.run.dir / "summary.json"
    result = twin("verify", "--source", relayed.broker.url, "--fingerprint", summary)
    assert result.exit_code == 0, result.output
    for tenant in TENANTS:
        seq, head = relayed.outbox.head(tenant)
        assert f"{tenant}: {seq:,} events" in result.output
        assert f"head seq {seq} {head}" in result.output
    for name, (scope, checked) in TOPIC_SCOPE.items():
        assert f"ok   {name}{'' if scope == 'full' else ' (in part)'}: examined" in result.output
        assert checked in result.output
    assert "PASS from the topics alone" in result.output


def test_twin_verify_can_pick_tenants(relayed: RelayedRun) -> None:
    """--tenant-id limits the check to the named tenants' topics."""
    result = twin("verify", "--source", relayed.broker.url, "--tenant-id", "cu-b")
    assert result.exit_code == 0, result.output
    assert "  cu-b: " in result.output
    assert "  cu-a: " not in result.output


def test_replay_from_kafka_matches_the_run_folder(relayed: RelayedRun) -> None:
    """The balances rebuilt from a topic are the ones rebuilt from the run folder, in a
    window too; the command prints the same lines."""
    for tenant in TENANTS:
        from_topic = replay_topic(relayed.broker.bootstrap, tenant)
        from_folder = replay_tenant(relayed.run.dir, tenant)
        assert from_topic == from_folder
        assert from_topic.problems == ()
    window = (
        "--from-timestamp",
        "2025-07-02T00:00+10:00",
        "--to-timestamp",
        "2025-07-04T00:00+10:00",
    )
    kafka = twin("replay-events", "--source", relayed.broker.url, "--tenant-id", "cu-a", *window)
    folder = twin("replay-events", relayed.run.dir, "--tenant-id", "cu-a", *window)
    assert kafka.exit_code == folder.exit_code == 0, kafka.output
    assert kafka.output == folder.output


# --------------------------------------------------------------------------- failing


def _staged(
    make_broker: Callable[..., TansuBroker], events_by_tenant: dict[str, list[bytes]]
) -> TansuBroker:
    broker = make_broker()
    for tenant, messages in events_by_tenant.items():
        produce_raw(broker.bootstrap, tenant, messages)
    return broker


def test_a_changed_byte_fails_event_integrity_at_its_seq(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """One amount changed on the topic: exit 1, event_integrity names the tenant and seq."""
    events = _events(relayed, "cu-a")
    entry = next(e for e in events if e["eventType"] == "EntryPosted" and e["seq"] > 100)
    entry["payload"]["legs"][0]["amountCents"] += 100
    broker = _staged(make_broker, {"cu-a": [encode(e) for e in events]})
    result = twin("verify", "--source", broker.url)
    assert result.exit_code == 1
    assert "event_integrity" in _failing(result)
    assert f"'tenant': 'cu-a', 'seq': {entry['seq']}" in result.output


def test_a_rechained_wrong_balance_fails_balance_derivability(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """A platform that sealed a wrong balance: the chain verifies, the fold does not."""
    events = _events(relayed, "cu-b")
    update = next(e for e in events if e["eventType"] == "AccountBalanceUpdated" and e["seq"] > 50)
    update["payload"]["balanceCents"] += 1
    broker = _staged(make_broker, {"cu-b": rechain(events)})
    outcome = verify_topics(broker.bootstrap)
    failing = {name for name, report in outcome.reports.items() if not report.passed}
    assert failing == {"balance_derivability"}
    first = outcome.reports["balance_derivability"].counterexamples.first
    assert first is not None
    assert (first["tenant"], first["seq"]) == ("cu-b", update["seq"])


def test_another_tenants_event_fails_tenant_isolation(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """An event naming cu-b sealed into cu-a's topic is found by isolation."""
    events = _events(relayed, "cu-a")
    stray = dict(events[-1], tenantId="cu-b")
    broker = _staged(make_broker, {"cu-a": rechain([*events[:-1], stray])})
    outcome = verify_topics(broker.bootstrap)
    assert not outcome.reports["tenant_isolation"].passed
    first = outcome.reports["tenant_isolation"].counterexamples.first
    assert first is not None
    assert first["eventTenant"] == "cu-b"


def test_a_command_that_wrote_twice_fails_idempotency(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """The events of one command sealed again later (a replay that wrote): idempotency fails,
    naming the command; every other check still passes."""
    events = _events(relayed, "cu-a")
    repeated = [e for e in events if e["causationId"] == events[-1]["causationId"]]
    seq = events[-1]["seq"]
    again = [
        dict(e, seq=seq + n, eventId=f"{e['eventId']}-again") for n, e in enumerate(repeated, 1)
    ]
    # a command in between, so the repeat is a separate stretch
    between = [dict(events[-1], seq=seq + 1, causationId="cmd-between", eventId="between")]
    again = [dict(e, seq=e["seq"] + 1) for e in again]
    broker = _staged(make_broker, {"cu-a": rechain([*events, *between, *again])})
    outcome = verify_topics(broker.bootstrap)
    failing = {name for name, report in outcome.reports.items() if not report.passed}
    assert "idempotency" in failing
    first = outcome.reports["idempotency"].counterexamples.first
    assert first is not None
    assert first["commandId"] == events[-1]["causationId"]


def test_copies_on_the_topic_are_dropped_and_shown(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """A relay that sent 30 rows twice: the verdict still passes and says 30 copies dropped."""
    messages = values(relayed.outbox, "cu-b")
    broker = _staged(make_broker, {"cu-b": messages[:200] + messages[170:200] + messages[200:]})
    result = twin(
        "verify", "--source", broker.url, "--fingerprint", relayed.run.dir / "summary.json"
    )
    assert result.exit_code == 2  # the run's fingerprint names cu-a too: its topic is missing
    assert "tenant 'cu-a' has no topic" in result.output
    outcome = verify_topics(broker.bootstrap, ["cu-b"], fingerprint=relayed.fingerprint)
    assert outcome.passed
    (topic,) = outcome.topics
    assert topic.duplicates == 30
    assert topic.head == relayed.outbox.head("cu-b")
    plain = twin("verify", "--source", broker.url)
    assert plain.exit_code == 0, plain.output
    assert "30 copies dropped" in plain.output


def test_a_wrong_fingerprint_fails_event_integrity(relayed: RelayedRun, tmp_path: Path) -> None:
    """Heads compared with another run's fingerprint: event_integrity fails for that tenant."""
    summary = json.loads((relayed.run.dir / "summary.json").read_text())
    summary["fingerprint"]["cu-b"] = "0" * 64
    other = tmp_path / "summary.json"
    other.write_text(json.dumps(summary))
    result = twin("verify", "--source", relayed.broker.url, "--fingerprint", other)
    assert result.exit_code == 1
    assert _failing(result) == {"event_integrity"}
    assert "the chain head differs from the run's fingerprint" in result.output


# --------------------------------------------------------------------------- unusable input


def test_unusable_sources_exit_2_with_a_clear_message(
    relayed: RelayedRun, make_broker: Callable[..., TansuBroker]
) -> None:
    """Unreachable broker, unknown tenant, no topics, bad address, conflicting options: exit 2,
    the message names the address, the tenant or the option."""
    address = f"127.0.0.1:{free_port()}"
    cases = [
        (("verify", "--source", f"kafka://{address}"), f"kafka://{address}: no Kafka broker"),
        (
            ("verify", "--source", relayed.broker.url, "--tenant-id", "cu-zz"),
            "tenant 'cu-zz' has no topic ledger_events.cu-zz",
        ),
        (("verify", "--source", make_broker().url), "there are no ledger_events.* topics"),
        (("verify", "--source", "kafka://nohost"), "--source: 'kafka://nohost'"),
        (("verify", relayed.run.dir, "--source", relayed.broker.url), "not both"),
        (("verify",), "give a RUN_DIR or --source"),
        (("verify", relayed.run.dir, "--tenant-id", "cu-a"), "--tenant-id needs --source kafka://"),
        (
            ("replay-events", "--source", relayed.broker.url, "--tenant-id", "cu-zz"),
            "tenant 'cu-zz' has no topic",
        ),
        (("replay-events", "--source", relayed.broker.url), "--tenant-id"),
    ]
    for args, message in cases:
        result = twin(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_the_library_raises_named_errors(relayed: RelayedRun) -> None:
    """The library side: TopicMissing and BrokerUnreachable, not exit codes."""
    with pytest.raises(TopicMissing, match="cu-zz"):
        verify_topics(relayed.broker.bootstrap, ["cu-zz"])
    with pytest.raises(BrokerUnreachable):
        verify_topics(f"127.0.0.1:{free_port()}", timeout=1.0)
