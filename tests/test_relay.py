"""turingcore.relay: MemoryOutbox, and the relay against a real Tansu broker.

Events come from an EmbeddedPlatform whose sink is a MemoryOutbox
(`kafka_fixtures.fed_bank`), so no database is involved. The outage tests
SIGKILL the broker (its own, `make_broker`) while the relay works and start
it again: on S3-on-moto storage (topics survive) and in memory (the broker
comes back empty, a lost cluster). In every case the topic must verify from
the topic alone with the store's head, nothing lost, duplicates only as
copies that the reader drops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_fixtures import bodies, fed_bank, post, produce_raw, values, wait_for
from pg_fixtures import PgDatabase
from platform_builders import Bank, Commands
from typer.testing import CliRunner

from turingcore import cli
from turingcore.broker import TansuBroker, free_port
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH
from turingcore.ledger import OutboxRow, topic_for
from turingcore.pgstore import PostgresLedger, PostgresOutbox
from turingcore.relay import MemoryOutbox, OutboxRelay, RelayError, marked_through
from turingcore.topics import TopicReader, client_config, verify_topic


def _topic(bootstrap: str, tenant_id: str) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every message on the tenant's topic."""
    with TopicReader(bootstrap) as reader:
        return [(message.key, message.value) for message in reader.messages(tenant_id)]


def _assert_topic_is_the_store(bootstrap: str, bank: Bank, outbox: MemoryOutbox) -> int:
    """The topic verifies from genesis to the store's head; returns the duplicates dropped."""
    tenant_id = bank.tenant_id
    verdict = verify_topic(bootstrap, tenant_id)
    assert verdict.verified, verdict.problems[:5]
    assert verdict.head == outbox.head(tenant_id) == bank.head()
    assert verdict.events == bank.head()[0]  # every event once, none lost
    assert outbox.tenants_with_unsent() == []
    return verdict.duplicates


# --------------------------------------------------------------------------- MemoryOutbox


def test_memory_outbox_keeps_rows_in_seq_order_and_marks_them() -> None:
    """Sealed events become unsent rows; marking is a watermark; unmarking reopens rows."""
    bank, outbox = fed_bank("cu-mem", postings=4)
    rows = outbox.rows("cu-mem")
    head_seq = bank.head()[0]
    assert [row.seq for row in rows] == list(range(1, head_seq + 1))
    assert all(isinstance(row, OutboxRow) and row.tenant_id == "cu-mem" for row in rows)
    assert outbox.head("cu-mem") == bank.head()
    assert bodies(row.value for row in rows)[-1]["hash"] == bank.head()[1]
    assert rows[0].entity_id == bodies([rows[0].value])[0]["entityId"]

    assert outbox.tenants_with_unsent() == ["cu-mem"]
    assert outbox.unsent("cu-mem", 3) == rows[:3]
    outbox.mark_sent("cu-mem", 5)
    assert outbox.unsent("cu-mem", 2) == rows[5:7]
    assert outbox.sent_through("cu-mem") == 5
    outbox.mark_sent("cu-mem", 2)  # never backwards
    assert marked_through(outbox, "cu-mem") == 5
    assert outbox.mark_unsent_from("cu-mem", 4) == 2
    assert outbox.unsent("cu-mem", 1) == rows[3:4]
    outbox.mark_sent("cu-mem", head_seq)
    assert outbox.tenants_with_unsent() == []
    assert outbox.unsent("cu-mem") == []
    assert marked_through(outbox, "cu-mem") == head_seq
    with pytest.raises(ValueError, match="cannot mark seq"):
        outbox.mark_sent("cu-mem", head_seq + 1)
    assert outbox.head("cu-unknown") == (0, GENESIS_HASH)


def test_memory_outbox_refuses_a_gap_and_works_as_a_listener() -> None:
    """Appending events out of seq order is refused; as a platform listener it sees everything."""
    outbox = MemoryOutbox()
    platform = EmbeddedPlatform()
    platform.subscribe(outbox.append)
    bank, _unused = fed_bank("cu-listen", postings=2)
    events = []
    bank.platform.subscribe(lambda _tenant, batch: events.extend(batch))
    post(bank, 2)
    with pytest.raises(ValueError, match="does not follow"):
        outbox.append("cu-listen", events[1:])
    assert outbox.rows("cu-listen") == []
    from platform_builders import new_bank

    listened = new_bank(platform, "cu-listen")
    assert outbox.head("cu-listen") == listened.head()


# --------------------------------------------------------------------------- publishing


def test_relay_publishes_in_order_and_marks_sent(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """Every row reaches its tenant's one-partition topic in seq order, key = entityId,
    value = the row's JSON; then it is marked sent; the topic verifies to the store's head."""
    other = tenant_id + "-b"
    bank, outbox = fed_bank(tenant_id, postings=30)
    bank_b, _same = fed_bank(other, postings=12, outbox=outbox)
    relay = OutboxRelay(outbox, kafka_broker.bootstrap, batch_size=17)
    confirmed = relay.run_until_idle(timeout=60)
    relay.close()
    assert confirmed == bank.head()[0] + bank_b.head()[0] == relay.stats.published
    for tenant, store in ((tenant_id, bank), (other, bank_b)):
        rows = outbox.rows(tenant)
        assert _topic(kafka_broker.bootstrap, tenant) == [
            (row.entity_id.encode(), row.value) for row in rows
        ]
        assert outbox.sent_through(tenant) == store.head()[0]
        assert _assert_topic_is_the_store(kafka_broker.bootstrap, store, outbox) == 0
    admin = AdminClient(client_config(kafka_broker.bootstrap))
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[topic_for(tenant_id)].partitions) == 1
    assert relay.stats.failed_passes == 0
    assert relay.stats.republished == 0


def test_background_relay_follows_new_events(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """start(): events sealed while the relay runs reach the topic without being asked."""
    bank, outbox = fed_bank(tenant_id, postings=5)
    with OutboxRelay(outbox, kafka_broker.bootstrap, poll_interval_s=0.02) as relay:
        relay.start()
        for _round in range(5):
            post(bank, 10)
            wait_for(lambda: not outbox.tenants_with_unsent(), 30, "the relay to catch up")
    assert _assert_topic_is_the_store(kafka_broker.bootstrap, bank, outbox) == 0


def test_rows_wait_while_the_broker_is_unreachable(
    caplog: pytest.LogCaptureFixture, tenant_id: str
) -> None:
    """No broker: nothing is marked, the relay says where it could not reach and gives up
    only at its deadline."""
    _bank, outbox = fed_bank(tenant_id, postings=3)
    bootstrap = f"127.0.0.1:{free_port()}"
    relay = OutboxRelay(
        outbox, bootstrap, message_timeout_s=1.0, backoff_max_s=0.2, request_timeout_s=0.5
    )
    with (
        caplog.at_level(logging.WARNING, "turingcore.relay"),
        pytest.raises(RelayError, match="rows still unsent after 2 s"),
    ):
        relay.run_until_idle(timeout=2.0)
    relay.close()
    assert outbox.sent_through(tenant_id) == 0
    assert any(bootstrap in r.message and "retrying in" in r.message for r in caplog.records)
    assert relay.stats.failed_passes >= 1


def test_a_topic_with_several_partitions_is_refused_and_others_flow(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """A tenant whose topic has 4 partitions waits (seq order could not be kept), named in the
    error; another tenant's rows still go out."""
    admin = AdminClient(client_config(kafka_broker.bootstrap))
    admin.create_topics([NewTopic(topic_for(tenant_id), 4, 1)])[topic_for(tenant_id)].result(10)
    _bank, outbox = fed_bank(tenant_id, postings=2)
    fine, _same = fed_bank(tenant_id + "-ok", postings=2, outbox=outbox)
    relay = OutboxRelay(outbox, kafka_broker.bootstrap)
    with pytest.raises(RelayError, match=rf"{tenant_id} has 4 partitions"):
        relay.relay_once()
    relay.close()
    assert outbox.sent_through(tenant_id) == 0
    assert outbox.sent_through(fine.tenant_id) == fine.head()[0]


# --------------------------------------------------------------------------- what can go wrong


def test_a_crash_between_delivery_and_mark_leaves_only_copies(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """A relay that delivered but died before marking: the next relay sends the rows again;
    the reader drops the copies (counted) and the chain and head are the store's."""

    class ForgetfulOutbox(MemoryOutbox):
        forget = True

        def mark_sent(self, tenant: str, through_seq: int) -> None:
            if self.forget:  # the crash: delivered, never marked
                self.forget = False
                return
            super().mark_sent(tenant, through_seq)

    outbox = ForgetfulOutbox()
    bank, _same = fed_bank(tenant_id, postings=10, outbox=outbox)
    first = bank.head()[0]
    OutboxRelay(outbox, kafka_broker.bootstrap).relay_once()
    assert outbox.sent_through(tenant_id) == 0
    post(bank, 5)
    relay = OutboxRelay(outbox, kafka_broker.bootstrap)
    relay.run_until_idle(timeout=60)
    relay.close()
    assert _assert_topic_is_the_store(kafka_broker.bootstrap, bank, outbox) == first


def test_an_unexpected_offset_stops_the_marking_and_audits(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """Another writer slips a message in: the relay's delivery offsets no longer follow its
    checkpoint, so it marks nothing past that point, audits the topic, and publishes again;
    every event is on the topic and the store's head verifies."""
    bank, outbox = fed_bank(tenant_id, postings=5)
    relay = OutboxRelay(outbox, kafka_broker.bootstrap)
    relay.run_until_idle(timeout=60)
    marked = outbox.sent_through(tenant_id)
    produce_raw(kafka_broker.bootstrap, tenant_id, values(outbox, tenant_id)[-1:], create=False)
    post(bank, 5)
    with pytest.raises(RelayError, match="not at the next offset"):
        relay.relay_once()
    assert outbox.sent_through(tenant_id) == marked
    audits = relay.stats.audits
    relay.run_until_idle(timeout=60)
    relay.close()
    assert relay.stats.audits > audits
    assert _assert_topic_is_the_store(kafka_broker.bootstrap, bank, outbox) >= 1


def _feed_while(
    bank: Bank,
    outbox: MemoryOutbox,
    stop: threading.Event,
    errors: list[BaseException],
    max_lag: int = 1500,
) -> None:
    """Keep sealing events (a busy platform) until told to stop, pausing while more than
    `max_lag` rows wait (so the topic stays small enough for a quick test)."""
    try:
        while not stop.is_set():
            post(bank, 20)
            while (
                bank.head()[0] - outbox.sent_through(bank.tenant_id) > max_lag and not stop.is_set()
            ):
                stop.wait(0.01)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        errors.append(exc)


def test_broker_killed_mid_relay_on_durable_storage_loses_nothing(
    make_broker: Callable[..., TansuBroker],
    caplog: pytest.LogCaptureFixture,
    tenant_id: str,
) -> None:
    """SIGKILL the broker (S3 storage) while the relay is publishing and the platform keeps
    writing: rows wait and are retried with backoff (logged); after the restart they flow;
    nothing is lost, nothing is duplicated past the chain check, the head is the store's."""
    broker = make_broker(durable=True)
    bank, outbox = fed_bank(tenant_id, postings=20)
    stop, errors = threading.Event(), []
    writer = threading.Thread(target=_feed_while, args=(bank, outbox, stop, errors))
    relay = OutboxRelay(
        outbox,
        broker.bootstrap,
        batch_size=500,
        message_timeout_s=5.0,
        backoff_max_s=0.5,
        poll_interval_s=0.01,
    )
    with caplog.at_level(logging.WARNING, "turingcore.relay"):
        relay.start()
        writer.start()
        try:
            wait_for(lambda: outbox.sent_through(tenant_id) > 500, 60, "rows to be relayed")
            broker.kill()
            sent_at_kill = outbox.sent_through(tenant_id)
            wait_for(lambda: relay.stats.failed_passes > 0, 60, "the relay to notice the outage")
            waiting = bank.head()[0] - outbox.sent_through(tenant_id)
            assert waiting > 0  # rows wait in the outbox
            broker.start()
            wait_for(
                lambda: outbox.sent_through(tenant_id) > sent_at_kill + waiting,
                60,
                "rows to flow after the restart",
            )
        finally:
            stop.set()
            writer.join(30)
        assert not errors, errors
        wait_for(lambda: not outbox.tenants_with_unsent(), 60, "the outbox to drain")
        relay.stop()
    assert any("retrying in" in record.message for record in caplog.records)
    _assert_topic_is_the_store(broker.bootstrap, bank, outbox)


def test_broker_back_empty_gets_the_chain_again_from_the_outbox(
    make_broker: Callable[..., TansuBroker], caplog: pytest.LogCaptureFixture, tenant_id: str
) -> None:
    """Everything was relayed, then the (memory) broker restarts empty: the relay sees its
    topic hold less than it marked sent, makes those rows unsent and republishes them; the
    topic verifies from genesis with the same head and no copies."""
    broker = make_broker()
    bank, outbox = fed_bank(tenant_id, postings=60)
    relay = OutboxRelay(outbox, broker.bootstrap)
    relay.run_until_idle(timeout=60)
    broker.kill()
    broker.start()
    with caplog.at_level(logging.WARNING, "turingcore.relay"):
        relay.run_until_idle(timeout=60)
    relay.close()
    assert relay.stats.republished == bank.head()[0]
    assert any("lost" in r.message and "republishing" in r.message for r in caplog.records)
    assert _assert_topic_is_the_store(broker.bootstrap, bank, outbox) == 0


def test_an_idle_background_relay_notices_a_lost_cluster(
    make_broker: Callable[..., TansuBroker], tenant_id: str
) -> None:
    """A relay with nothing to send still audits its topics (on the broken connection, and
    every check interval), so a broker that came back empty is refilled without new rows."""
    broker = make_broker()
    bank, outbox = fed_bank(tenant_id, postings=30)
    with OutboxRelay(outbox, broker.bootstrap, check_interval_s=0.5, backoff_max_s=0.5) as relay:
        relay.start()
        wait_for(lambda: not outbox.tenants_with_unsent(), 30, "the first relay")
        broker.kill()
        broker.start()
        wait_for(lambda: relay.stats.republished == bank.head()[0], 60, "the republish")
        wait_for(lambda: not outbox.tenants_with_unsent(), 60, "the outbox to drain again")
    assert _assert_topic_is_the_store(broker.bootstrap, bank, outbox) == 0


def test_broker_killed_mid_relay_and_back_empty(
    make_broker: Callable[..., TansuBroker], tenant_id: str
) -> None:
    """Killed while publishing and back empty: the relay republishes from seq 1."""
    broker = make_broker()
    bank, outbox = fed_bank(tenant_id, postings=20)
    stop, errors = threading.Event(), []
    writer = threading.Thread(target=_feed_while, args=(bank, outbox, stop, errors))
    relay = OutboxRelay(outbox, broker.bootstrap, batch_size=100, backoff_max_s=0.5)
    relay.start()
    writer.start()
    try:
        wait_for(lambda: outbox.sent_through(tenant_id) > 300, 60, "rows to be relayed")
        broker.kill()
        broker.start()
        wait_for(lambda: relay.stats.republished > 0, 60, "the lost topic to be noticed")
    finally:
        stop.set()
        writer.join(30)
    assert not errors, errors
    wait_for(lambda: not outbox.tenants_with_unsent(), 60, "the outbox to drain")
    relay.stop()
    _assert_topic_is_the_store(broker.bootstrap, bank, outbox)


# --------------------------------------------------------------------------- turingcore relay


def test_relay_command_drains_the_store_outbox_once(
    kafka_broker: TansuBroker, pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """`turingcore relay --dsn ... --bootstrap ... --once` relays the PostgreSQL store's outbox.

    It exits 0 once nothing is unsent, and the tenant's topic then verifies
    alone with the database's head.
    """
    tenant, code = new_tenant()
    cmd = Commands(tenant)
    with PostgresLedger(pg_database.dsn) as ledger:
        answers = ledger.submit(
            tenant, [cmd.create_tenant(code), cmd.product("SAVER"), cmd.customer(0)]
        )
        assert all(answer.accepted for answer in answers)
        head = ledger.head(tenant)
    result = CliRunner().invoke(
        cli.app,
        ["relay", "--dsn", pg_database.dsn, "--bootstrap", kafka_broker.bootstrap, "--once"],
    )
    assert result.exit_code == 0, result.output
    assert "nothing is unsent" in result.output
    verdict = verify_topic(kafka_broker.bootstrap, tenant)
    assert verdict.verified, verdict.problems[:5]
    assert verdict.head == head


def test_relay_command_refuses_unusable_settings(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A bad --bootstrap, an unusable --dsn, an unreachable broker: exit 2, named, rows kept."""
    runner = CliRunner()
    bad = runner.invoke(cli.app, ["relay", "--dsn", "x", "--bootstrap", "nohost", "--once"])
    assert bad.exit_code == 2
    assert "--bootstrap" in bad.output
    assert "not HOST:PORT" in bad.output

    unusable = runner.invoke(cli.app, ["relay", "--dsn", "x", "--bootstrap", "h:1", "--once"])
    assert unusable.exit_code == 2
    assert "--dsn" in unusable.output

    tenant, code = new_tenant()
    with PostgresLedger(pg_database.dsn) as ledger:
        (created,) = ledger.submit(tenant, [Commands(tenant).create_tenant(code)])
        assert created.accepted
    address = f"127.0.0.1:{free_port()}"
    down = runner.invoke(
        cli.app,
        ["relay", "--dsn", pg_database.dsn, "--bootstrap", address, "--once", "--timeout", "0.5"],
    )
    assert down.exit_code == 2
    assert address in down.output
    outbox = PostgresOutbox(pg_database.dsn)
    try:
        assert tenant in outbox.tenants_with_unsent()  # nothing marked sent
    finally:
        outbox.close()
