"""Reading a tenant's topic back and verifying its chain from the topic alone.

Each tenant's events are on `ledger_events.<tenantId>` (`turingcore.ledger.topic_for`),
one partition, message value = the EventEnvelope JSON, key = entityId. A
reader here:

- assigns partition 0 from offset 0 (`assign()`, never a consumer group:
  joining a group costs ~20 s on Tansu and a verifier commits nothing);
- reads to the end of the log as it was when the read began (the end comes
  from a fetch, see `partition_tail`), or, when following a live topic, until
  the chain reaches a wanted seq or a deadline passes;
- puts the messages back into one chain (`TopicChain`) before any check:

  * a message whose seq is already in the chain with the *same* hash is a
    duplicate (a relay that crashed between delivery and marking the outbox
    re-sends rows): its content is re-hashed to prove it is a true copy,
    then it is dropped and counted;
  * the same seq with a *different* hash is a problem, named by tenant and seq;
  * a message ahead of a gap is held back (bounded) until the gap fills:
    after a broker lost an acknowledged batch, the relay republishes from
    the first missing seq, so the gap's events arrive later in the topic;
    a gap still open at the end of the topic is a problem (the events held
    behind it are then chained as they are, so the rest is still checked).

- feeds the chain, in seq order, to `ChainVerifier` over
  `canonical_from_json` (the canonical bytes are re-derived from each JSON
  message; nothing the transport says is trusted) and returns the head.

`twin verify --source kafka://...` (`analysis.kafka_verify`) runs the
invariants' per-tenant checker over the same re-ordered chain.

Tansu quirks the code is written around (measured, see `turingcore.broker`):
asking metadata for a named missing topic creates it with 4 partitions, so
existence is checked by listing all topics; `ListOffsets(latest)` answers
the last batch's base offset + 1, so the true end is read from a fetch's
high watermark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from turingcore.events import (
    GENESIS_HASH,
    ChainProblem,
    ChainVerifier,
    canonical_from_json,
    chain_hash,
)
from turingcore.ledger import topic_for

TOPIC_PREFIX = topic_for("")
#: Seqs of recent chain events kept to recognise a re-sent message (per tenant).
DUPLICATE_WINDOW = 100_000
#: Messages held back ahead of a gap before the gap is declared real.
MAX_HELD = 100_000

_CLIENT_LOGGER = logging.getLogger("turingcore.kafka.client")
_POLL_S = 0.5
_FOLLOW_WAIT_S = 0.1
_BATCH = 5000


class KafkaSourceError(Exception):
    """A topic cannot be read; the message names the broker address and the tenant."""


class BrokerUnreachable(KafkaSourceError):
    """No Kafka broker answered at the address."""


class TopicMissing(KafkaSourceError):
    """The tenant has no topic on the broker."""


class TopicLayoutError(KafkaSourceError):
    """The topic does not have exactly one partition (seq order would not be kept)."""


class TopicTimeout(KafkaSourceError):
    """The topic did not deliver what was waited for before the deadline."""


class _ClientLog:
    """librdkafka's log lines, sent to `turingcore.kafka.client` at DEBUG.

    A broker that is down makes the client log every reconnect attempt at
    ERROR; the relay and the readers report outages themselves, once and with
    context, so the client's own lines are only for debugging.
    """

    def log(self, _level: int, fmt: str, *args: Any) -> None:
        _CLIENT_LOGGER.debug(fmt, *args)


_CLIENT_LOG = _ClientLog()


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Settings every client of ours uses: no topic auto-creation, quiet logs."""
    return {
        "bootstrap.servers": bootstrap,
        "allow.auto.create.topics": False,
        "logger": _CLIENT_LOG,
        **extra,
    }


def parse_source(source: str) -> str:
    """`kafka://HOST:PORT[,HOST:PORT...]` -> the bootstrap servers `HOST:PORT,...`.

    Raises:
        ValueError: not a kafka:// address with host and port (the message says which part).
    """
    prefix = "kafka://"
    if not source.startswith(prefix):
        raise ValueError(f"{source!r} is not a kafka://HOST:PORT address")
    servers = source[len(prefix) :].rstrip("/")
    if not servers:
        raise ValueError(f"{source!r} names no broker (expected kafka://HOST:PORT)")
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{source!r}: {server!r} is not HOST:PORT")
    return servers


def reader_config(bootstrap: str) -> dict[str, Any]:
    """A consumer that is only ever assigned partitions: no group, no commits."""
    return client_config(
        bootstrap,
        **{
            "group.id": "turingcore-topic-reader",  # required by the client, never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # A fetch at the end of the log is parked by the broker this long and the
            # next assign() waits for it (500 ms by default), so keep it short; but
            # Tansu's S3 engine answers *empty* when reading its storage takes longer
            # (measured: nothing at 20 ms, 100 ms suffices on loopback), so not too short.
            "fetch.wait.max.ms": 250,
            # fewer, larger fetches: each one costs a storage read on Tansu's S3 engine
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        },
    )


def list_topics(admin: AdminClient, bootstrap: str, timeout: float = 5.0) -> dict[str, int]:
    """topic -> partition count of every topic on the broker.

    All topics are listed (never one by name: naming a missing topic makes
    Tansu create it).

    Raises:
        BrokerUnreachable: no answer within `timeout` seconds.
    """
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"kafka://{bootstrap}: no Kafka broker answered within {timeout:g} s ({exc})"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def tenant_of(topic: str) -> str | None:
    """The tenant a `ledger_events.<tenant>` topic belongs to (None for other topics)."""
    return topic[len(TOPIC_PREFIX) :] if topic.startswith(TOPIC_PREFIX) else None


def ensure_topic(admin: AdminClient, bootstrap: str, tenant_id: str, timeout: float = 10.0) -> bool:
    """Create the tenant's topic with one partition if it is missing; True when created.

    Raises:
        TopicLayoutError: it exists with more than one partition.
        BrokerUnreachable: the broker did not answer.
    """
    topic = topic_for(tenant_id)
    partitions = list_topics(admin, bootstrap, timeout).get(topic)
    if partitions is None:
        future = admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1)],
            request_timeout=timeout,
        )[topic]
        try:
            future.result(timeout=timeout)
            return True
        except TimeoutError:
            raise BrokerUnreachable(
                f"kafka://{bootstrap}: creating topic {topic} got no answer in {timeout:g} s"
            ) from None
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                raise BrokerUnreachable(
                    f"kafka://{bootstrap}: cannot create topic {topic} ({exc})"
                ) from None
        partitions = list_topics(admin, bootstrap, timeout).get(topic, 1)
    if partitions != 1:
        raise TopicLayoutError(
            f"kafka://{bootstrap}: topic {topic} of tenant {tenant_id} has {partitions} "
            "partitions; a tenant's chain needs exactly one (offset order = seq order)"
        )
    return False


class Tail(NamedTuple):
    """The end of a partition's readable log: the offset after its last message, and that
    message (end 0 and None when nothing can be read)."""

    end: int
    last: Message | None


#: A fetch that has delivered nothing for this long is taken to have reached the end of
#: what the broker can serve. Not less: Tansu's S3 engine on moto needs 1-2.5 s for one
#: fetch once a topic has a few hundred batch objects (measured). Taking the end too
#: early only costs copies (the relay republishes what it could not see), never gaps.
STALL_S = 5.0
_JUMP = 1000


def partition_tail(consumer: Consumer, topic: str, bootstrap: str, timeout: float = 10.0) -> Tail:
    """The end of partition 0's readable log and its last message.

    `ListOffsets(latest)` cannot be taken at its word on Tansu: it answers
    the last batch's base offset + 1, after a restart often just 1. So the
    log is fetched from there, forward to the fetch's high watermark
    (jumping to it when it is far ahead). After a crash the high watermark
    can count a batch that was never stored (a gap the broker skips, or
    nothing at all at the very end); a read that stalls for `STALL_S` there
    falls back to the last message it can get. On Kafka this is one fetch
    of one message. The consumer is left unassigned.

    Raises:
        BrokerUnreachable: no answer within `timeout` seconds, or no end found
            within `timeout` + 6 stalls.
    """
    partition = TopicPartition(topic, 0)
    try:
        low, high = consumer.get_watermark_offsets(partition, timeout=timeout, cached=False)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"kafka://{bootstrap}: cannot read the offsets of {topic} ({exc})"
        ) from None
    if high <= low:
        return Tail(max(high, 0), None)
    deadline = time.monotonic() + timeout + 6 * STALL_S
    start = high - 1
    try:
        while True:
            last, fetched_high = _read_to_end(consumer, partition, start, deadline, bootstrap)
            if last is not None:
                return Tail(last.offset() + 1, last)
            if start <= low:
                return Tail(low, None)
            # nothing readable from `start` on: the tail is further back
            if 0 <= fetched_high <= start:
                start = max(fetched_high - 1, low)
            else:
                start = max(low, start - max(1, (start - low) // 2))
    finally:
        consumer.unassign()


def _read_to_end(
    consumer: Consumer, partition: TopicPartition, start: int, deadline: float, bootstrap: str
) -> tuple[Message | None, int]:
    """Read from `start` to the last message it can get: (that message or None, the
    fetch's high watermark)."""
    topic = partition.topic
    consumer.assign([TopicPartition(topic, 0, start)])
    last: Message | None = None
    fetched_high = -1
    may_jump = True
    jumped_from: Message | None = None
    progress = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise BrokerUnreachable(
                f"kafka://{bootstrap}: the end of {topic} could not be read in time"
            )
        wanted = 1 if last is None else max(1, min(_BATCH, fetched_high - last.offset() - 1))
        batch = consumer.consume(wanted, timeout=min(_POLL_S, deadline - now))
        for message in batch:
            _raise_for(message, bootstrap, topic)
            last = message
        if batch:
            progress = time.monotonic()
        fetched_high = max(fetched_high, consumer.get_watermark_offsets(partition, cached=True)[1])
        if last is not None and last.offset() + 1 >= fetched_high:
            return last, fetched_high
        if last is not None and may_jump and fetched_high - last.offset() > _JUMP:
            may_jump, jumped_from = False, last  # skip the middle: go to the announced tail
            consumer.assign([TopicPartition(topic, 0, fetched_high - 1)])
            progress = time.monotonic()
            continue
        if time.monotonic() - progress >= STALL_S:
            if jumped_from is not None and last is jumped_from:
                # nothing where the fetch put the tail: read on from where we were
                consumer.assign([TopicPartition(topic, 0, jumped_from.offset() + 1)])
                jumped_from = None
                progress = time.monotonic()
                continue
            return last, fetched_high


def _raise_for(message: Message, bootstrap: str, topic: str) -> None:
    error = message.error()
    if error is not None:
        raise BrokerUnreachable(f"kafka://{bootstrap}: reading {topic}: {error}")


class TopicMessage(NamedTuple):
    """One message of a tenant's topic."""

    offset: int
    key: bytes | None
    value: bytes


class TopicReader:
    """Reads tenants' topics with one assigned consumer (no group). Use as a context manager.

    Args:
        bootstrap: `HOST:PORT[,...]` of the brokers.
        timeout: seconds to wait for the broker's answers before `BrokerUnreachable`.
    """

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.admin = AdminClient(client_config(bootstrap))
        self.consumer = Consumer(reader_config(bootstrap))
        self._closed = False

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.consumer.close()

    def tenants(self) -> list[str]:
        """Tenants with a `ledger_events.<tenant>` topic on the broker, sorted."""
        topics = list_topics(self.admin, self.bootstrap, self.timeout)
        return sorted(t for t in (tenant_of(name) for name in topics) if t)

    def _check_topic(self, tenant_id: str, wait_until: float | None) -> str:
        topic = topic_for(tenant_id)
        while True:
            partitions = list_topics(self.admin, self.bootstrap, self.timeout).get(topic)
            if partitions is not None:
                break
            if wait_until is None or time.monotonic() >= wait_until:
                raise TopicMissing(
                    f"kafka://{self.bootstrap}: tenant {tenant_id!r} has no topic {topic}"
                )
            time.sleep(0.2)
        if partitions != 1:
            raise TopicLayoutError(
                f"kafka://{self.bootstrap}: topic {topic} of tenant {tenant_id} has "
                f"{partitions} partitions; a tenant's chain needs exactly one"
            )
        return topic

    def messages(
        self,
        tenant_id: str,
        *,
        from_offset: int = 0,
        follow: bool = False,
        deadline: float | None = None,
    ) -> Iterator[TopicMessage]:
        """The tenant's messages in offset order.

        Without `follow`, up to the end of the log as it was when the read
        began. With `follow`, on and on (the topic may not exist yet) until
        the caller stops iterating or `deadline` (a `time.monotonic()` value)
        passes, which raises `TopicTimeout`.

        Raises:
            TopicMissing: the tenant has no topic (and `follow` is off).
            TopicLayoutError: the topic has more than one partition.
            BrokerUnreachable: the broker did not answer.
        """
        topic = self._check_topic(tenant_id, deadline if follow else None)
        consumer = self.consumer
        end: int | None = None
        if not follow:
            end = partition_tail(consumer, topic, self.bootstrap, self.timeout).end
            if end <= from_offset:
                return
        consumer.assign([TopicPartition(topic, 0, from_offset)])
        next_offset = from_offset
        try:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                if follow and deadline is not None and now >= deadline:
                    raise TopicTimeout(
                        f"kafka://{self.bootstrap}: topic {topic} delivered nothing more "
                        "before the deadline"
                    )
                if not follow and now - idle_since > max(self.timeout, STALL_S):
                    raise BrokerUnreachable(
                        f"kafka://{self.bootstrap}: topic {topic} stopped delivering "
                        f"before its end (offset {end})"
                    )
                if end is None:  # following: hand over what came within a short wait
                    wanted, wait = _BATCH, _FOLLOW_WAIT_S
                    if deadline is not None:
                        wait = max(min(wait, deadline - now), 0.01)
                else:  # ask for what remains, so consume() returns once it is here
                    wanted, wait = max(1, min(_BATCH, end - next_offset)), _POLL_S
                batch = consumer.consume(wanted, timeout=wait)
                if batch:
                    idle_since = time.monotonic()
                for message in batch:
                    _raise_for(message, self.bootstrap, topic)
                    offset = message.offset()
                    next_offset = offset + 1
                    yield TopicMessage(offset, message.key(), message.value())
                    if end is not None and next_offset >= end:
                        return
        finally:
            consumer.unassign()


# --------------------------------------------------------------------------- the chain


class ChainedEvent(NamedTuple):
    """An event put in its place in the chain: what `ChainVerifier.check` takes."""

    body: dict[str, Any]
    canonical: bytes
    claimed: str


class TopicChain:
    """Puts one tenant's topic messages back into its chain: drops duplicates, holds early ones.

    Feed messages in offset order (`feed`), then call `finish` at the end of
    the topic; each returns the events that take their place in the chain,
    in seq order, for a verifier. Duplicates (same seq, same hash, content
    re-hashed to prove it) are dropped and counted; a repeat with another
    hash, a copy too old to compare, an unreadable message or a gap never
    filled is a `ChainProblem` named by tenant and seq.

    Memory is bounded: the last `window` chained seqs' hashes and at most
    `max_held` messages held ahead of a gap.
    """

    __slots__ = (
        "tenant_id",
        "window",
        "max_held",
        "expected",
        "messages",
        "duplicates",
        "held_back",
        "problems",
        "_seqs",
        "_hashes",
        "_held",
    )

    def __init__(
        self, tenant_id: str, window: int = DUPLICATE_WINDOW, max_held: int = MAX_HELD
    ) -> None:
        if window < 1 or max_held < 1:
            raise ValueError("window and max_held must be at least 1")
        self.tenant_id = tenant_id
        self.window = window
        self.max_held = max_held
        #: the seq the chain needs next
        self.expected = 1
        self.messages = 0
        #: messages dropped as true copies of a seq already seen
        self.duplicates = 0
        #: events that arrived ahead of a gap and were held until it filled
        self.held_back = 0
        self.problems: list[ChainProblem] = []
        self._seqs = [0] * window
        self._hashes = [""] * window
        self._held: dict[int, ChainedEvent] = {}

    def _problem(self, seq: int, message: str) -> None:
        self.problems.append(ChainProblem(self.tenant_id, seq, message))

    def _record(self, seq: int, claimed: str) -> None:
        index = seq % self.window
        self._seqs[index] = seq
        self._hashes[index] = claimed

    def feed(self, value: bytes | str, offset: int | None = None) -> list[ChainedEvent]:
        """Place one message; returns the events that now continue the chain (often one)."""
        self.messages += 1
        where = f"message at offset {offset}" if offset is not None else "a message"
        try:
            body, canonical, claimed = canonical_from_json(value)
        except ValueError as exc:
            self._problem(self.expected, f"{where} is not an event ({exc})")
            return []
        seq = body.get("seq")
        if type(seq) is not int:
            self._problem(self.expected, f"{where} has no integer seq")
            return []
        event = ChainedEvent(body, canonical, claimed)
        expected = self.expected
        if seq == expected:
            self._record(seq, claimed)
            self.expected = seq + 1
            if not self._held:
                return [event]
            return [event, *self._release()]
        if seq < expected:
            self._repeat(seq, event, where)
            return []
        held = self._held.get(seq)
        if held is not None:
            self._compare(seq, held.claimed, event, where)
            return []
        self._held[seq] = event
        if len(self._held) > self.max_held:
            return self._give_up()
        return []

    def finish(self) -> list[ChainedEvent]:
        """The end of the topic: a gap still open is a problem; what was held is chained as is."""
        released: list[ChainedEvent] = []
        while self._held:
            released.extend(self._give_up())
        return released

    def _release(self) -> list[ChainedEvent]:
        released = []
        held = self._held
        while self.expected in held:
            event = held.pop(self.expected)
            self._record(self.expected, event.claimed)
            released.append(event)
            self.held_back += 1
            self.expected += 1
        return released

    def _give_up(self) -> list[ChainedEvent]:
        """Declare the gap before the earliest held event real and chain on from there."""
        first = min(self._held)
        self._problem(
            self.expected,
            f"seq {self.expected}..{first - 1} never arrived "
            f"({len(self._held)} later events arrived ahead of the gap)",
        )
        self.expected = first
        released = self._release()
        self.held_back -= len(released)
        return released

    def _repeat(self, seq: int, event: ChainedEvent, where: str) -> None:
        index = seq % self.window
        if seq >= 1 and self._seqs[index] == seq:
            self._compare(seq, self._hashes[index], event, where)
        else:
            self._problem(
                seq,
                f"{where} repeats seq {seq}, more than {self.window:,} seqs behind the "
                "head: too old to compare with the original",
            )

    def _compare(self, seq: int, known: str, event: ChainedEvent, where: str) -> None:
        if event.claimed != known:
            self._problem(
                seq,
                f"{where} repeats seq {seq} with another hash "
                f"({event.claimed[:16]}... where the chain has {known[:16]}...)",
            )
            return
        prev = event.body.get("prevHash")
        try:
            genuine = isinstance(prev, str) and chain_hash(prev, event.canonical) == known
        except ValueError:
            genuine = False
        if genuine:
            self.duplicates += 1
        else:
            self._problem(
                seq, f"{where} repeats seq {seq} with its hash but other content (tampered copy)"
            )


@dataclass
class TopicVerdict:
    """What reading and verifying one tenant's topic found."""

    tenant_id: str
    #: (seq, hash) of the verified chain's head; (0, 64 zeros) for an empty topic
    head: tuple[int, str]
    #: messages read from the topic
    messages: int
    #: distinct events chained and verified
    events: int
    duplicates: int
    held_back: int
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """True when the chain verifies from genesis to the head with no problem."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "headSeq": self.head[0],
            "headHash": self.head[1],
            "messages": self.messages,
            "events": self.events,
            "duplicates": self.duplicates,
            "heldBack": self.held_back,
            "problems": [problem.to_dict() for problem in self.problems],
        }


def chained_events(
    reader: TopicReader,
    tenant_id: str,
    chain: TopicChain,
    *,
    until_seq: int | None = None,
    deadline: float | None = None,
) -> Iterator[ChainedEvent]:
    """The tenant's topic as its chain, in seq order (duplicates dropped, gaps filled).

    Without `until_seq`: the whole topic as it was when the read began. With
    it: follows the topic until the chain reaches `until_seq`.

    Raises:
        TopicTimeout: `until_seq` not reached by `deadline` (names tenant and seqs).
    """
    follow = until_seq is not None
    if follow and chain.expected > until_seq:
        return
    try:
        for message in reader.messages(tenant_id, follow=follow, deadline=deadline):
            yield from chain.feed(message.value, message.offset)
            if follow and chain.expected > until_seq:
                return
    except TopicTimeout:
        raise TopicTimeout(
            f"kafka://{reader.bootstrap}: tenant {tenant_id}'s chain reached seq "
            f"{chain.expected - 1}, not the wanted {until_seq}, before the deadline"
        ) from None
    yield from chain.finish()


def verify_topic(
    bootstrap: str,
    tenant_id: str,
    *,
    until_seq: int | None = None,
    timeout: float = 30.0,
    reader: TopicReader | None = None,
) -> TopicVerdict:
    """Read a tenant's topic from offset 0 and verify its chain from the topic alone.

    Args:
        bootstrap: `HOST:PORT` of the broker.
        tenant_id: whose topic.
        until_seq: follow the topic until the chain reaches this seq (a live
            topic); None reads to the current end.
        timeout: seconds for the broker's answers, and the deadline when following.
        reader: an open reader to reuse (closed by the caller).

    Raises:
        TopicMissing, TopicLayoutError, BrokerUnreachable, TopicTimeout.
    """
    own = reader is None
    reader = reader if reader is not None else TopicReader(bootstrap, min(timeout, 10.0))
    chain = TopicChain(tenant_id)
    verifier = ChainVerifier(tenant_id)
    problems: list[ChainProblem] = []
    deadline = time.monotonic() + timeout if until_seq is not None else None
    events = 0
    try:
        for body, canonical, claimed in chained_events(
            reader, tenant_id, chain, until_seq=until_seq, deadline=deadline
        ):
            events += 1
            problems.extend(verifier.check(body, canonical, claimed))
    finally:
        if own:
            reader.close()
    head = (verifier.expected_seq - 1, verifier.head) if events else (0, GENESIS_HASH)
    return TopicVerdict(
        tenant_id,
        head,
        chain.messages,
        events,
        chain.duplicates,
        chain.held_back,
        sorted([*chain.problems, *problems], key=lambda problem: problem.seq),
    )


# --------------------------------------------------------------------------- the relay's audit


class _Seq(msgspec.Struct):
    seq: Any = None


_SEQ_ONLY = msgspec.json.Decoder(_Seq)


def message_seq(value: bytes | None) -> int | None:
    """The seq a message claims (None when it is not an event with an integer seq)."""
    if value is None:
        return None
    try:
        seq = _SEQ_ONLY.decode(value).seq
    except msgspec.DecodeError:
        return None
    return seq if type(seq) is int else None


def chain_prefix(
    consumer: Consumer,
    topic: str,
    bootstrap: str,
    from_offset: int,
    through: int,
    end: int,
    max_held: int = MAX_HELD,
) -> int:
    """How far the topic holds the chain: the highest seq S such that 1..S are all present.

    Scans offsets `from_offset`..`end - 1` knowing that seqs 1..`through`
    are present before `from_offset`; repeats are skipped and seqs ahead of
    a gap are held (as `TopicChain` does), by seq only: the relay's audit
    (`turingcore.relay`) needs to know where to republish from, not to
    verify hashes. The broker skips offsets it lost; a scan that stalls for
    `STALL_S` ends there, which errs towards republishing (copies, never gaps).
    """
    if end <= from_offset:
        return through
    held: set[int] = set()
    consumer.assign([TopicPartition(topic, 0, from_offset)])
    try:
        stalled_since = time.monotonic()
        next_offset = from_offset
        while True:
            wanted = max(1, min(_BATCH, end - next_offset))
            batch = consumer.consume(wanted, timeout=_POLL_S)
            if batch:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > STALL_S:
                return through
            for message in batch:
                _raise_for(message, bootstrap, topic)
                seq = message_seq(message.value())
                if seq is not None and seq > through:
                    if seq == through + 1:
                        through = seq
                        while through + 1 in held:
                            held.discard(through + 1)
                            through += 1
                    elif len(held) < max_held:
                        held.add(seq)
                next_offset = message.offset() + 1
                if next_offset >= end:
                    return through
    finally:
        consumer.unassign()
