"""turingcore.topics: reading a tenant's topic and verifying its chain from the topic alone.

The pure part (`TopicChain`: duplicates, conflicts, held-back events) is
tested on message lists; the rest on the session's real Tansu broker, with
topics written raw (no relay) so every shape of topic can be staged.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_fixtures import bodies, encode, fed_bank, produce_raw, rechain, values

from turingcore.broker import TansuBroker, free_port
from turingcore.events import GENESIS_HASH
from turingcore.ledger import topic_for
from turingcore.topics import (
    BrokerUnreachable,
    TopicChain,
    TopicLayoutError,
    TopicMissing,
    TopicReader,
    TopicTimeout,
    chain_prefix,
    client_config,
    message_seq,
    parse_source,
    partition_tail,
    verify_topic,
)


def _chain(tenant_id: str, events: int = 20) -> tuple[list[bytes], tuple[int, str]]:
    """`events` sealed events of a real tenant (EventEnvelope JSON) and its head."""
    bank, outbox = fed_bank(tenant_id, postings=events)
    messages = values(outbox, tenant_id)[:events]
    return messages, (events, bodies(messages)[-1]["hash"])


def _feed(chain: TopicChain, messages: list[bytes]) -> list[int]:
    """Feed messages in order, then finish; the seqs that came out, in order."""
    out = [event.body["seq"] for message in messages for event in chain.feed(message)]
    return out + [event.body["seq"] for event in chain.finish()]


# --------------------------------------------------------------------------- parse_source


def test_parse_source_takes_kafka_addresses() -> None:
    """kafka://HOST:PORT (and a comma list) becomes bootstrap servers; the rest is refused."""
    assert parse_source("kafka://127.0.0.1:9092") == "127.0.0.1:9092"
    assert parse_source("kafka://a:1,b:2/") == "a:1,b:2"
    for bad, why in (
        ("127.0.0.1:9092", "not a kafka://"),
        ("kafka://", "names no broker"),
        ("kafka://host", "not HOST:PORT"),
        ("kafka://host:99999", "not HOST:PORT"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_source(bad)


# --------------------------------------------------------------------------- TopicChain


def test_chain_passes_an_ordered_topic_through() -> None:
    """In-order messages come out one for one, nothing counted, no problem."""
    messages, _head = _chain("cu-order", 12)
    chain = TopicChain("cu-order")
    assert _feed(chain, messages) == list(range(1, 13))
    assert (chain.duplicates, chain.held_back, chain.problems) == (0, 0, [])


def test_chain_drops_and_counts_true_duplicates() -> None:
    """A re-sent stretch (same seqs, same hashes) is dropped and counted."""
    messages, _head = _chain("cu-dup", 20)
    chain = TopicChain("cu-dup")
    topic = messages[:10] + messages[5:10] + messages[10:]
    assert _feed(chain, topic) == list(range(1, 21))
    assert chain.duplicates == 5
    assert chain.messages == 25
    assert chain.problems == []


def test_chain_reports_the_same_seq_with_another_hash() -> None:
    """A second seq 7 with a different hash is a problem at tenant and seq 7; it is dropped."""
    messages, _head = _chain("cu-conflict", 10)
    other = bodies(messages)[6]
    other["payload"] = {"forged": True}
    forged = rechain(bodies(messages)[:6] + [other])[6]
    chain = TopicChain("cu-conflict")
    assert _feed(chain, [*messages[:8], forged, *messages[8:]]) == list(range(1, 11))
    (problem,) = chain.problems
    assert (problem.tenant_id, problem.seq) == ("cu-conflict", 7)
    assert "another hash" in problem.problem


def test_chain_reports_a_tampered_copy() -> None:
    """A repeat that keeps the hash but changes the content is not a duplicate."""
    messages, _head = _chain("cu-copy", 6)
    copy = bodies(messages)[3]
    copy["occurredAt"] = "2030-01-01T00:00:00+10:00"
    chain = TopicChain("cu-copy")
    _feed(chain, [*messages, encode(copy)])
    (problem,) = chain.problems
    assert problem.seq == 4
    assert "tampered copy" in problem.problem
    assert chain.duplicates == 0


def test_chain_holds_events_that_arrive_ahead_of_a_gap() -> None:
    """1..10, 15..20, then a republish of 11..20: the chain comes out whole and in order."""
    messages, _head = _chain("cu-hole", 20)
    topic = messages[:10] + messages[14:20] + messages[10:20]
    chain = TopicChain("cu-hole")
    assert _feed(chain, topic) == list(range(1, 21))
    assert chain.held_back == 6
    assert chain.duplicates == 6
    assert chain.problems == []


def test_chain_reports_a_gap_never_filled_and_chains_on() -> None:
    """Seq 11 never arrives: one problem at seq 11, and 12..20 are still handed on."""
    messages, _head = _chain("cu-gap", 20)
    chain = TopicChain("cu-gap")
    assert _feed(chain, messages[:10] + messages[11:]) == [*range(1, 11), *range(12, 21)]
    (problem,) = chain.problems
    assert problem.seq == 11
    assert "never arrived" in problem.problem


def test_chain_bounds_what_it_holds_and_remembers() -> None:
    """Beyond max_held the gap is declared; a repeat older than the window is reported."""
    messages, _head = _chain("cu-bounds", 12)
    chain = TopicChain("cu-bounds", window=4, max_held=3)
    out = _feed(chain, [messages[0], *messages[2:6], messages[1]])
    assert out == [1, 3, 4, 5, 6]  # gap at 2 declared when a 4th event was held
    assert [p.seq for p in chain.problems] == [2, 2]
    assert "never arrived" in chain.problems[0].problem
    assert "too old" in chain.problems[1].problem


def test_chain_reports_unreadable_messages() -> None:
    """Not JSON, no hash, no integer seq: each is a problem at the seq expected next."""
    messages, _head = _chain("cu-junk", 3)
    chain = TopicChain("cu-junk")
    no_seq = bodies(messages[:1])[0]
    no_seq["seq"] = "one"
    out = _feed(chain, [messages[0], b"not json", b'{"seq": 2}', encode(no_seq), *messages[1:]])
    assert out == [1, 2, 3]
    assert [p.seq for p in chain.problems] == [2, 2, 2]


def test_message_seq_reads_only_the_seq() -> None:
    """The relay's audit reads a message's seq, and None for anything that is not an event."""
    assert message_seq(b'{"seq": 42, "payload": {}}') == 42
    assert message_seq(b'{"seq": "42"}') is None
    assert message_seq(b"junk") is None
    assert message_seq(None) is None


# --------------------------------------------------------------------------- on the broker


def test_verify_topic_from_the_topic_alone(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """A topic holding a tenant's chain verifies from genesis; its head is the platform's."""
    bank, outbox = fed_bank(tenant_id, postings=40)
    produce_raw(kafka_broker.bootstrap, tenant_id, values(outbox, tenant_id))
    verdict = verify_topic(kafka_broker.bootstrap, tenant_id)
    assert verdict.verified, verdict.problems
    assert verdict.head == bank.head() == outbox.head(tenant_id)
    assert verdict.events == verdict.messages == bank.head()[0]
    assert verdict.to_dict()["headHash"] == bank.head()[1]


def test_a_tampered_message_is_found_by_tenant_and_seq(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """Changing one event's amount (its hash kept) fails that seq's hash check, and only it."""
    bank, outbox = fed_bank(tenant_id, postings=10)
    events = bodies(values(outbox, tenant_id))
    target = next(e for e in events if e["eventType"] == "EntryPosted" and e["seq"] > 15)
    target["payload"]["legs"][0]["amountCents"] += 1
    produce_raw(kafka_broker.bootstrap, tenant_id, [encode(e) for e in events])
    verdict = verify_topic(kafka_broker.bootstrap, tenant_id)
    assert not verdict.verified
    assert {(p.tenant_id, p.seq) for p in verdict.problems} == {(tenant_id, target["seq"])}
    assert "hash does not match" in verdict.problems[0].problem


def test_duplicates_on_the_topic_are_dropped_and_counted(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """A relay that re-sent 8 rows leaves 8 copies: dropped, counted, head unchanged."""
    bank, outbox = fed_bank(tenant_id, postings=10)
    messages = values(outbox, tenant_id)
    produce_raw(kafka_broker.bootstrap, tenant_id, messages[:20] + messages[12:20] + messages[20:])
    verdict = verify_topic(kafka_broker.bootstrap, tenant_id)
    assert verdict.verified, verdict.problems
    assert verdict.duplicates == 8
    assert verdict.messages == len(messages) + 8
    assert verdict.events == len(messages)
    assert verdict.head == bank.head()


def test_same_seq_different_hash_on_the_topic_is_a_problem(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """Two different events claiming one seq: reported by tenant and seq."""
    _bank, outbox = fed_bank(tenant_id, postings=5)
    messages = values(outbox, tenant_id)
    forged = bodies(messages)[:9]
    forged[8]["causationId"] = "someone-else"
    produce_raw(kafka_broker.bootstrap, tenant_id, messages + rechain(forged)[8:9])
    verdict = verify_topic(kafka_broker.bootstrap, tenant_id)
    assert [(p.tenant_id, p.seq) for p in verdict.problems] == [(tenant_id, 9)]


def test_an_empty_topic_has_the_genesis_head(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """A topic with no message verifies trivially, head (0, genesis)."""
    produce_raw(kafka_broker.bootstrap, tenant_id, [])
    verdict = verify_topic(kafka_broker.bootstrap, tenant_id)
    assert verdict.verified
    assert verdict.head == (0, GENESIS_HASH)
    assert verdict.messages == 0


def test_partition_tail_is_the_true_end(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """The end comes from a fetch: it counts every message even when they went in one batch."""
    messages, head = _chain(tenant_id, 30)
    produce_raw(kafka_broker.bootstrap, tenant_id, messages)
    with TopicReader(kafka_broker.bootstrap) as reader:
        tail = partition_tail(reader.consumer, topic_for(tenant_id), kafka_broker.bootstrap)
        assert tail.end == 30
        assert tail.last is not None
        assert message_seq(tail.last.value()) == 30
        # the audit's scan: a hole at 11..14 caps the prefix at 10 until a re-run fills it
        holed_end = 30 + 16
        produce_raw(kafka_broker.bootstrap, tenant_id, messages[:10] + messages[14:20])
        prefix = chain_prefix(
            reader.consumer, topic_for(tenant_id), kafka_broker.bootstrap, 30, 0, holed_end
        )
        assert prefix == 10
    assert head[0] == 30


def test_follow_waits_for_a_wanted_seq(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """Following a topic that does not exist yet returns once the chain reaches the seq."""
    messages, head = _chain(tenant_id, 25)
    verdicts = []
    reader = threading.Thread(
        target=lambda: verdicts.append(
            verify_topic(kafka_broker.bootstrap, tenant_id, until_seq=25, timeout=60)
        )
    )
    reader.start()
    produce_raw(kafka_broker.bootstrap, tenant_id, messages[:10])
    produce_raw(kafka_broker.bootstrap, tenant_id, messages[10:], create=False)
    reader.join(90)
    assert not reader.is_alive()
    (verdict,) = verdicts
    assert verdict.head == head
    assert verdict.verified


def test_follow_gives_up_at_the_deadline(kafka_broker: TansuBroker, tenant_id: str) -> None:
    """A seq that never arrives ends with TopicTimeout naming the tenant and both seqs."""
    messages, _head = _chain(tenant_id, 5)
    produce_raw(kafka_broker.bootstrap, tenant_id, messages)
    started = time.monotonic()
    with pytest.raises(TopicTimeout, match=rf"{tenant_id}'s chain reached seq 5, not the wanted 9"):
        verify_topic(kafka_broker.bootstrap, tenant_id, until_seq=9, timeout=1.0)
    assert time.monotonic() - started < 30


def test_a_missing_topic_names_tenant_and_address(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """No topic: TopicMissing with the tenant and the broker address; nothing is created."""
    with pytest.raises(TopicMissing, match=rf"{kafka_broker.url}: tenant '{tenant_id}'"):
        verify_topic(kafka_broker.bootstrap, tenant_id)
    with TopicReader(kafka_broker.bootstrap) as reader:
        assert tenant_id not in reader.tenants()


def test_an_unreachable_broker_names_the_address() -> None:
    """Nothing listening: BrokerUnreachable naming kafka://HOST:PORT."""
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnreachable, match=rf"kafka://{bootstrap}: no Kafka broker"):
        verify_topic(bootstrap, "cu-a", timeout=2.0)


def test_a_topic_with_several_partitions_is_refused(
    kafka_broker: TansuBroker, tenant_id: str
) -> None:
    """Seq order needs one partition: a 4-partition topic is a layout error, by tenant."""
    admin = AdminClient(client_config(kafka_broker.bootstrap))
    admin.create_topics([NewTopic(topic_for(tenant_id), 4, 1)])[topic_for(tenant_id)].result(10)
    with pytest.raises(TopicLayoutError, match=rf"{tenant_id} has 4 partitions"):
        verify_topic(kafka_broker.bootstrap, tenant_id)
