"""The twin reading the platform's events from Kafka (`twin run --events kafka://HOST:PORT`).

`KafkaEventFeed` is an `sim.http_target.EventFeed`: after each batch the
twin asks it for the events the platform acknowledged, and it reads them
from the tenant's topic `ledger_events.<tenantId>` as the outbox relay
delivered them, so the five invariants run on what the broker carried.

One consumer, never in a group (joining one costs ~20 s on Tansu and a
reader commits nothing): each tenant's single partition is added to its
assignment the first time the tenant is followed and stays assigned, so
following a chain costs one `consume` per batch, not a new assignment.

Each topic goes through `turingcore.topics.TopicChain` before anything is
handed over: true copies (the same seq and hash, which a relay re-sends
after a crash between delivery and marking) are dropped; events ahead of a
gap wait until the relay's republish fills it (a broker that came back
empty is re-read from offset 0). A seq seen twice with different hashes is
a `TargetError`: the stream itself contradicts the chain. Everything else is
checked downstream: the twin re-derives each event's canonical bytes from
its JSON and the invariant suite re-hashes it.

If the broker goes away, the feed waits (the relay holds the events in the
outbox until it returns) up to `timeout_s`; a client that lost its
connection is replaced and re-assigned at the offsets already read, because
librdkafka can crash on metadata of a topic recreated under the same name.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from sim.http_target import TargetError
from turingcore.events import envelope_json
from turingcore.ledger import topic_for
from turingcore.topics import (
    ChainedEvent,
    KafkaSourceError,
    TopicChain,
    client_config,
    list_topics,
    message_seq,
    reader_config,
    tenant_of,
)

_LOG = logging.getLogger("sim.kafka_feed")
_POLL_S = 0.05
_BATCH = 5000
#: errors after which the consumer is replaced (the connection or its metadata broke)
_BROKEN = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def envelope_bytes(event: ChainedEvent) -> bytes:
    """The EventEnvelope JSON of a chained event: its canonical object plus `hash`."""
    return envelope_json(event.canonical, event.claimed)


class KafkaEventFeed:
    """Follows tenants' topics for the twin (see the module docstring)."""

    def __init__(self, bootstrap: str, timeout_s: float = 120.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.admin = AdminClient(client_config(bootstrap))
        self.consumer: Consumer | None = None
        self.chains: dict[str, TopicChain] = {}
        #: tenant -> the next offset to read from its partition
        self.offsets: dict[str, int] = {}
        #: tenant -> events chained but not yet asked for, in seq order
        self.ready: dict[str, list[ChainedEvent]] = {}
        self.reconnects = 0

    # ------------------------------------------------------------------ EventFeed

    def follow(self, tenant_id: str, after_seq: int, through_seq: int) -> list[bytes]:
        """Events after_seq+1 .. through_seq of the tenant, read from its topic."""
        deadline = time.monotonic() + self.timeout_s
        if tenant_id not in self.chains:
            self._start_following(tenant_id, deadline)
        ready = self.ready[tenant_id]
        while not ready or _seq(ready[-1]) < through_seq:
            if time.monotonic() >= deadline:
                have = _seq(ready[-1]) if ready else self.chains[tenant_id].expected - 1
                raise TargetError(
                    f"kafka://{self.bootstrap}: topic {topic_for(tenant_id)} reached seq "
                    f"{have}, not {through_seq}, within {self.timeout_s:g} s (is the outbox "
                    "relay running?)"
                )
            self._poll()
        wanted = [e for e in ready if after_seq < _seq(e) <= through_seq]
        self.ready[tenant_id] = [e for e in ready if _seq(e) > through_seq]
        if len(wanted) != through_seq - after_seq:
            raise TargetError(
                f"tenant {tenant_id}: topic gave {len(wanted)} events for seqs "
                f"{after_seq + 1}..{through_seq}"
            )
        return [envelope_bytes(event) for event in wanted]

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    # ------------------------------------------------------------------ reading

    def _start_following(self, tenant_id: str, deadline: float) -> None:
        topic = topic_for(tenant_id)
        while True:
            try:
                partitions = list_topics(self.admin, self.bootstrap, 5.0).get(topic)
            except KafkaSourceError as exc:
                _LOG.warning("waiting for the broker: %s", exc)
                partitions = None
            if partitions is not None:
                break
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"kafka://{self.bootstrap}: tenant {tenant_id} has no topic {topic} "
                    f"after {self.timeout_s:g} s (is the outbox relay running?)"
                )
            time.sleep(0.05)
        if partitions != 1:
            raise TargetError(
                f"kafka://{self.bootstrap}: topic {topic} has {partitions} partitions; "
                "a tenant's chain needs exactly one"
            )
        consumer = self._consumer()
        self.chains[tenant_id] = TopicChain(tenant_id)
        self.ready[tenant_id] = []
        self.offsets[tenant_id] = 0
        consumer.incremental_assign([TopicPartition(topic, 0, 0)])

    def _consumer(self) -> Consumer:
        if self.consumer is None:
            self.consumer = Consumer(reader_config(self.bootstrap))
            assignment = [
                TopicPartition(topic_for(tenant), 0, offset)
                for tenant, offset in sorted(self.offsets.items())
            ]
            if assignment:
                self.consumer.incremental_assign(assignment)
        return self.consumer

    def _reconnect(self, why: str) -> None:
        _LOG.warning("kafka feed: %s; reconnecting at the offsets already read", why)
        self.reconnects += 1
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        time.sleep(0.2)

    def _poll(self) -> None:
        consumer = self._consumer()
        for message in consumer.consume(_BATCH, timeout=_POLL_S):
            error = message.error()
            if error is not None:
                if error.code() in _BROKEN:
                    self._reconnect(str(error))
                    return
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                _LOG.warning("kafka feed: %s", error)
                continue
            tenant = tenant_of(message.topic())
            chain = self.chains.get(tenant) if tenant is not None else None
            if chain is None:
                continue
            offset = message.offset()
            rewound = offset < self.offsets[tenant]
            self.offsets[tenant] = offset + 1
            if rewound:
                # the broker lost its log and the consumer went back to offset 0: what
                # is already chained was verified once; copies older than the chain's
                # memory of hashes cannot be compared, so they are not fed again
                seq = message_seq(message.value())
                if seq is not None and seq < chain.expected - chain.window // 2:
                    continue
            problems = len(chain.problems)
            released = chain.feed(message.value(), offset)
            if len(chain.problems) > problems:
                raise TargetError(
                    f"kafka://{self.bootstrap}: topic {message.topic()}: "
                    f"{chain.problems[-1].problem} (seq {chain.problems[-1].seq})"
                )
            self.ready[tenant].extend(released)


def _seq(event: ChainedEvent) -> int:
    return int(event.body["seq"])
