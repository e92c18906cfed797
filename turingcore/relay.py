"""The outbox relay: publishes each tenant's sealed events to its Kafka topic, losing none.

The protocol between the store and the broker:

1. **Outbox.** The store writes every sealed event to an outbox row in the
   same transaction as the ledger (`turingcore.ledger.Outbox`): the database
   is the system of record; Kafka is a copy that can always be rebuilt from it.
2. **Publish.** For each tenant with unsent rows, the relay takes them in seq
   order (at most `batch_size` a pass) and produces them to
   `ledger_events.<tenantId>` (created with one partition if missing: offset
   order = seq order) with an idempotent producer (`enable.idempotence=true`,
   `acks=all`), key = entityId, value = the EventEnvelope JSON. Passes are
   serialised: the next pass starts only after every delivery report of the
   last one is in.
3. **Mark.** A tenant's rows are marked sent (`mark_sent(through_seq)`) only
   after the delivery reports confirm them, contiguously: the first report
   that fails, or whose offset is not the next offset of the partition,
   stops the marking there (never past an undelivered row). Reports come in
   produce order per partition (librdkafka guarantees it).
4. **Audit.** The relay keeps, per tenant, a checkpoint: the partition's last
   offset it knows of and `through`, the highest seq S such that seqs 1..S
   are all on the topic. It audits a tenant's topic on first contact, after
   a pass that did not confirm cleanly, after any sign of a broker restart
   (a transport error reported by the client) and every `check_interval`
   seconds while idle. The audit reads the partition's true end (from a
   fetch: Tansu's ListOffsets is off) and, when the topic is not simply the
   checkpoint plus the relay's own writes, scans it (`topics.chain_prefix`):

   * a topic shorter than the checkpoint, or holding the chain only through
     S < what the outbox has marked sent, lost events: the broker came back
     empty (a lost cluster) or lost an acknowledged batch.
     `outbox.mark_unsent_from(S + 1)` makes those rows unsent again and the
     next passes republish them, from the outbox;
   * rows on the topic that the outbox has not marked (a relay that crashed
     between delivery and marking) are simply published again: readers drop
     the copies (`topics.TopicChain`).

5. **Outage.** When the broker is unreachable, a pass fails (or times out
   after `message_timeout_s`); a broken connection ends a pass at once (what
   is in flight is purged, not trusted); unconfirmed rows stay unsent, every
   client is recreated, and the relay retries with exponential backoff
   (logged), so rows wait in the outbox and flow when the broker returns.
   New clients, not reconnected ones: a restarted broker does not know the
   old producer's sequence numbers, and librdkafka's metadata cache can
   crash the process when a client sees a topic come back under its name
   with a new topic id (we hit it; confluentinc/librdkafka#4964).

One relay per outbox: the checkpoints assume the relay is the topics' only
writer (another writer is noticed, through the offset check, and audited,
at the price of copies).

Why offsets are checked and topics audited, not just delivery reports
trusted: measured on Tansu with S3 storage, a SIGKILL during a produce can
persist the idempotent producer's sequence without the batch; after the
restart the retried batch is answered DUPLICATE_SEQUENCE_NUMBER, which the
client reports as delivered (with offsets that make no sense) although the
events are not on the topic. The offset check catches that at once, the
audit finds where the chain stops, and the republish fills the gap (its
events arrive after the ones that followed the gap; readers hold those back
until the gap fills). On real Kafka the checks cost one offset comparison
per report and an end-offset read now and then.

`OutboxRelay(outbox, bootstrap)` offers `run_until_idle()` (tests, one-shot
CLI), `start()`/`stop()` (a background thread, for the service), and
`relay_once()` (one pass). `MemoryOutbox` is a real in-memory Outbox that is
also an `EventSink` (or a platform listener), so an `EmbeddedPlatform` feeds
Kafka without PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from turingcore.contract import CommandResult, Envelope
from turingcore.events import GENESIS_HASH, SealedEvent
from turingcore.ledger import Outbox, OutboxRow, topic_for
from turingcore.topics import (
    KafkaSourceError,
    chain_prefix,
    client_config,
    ensure_topic,
    message_seq,
    partition_tail,
    reader_config,
)

log = logging.getLogger("turingcore.relay")

#: Client errors that mean the connection to the broker broke (it may have restarted).
_TRANSPORT_ERRORS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})


class RelayError(RuntimeError):
    """The relay could not finish what it was asked to (the message says what waits and why)."""


# --------------------------------------------------------------------------- in-memory outbox


class MemoryOutbox:
    """A real in-memory `Outbox`, fed as an `EventSink` (or a platform listener).

    `EmbeddedPlatform(sink=outbox)` or `platform.subscribe(outbox.append)`:
    every sealed event becomes an unsent row, in seq order. Rows are kept
    after they are sent (as the database keeps them), so a lost topic can be
    republished. Thread-safe: the platform appends while a relay thread reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[OutboxRow]] = {}
        self._heads: dict[str, tuple[int, str]] = {}
        self._sent: dict[str, int] = {}

    # ------------------------------------------------------------------ EventSink

    def append(self, tenant_id: str, events: Sequence[SealedEvent]) -> None:
        """Add sealed events as unsent rows.

        Raises:
            ValueError: an event's seq does not follow the tenant's last row
                (the outbox must hold the chain gap-free).
        """
        with self._lock:
            rows = self._rows.setdefault(tenant_id, [])
            seq = len(rows)
            new = []
            for sealed in events:
                event = sealed.event
                seq += 1
                if event.seq != seq:
                    raise ValueError(
                        f"outbox of tenant {tenant_id}: event seq {event.seq} does not "
                        f"follow seq {seq - 1}"
                    )
                new.append(OutboxRow(tenant_id, seq, event.entity_id, sealed.to_json_bytes()))
            if new:
                rows.extend(new)
                self._heads[tenant_id] = (seq, events[-1].hash)
                self._sent.setdefault(tenant_id, 0)

    def rejected(self, tenant_id: str, envelope: Envelope, result: CommandResult) -> None:
        """Refusals write no events, so nothing is relayed."""

    def close(self) -> None:
        """Nothing to release; the rows stay readable so a relay can still drain them."""

    # ------------------------------------------------------------------ Outbox

    def tenants_with_unsent(self) -> list[str]:
        with self._lock:
            return sorted(t for t, rows in self._rows.items() if self._sent[t] < len(rows))

    def unsent(self, tenant_id: str, limit: int = 5000) -> list[OutboxRow]:
        with self._lock:
            rows = self._rows.get(tenant_id, [])
            sent = self._sent.get(tenant_id, 0)
            return rows[sent : sent + limit]

    def mark_sent(self, tenant_id: str, through_seq: int) -> None:
        with self._lock:
            rows = self._rows.get(tenant_id, [])
            if through_seq > len(rows):
                raise ValueError(
                    f"outbox of tenant {tenant_id}: cannot mark seq {through_seq} sent, "
                    f"the last row is seq {len(rows)}"
                )
            self._sent[tenant_id] = max(self._sent.get(tenant_id, 0), through_seq)

    def mark_unsent_from(self, tenant_id: str, first_seq: int) -> int:
        with self._lock:
            sent = self._sent.get(tenant_id, 0)
            keep = max(min(sent, first_seq - 1), 0)
            self._sent[tenant_id] = keep
            return sent - keep

    def head(self, tenant_id: str) -> tuple[int, str]:
        with self._lock:
            return self._heads.get(tenant_id, (0, GENESIS_HASH))

    # ------------------------------------------------------------------ for tests and tools

    def rows(self, tenant_id: str) -> list[OutboxRow]:
        """Every row of the tenant, sent or not, in seq order."""
        with self._lock:
            return list(self._rows.get(tenant_id, []))

    def sent_through(self, tenant_id: str) -> int:
        """The highest seq marked sent (rows 1..it are all sent)."""
        with self._lock:
            return self._sent.get(tenant_id, 0)


def marked_through(outbox: Outbox, tenant_id: str) -> int:
    """The highest seq the outbox has marked sent, from the Outbox protocol alone.

    The head is read before the unsent rows, so a row appended in between
    cannot be mistaken for a sent one.
    """
    head_seq = outbox.head(tenant_id)[0]
    first_unsent = outbox.unsent(tenant_id, 1)
    return first_unsent[0].seq - 1 if first_unsent else head_seq


# --------------------------------------------------------------------------- the relay


@dataclass
class RelayStats:
    """What a relay has done since it was made (for logs, tests and benchmarks)."""

    #: rows confirmed and marked sent
    published: int = 0
    passes: int = 0
    #: passes that did not confirm everything they produced
    failed_passes: int = 0
    #: rows made unsent again because the topic had lost them
    republished: int = 0
    audits: int = 0
    last_error: str | None = None


@dataclass
class _Checkpoint:
    """What the relay knows of a tenant's partition: its last offset, and `through`:
    seqs 1..through are all on the topic."""

    last_offset: int
    through: int


class _InFlight:
    """One tenant's part of a pass: its rows and the delivery reports that confirm them."""

    __slots__ = ("rows", "next_offset", "confirmed", "broken")

    def __init__(self, rows: list[OutboxRow], next_offset: int) -> None:
        self.rows = rows
        self.next_offset = next_offset
        self.confirmed = 0
        self.broken: str | None = None


class OutboxRelay:
    """Publishes an outbox to the tenants' topics (see the module docstring for the protocol).

    Args:
        outbox: the store's outbox (`turingcore.pgstore`'s, or a `MemoryOutbox`).
        bootstrap: `HOST:PORT[,...]` of the brokers.
        batch_size: rows per tenant per pass.
        message_timeout_s: how long the client keeps trying to deliver a
            message before it reports failure (bounds a pass during an outage).
        backoff_initial_s, backoff_max_s: retry delays after a failed pass
            (doubling from the first to the second).
        poll_interval_s: how often the background thread looks for new rows.
        check_interval_s: how often an idle relay audits the topics it
            published to (a broker that restarted empty is found this way).
        request_timeout_s: how long a metadata, topic or offset request may
            wait for the broker (a broker that is down costs this per pass).
        producer_config: extra librdkafka settings (cannot turn idempotence off).
    """

    def __init__(
        self,
        outbox: Outbox,
        bootstrap: str,
        *,
        batch_size: int = 5000,
        message_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        poll_interval_s: float = 0.05,
        check_interval_s: float = 5.0,
        request_timeout_s: float = 10.0,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.outbox = outbox
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.message_timeout_s = message_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.poll_interval_s = poll_interval_s
        self.check_interval_s = check_interval_s
        self.request_timeout_s = request_timeout_s
        self.stats = RelayStats()
        self._extra = dict(producer_config or {})
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._probe: Consumer | None = None
        self._topics_ok: set[str] = set()
        self._checkpoints: dict[str, _Checkpoint] = {}
        self._suspect: set[str] = set()
        self._disrupted = False
        self._inflight: dict[str, _InFlight] = {}
        self._failures = 0
        self._last_check = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ clients

    def _producer_now(self) -> Producer:
        if self._producer is None:
            config = client_config(
                self.bootstrap,
                **{
                    "client.id": "turingcore-relay",
                    "linger.ms": 5,
                    "message.timeout.ms": int(self.message_timeout_s * 1000),
                    "error_cb": self._on_client_error,
                    **self._extra,
                    "enable.idempotence": True,
                    "acks": "all",
                },
            )
            self._producer = Producer(config)
        return self._producer

    def _admin_now(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(client_config(self.bootstrap))
        return self._admin

    def _probe_now(self) -> Consumer:
        if self._probe is None:
            self._probe = Consumer(reader_config(self.bootstrap))
        return self._probe

    def _on_client_error(self, error: KafkaError) -> None:
        """The client's error callback (served by poll): a broken connection makes every
        topic suspect, since the broker may have come back empty."""
        if error.code() in _TRANSPORT_ERRORS or error.fatal():
            self._disrupted = True
            self.stats.last_error = str(error)

    def _drop_producer(self) -> None:
        if self._producer is not None:
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.poll(0)
            self._producer = None

    def _reset_clients(self) -> None:
        """Drop the producer (and whatever it still holds) and the probe; they are made anew."""
        self._drop_producer()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._admin = None
        self._topics_ok.clear()

    # ------------------------------------------------------------------ audit

    def _audit(self, tenant_id: str) -> None:
        """Find how far the topic holds the chain and republish what it lost."""
        self.stats.audits += 1
        started = time.monotonic()
        topic = topic_for(tenant_id)
        consumer = self._probe_now()
        tail = partition_tail(consumer, topic, self.bootstrap, self.request_timeout_s)
        log.debug("audit %s: tail %d read in %.2f s", topic, tail.end, time.monotonic() - started)
        marked = marked_through(self.outbox, tenant_id)
        checkpoint = self._checkpoints.get(tenant_id)
        if checkpoint is not None and tail.end == checkpoint.last_offset + 1:
            through = checkpoint.through  # nothing written since: the checkpoint holds
        elif checkpoint is not None and tail.end > checkpoint.last_offset + 1:
            through = chain_prefix(
                consumer,
                topic,
                self.bootstrap,
                checkpoint.last_offset + 1,
                checkpoint.through,
                tail.end,
            )
        else:
            # first contact, or the topic is shorter than it was: trust nothing
            last_seq = message_seq(tail.last.value()) if tail.last is not None else 0
            if (
                checkpoint is None
                and last_seq is not None
                and last_seq >= marked >= 0
                and tail.end >= marked
            ):
                through = marked  # the usual case: everything marked is there
            else:
                through = chain_prefix(consumer, topic, self.bootstrap, 0, 0, tail.end)
        self._checkpoints[tenant_id] = _Checkpoint(tail.end - 1, through)
        log.debug(
            "audit %s: chain on the topic through seq %d (outbox marked %d), %.2f s",
            topic,
            through,
            marked,
            time.monotonic() - started,
        )
        if through < marked:
            count = self.outbox.mark_unsent_from(tenant_id, through + 1)
            self.stats.republished += count
            log.warning(
                "topic %s on %s holds the chain only through seq %d, but the outbox "
                "marked seq %d sent: the broker lost %d events; republishing them "
                "from the outbox from seq %d",
                topic,
                self.bootstrap,
                through,
                marked,
                count,
                through + 1,
            )
        self._suspect.discard(tenant_id)

    # ------------------------------------------------------------------ one pass

    def relay_once(self) -> int:
        """One pass: publish every tenant's next unsent rows and mark the confirmed ones.

        Returns:
            Rows confirmed and marked sent in this pass.

        Raises:
            RelayError: the pass could not confirm everything (the broker is
                down, a topic is unusable); what was confirmed is marked.
        """
        with self._lock:
            return self._pass()

    def _pass(self) -> int:
        self.stats.passes += 1
        self._producer_now().poll(0)  # serve error callbacks from while we were idle
        if self._disrupted:
            # The broker may have restarted: it may have come back empty (no topics),
            # and it does not know this producer's sequence numbers. Start afresh.
            self._disrupted = False
            self._suspect.update(self._checkpoints)
            self._reset_clients()
        problems: list[str] = []
        unusable: set[str] = set()
        waiting = self.outbox.tenants_with_unsent()
        for tenant_id in sorted(self._suspect | (set(waiting) - set(self._checkpoints))):
            try:
                self._ensure_topic(tenant_id)
                self._audit(tenant_id)
            except KafkaSourceError as exc:
                problems.append(str(exc))
                unusable.add(tenant_id)
        inflight: dict[str, _InFlight] = {}
        for tenant_id in self.outbox.tenants_with_unsent():  # an audit may have added some
            if tenant_id in unusable:
                continue
            try:
                self._ensure_topic(tenant_id)
            except KafkaSourceError as exc:
                problems.append(str(exc))
                continue
            rows = self.outbox.unsent(tenant_id, self.batch_size)
            if rows:
                checkpoint = self._checkpoints[tenant_id]
                inflight[topic_for(tenant_id)] = _InFlight(rows, checkpoint.last_offset + 1)
        self._inflight = inflight
        producer = self._producer_now()
        for topic, part in inflight.items():
            self._produce(producer, topic, part.rows)
        self._wait_for_reports(producer)
        confirmed = 0
        for topic, part in inflight.items():
            tenant_id = part.rows[0].tenant_id
            if part.confirmed:
                last = part.rows[part.confirmed - 1]
                self.outbox.mark_sent(tenant_id, last.seq)
                checkpoint = self._checkpoints[tenant_id]
                checkpoint.last_offset += part.confirmed
                checkpoint.through = max(checkpoint.through, last.seq)
                confirmed += part.confirmed
            if part.confirmed < len(part.rows):
                self._suspect.add(tenant_id)
                problems.append(
                    f"{topic}: {part.confirmed} of {len(part.rows)} rows confirmed "
                    f"({part.broken or 'no delivery report'})"
                )
        self._inflight = {}
        self.stats.published += confirmed
        if problems:
            self.stats.failed_passes += 1
            self.stats.last_error = problems[0]
            self._reset_clients()
            raise RelayError("; ".join(problems))
        return confirmed

    def _ensure_topic(self, tenant_id: str) -> None:
        topic = topic_for(tenant_id)
        if topic not in self._topics_ok:
            ensure_topic(self._admin_now(), self.bootstrap, tenant_id, self.request_timeout_s)
            self._topics_ok.add(topic)

    def _produce(self, producer: Producer, topic: str, rows: list[OutboxRow]) -> None:
        report = self._on_delivery
        for row in rows:
            while True:
                try:
                    producer.produce(
                        topic, value=row.value, key=row.entity_id, partition=0, on_delivery=report
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # the client's queue is full: serve reports, retry

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        part = self._inflight.get(message.topic())
        if part is None or part.broken is not None:
            return
        if error is not None:
            part.broken = f"delivery failed: {error.str()}"
        elif message.offset() != part.next_offset:
            part.broken = (
                f"the broker put a message at offset {message.offset()}, "
                f"not at the next offset {part.next_offset}"
            )
        else:
            part.confirmed += 1
            part.next_offset += 1

    def _wait_for_reports(self, producer: Producer) -> None:
        """Serve delivery reports until every message has one.

        The client's message timeout bounds the wait. A broken connection
        ends it at once: the broker may be restarting (empty, or having lost
        what it acknowledged last), so nothing still in flight is trusted;
        it is purged (reported as failed, left unsent) and the topic audited.
        """
        deadline = time.monotonic() + self.message_timeout_s + 10.0
        while len(producer) > 0 and time.monotonic() < deadline:
            producer.poll(0.05)
            if self._disrupted:
                producer.purge(in_queue=True, in_flight=True)
                settle = time.monotonic() + 5.0
                while len(producer) > 0 and time.monotonic() < settle:
                    producer.poll(0.05)
                break
        producer.poll(0)

    # ------------------------------------------------------------------ loops

    def _backoff(self) -> float:
        self._failures += 1
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self._failures - 1))

    def _step(self) -> tuple[int, bool]:
        """One pass with error handling: (rows confirmed, whether it failed)."""
        try:
            confirmed = self.relay_once()
        except Exception as exc:  # noqa: BLE001 - an outage (broker or store) must not end the relay
            expected = isinstance(exc, RelayError | KafkaException | KafkaSourceError)
            with self._lock:
                self.stats.last_error = str(exc)
                if not expected:
                    self.stats.failed_passes += 1
                    self._reset_clients()
            delay = self._backoff()
            log.warning(
                "relay to %s: %s; %s wait in the outbox; retrying in %.2f s",
                self.bootstrap,
                exc,
                self._waiting(),
                delay,
                exc_info=not expected,
            )
            self._stop.wait(delay)
            return 0, True
        self._failures = 0
        return confirmed, False

    def _waiting(self) -> str:
        try:
            tenants = self.outbox.tenants_with_unsent()
        except Exception as exc:  # noqa: BLE001 - only for the log line
            return f"unsent rows (the outbox did not answer: {exc})"
        return f"unsent rows of {len(tenants)} tenant(s)" if tenants else "no rows"

    def check_topics(self) -> None:
        """Audit every topic this relay has published to, now (republishing what was lost)."""
        with self._lock:
            self._producer_now().poll(0)
            self._suspect.update(self._checkpoints)
        self.relay_once()

    def run_until_idle(self, timeout: float = 60.0) -> int:
        """Relay until no row is unsent and every known topic is audited, or fail.

        Starts with an audit of every topic published to so far (a broker
        that came back empty is found even when no new row waits).

        Returns:
            Rows confirmed.

        Raises:
            RelayError: rows were still unsent after `timeout` seconds (the
                message gives the last error).
        """
        if self._thread is not None:
            raise RelayError("the relay runs in its background thread; stop() it first")
        deadline = time.monotonic() + timeout
        with self._lock:
            self._suspect.update(self._checkpoints)
        total = 0
        while True:
            confirmed, failed = self._step()
            total += confirmed
            if not failed and not self._suspect and not self.outbox.tenants_with_unsent():
                return total
            if time.monotonic() >= deadline:
                raise RelayError(
                    f"relay to {self.bootstrap}: rows still unsent after {timeout:g} s "
                    f"(last error: {self.stats.last_error})"
                )

    def start(self) -> OutboxRelay:
        """Relay in a background thread until `stop()`."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._last_check >= self.check_interval_s:
                self._last_check = time.monotonic()
                with self._lock:
                    self._suspect.update(self._checkpoints)
            try:
                tenants = self.outbox.tenants_with_unsent()
            except Exception as exc:  # noqa: BLE001 - a store outage must not end the thread
                delay = self._backoff()
                log.warning("relay: the outbox did not answer (%s); retrying in %.2f s", exc, delay)
                self._stop.wait(delay)
                continue
            with self._lock:
                if self._producer is not None:
                    self._producer.poll(0)  # notice a broken connection while idle
            if tenants or self._suspect or self._disrupted:
                confirmed, failed = self._step()
                if confirmed or failed:
                    continue
            self._stop.wait(self.poll_interval_s)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread (finishing its pass) and release the clients."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join(timeout)
            self._thread = None
        self.close()

    def close(self) -> None:
        """Release the clients (a row not yet confirmed stays unsent)."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(5.0)
            self._reset_clients()

    def __enter__(self) -> OutboxRelay:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
