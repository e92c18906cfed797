"""Ledger events, their canonical bytes, and the per-tenant hash chain.

Canonical bytes (defined once, here, and pinned by a fixed test vector):

    The event's fields *except* `hash` (eventId, eventType, tenantId,
    entityId, payload, occurredAt, causationId, seq, prevHash) as one JSON
    object encoded as UTF-8 with: object keys sorted by code point at every
    level, no insignificant whitespace, integers as plain decimal digits,
    strings escaped as RFC 8259 minimum (`"`, `\\`, and control characters;
    other characters as raw UTF-8), `null` for absent optional values. Event
    payloads contain no floats: money is integer cents in fields ending in
    `Cents`, dates are ISO 8601 strings.

    hash = lowercase hex SHA-256( bytes.fromhex(prevHash) ‖ canonical bytes )

The first event of a tenant has `seq` 1 and `prevHash` of 64 zeros. Because the
canonical form is a function of the event's data, a consumer that receives an
event as a JSON message (Kafka, HTTP) re-derives it: parse the object, drop
`hash`, re-encode with sorted keys (`canonical_from_json`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import msgspec
from msgspec import Struct

GENESIS_HASH = "0" * 64
GENESIS_RAW = bytes(32)

# Every Struct that appears in an event declares its fields in code-point order
# of their JSON names (checked at import by `require_canonical_order`), so the
# "deterministic" order (dict keys sorted, Struct fields as declared) gives the
# same bytes as sorting everything, a third cheaper per event: this encoder is
# on the ledger's hot path.
_CANONICAL = msgspec.json.Encoder(order="deterministic")
_JSON = msgspec.json.Decoder()


class LegPosted(Struct, rename="camel", gc=False, frozen=True):
    """One leg of a posted entry, money in integer cents."""

    account_id: str
    amount_cents: int
    direction: str


class EntryPostedPayload(Struct, rename="camel", gc=False, frozen=True):
    booking_date: date
    currency: str
    entry_id: str
    legs: tuple[LegPosted, ...]  # a tuple: the GC untracks it at once (hot path)
    metadata: dict[str, Any] | None
    narrative: str
    tags: dict[str, str] | None
    value_date: date


class BalanceUpdatedPayload(Struct, rename="camel", gc=False, frozen=True):
    """The new balance of one account after an entry (debits minus credits)."""

    account_id: str
    balance_cents: int
    delta_cents: int
    entry_id: str


class Event(Struct, rename="camel", gc=False, frozen=True):
    """A ledger event without its hash: exactly what the hash covers.

    Fields in canonical (sorted JSON name) order; build it with keywords
    except on the hot path.
    """

    causation_id: str
    entity_id: str
    event_id: str
    event_type: str
    occurred_at: str
    payload: Any
    prev_hash: str
    seq: int
    tenant_id: str


def require_canonical_order(*types: type[Struct]) -> None:
    """Refuse (at import) an event Struct whose JSON field names are not sorted.

    The canonical encoder keeps Struct fields in declared order; a field
    added out of order would silently change every hash after it.
    """
    for kind in types:
        names = list(kind.__struct_encode_fields__)
        if names != sorted(names):
            raise TypeError(
                f"{kind.__name__} must declare its fields in sorted JSON-name order "
                f"{sorted(names)} for canonical bytes, not {names}"
            )


require_canonical_order(LegPosted, EntryPostedPayload, BalanceUpdatedPayload, Event)


class SealedEvent(Struct, gc=False, frozen=True):
    """An event with its chain hash and the canonical bytes that were hashed."""

    event: Event
    hash: str
    canonical: bytes

    def to_json_bytes(self) -> bytes:
        """The EventEnvelope as JSON (the canonical object plus `hash`)."""
        return envelope_json(self.canonical, self.hash)

    def to_builtins(self) -> dict[str, Any]:
        """The EventEnvelope as a plain dict, for APIs and reports."""
        body = _JSON.decode(self.canonical)
        body["hash"] = self.hash
        return body


def envelope_json(canonical: bytes, event_hash: str) -> bytes:
    """The EventEnvelope JSON of an event: its canonical object with `hash` appended."""
    return bytes(canonical[:-1]) + b',"hash":"' + event_hash.encode() + b'"}'


#: the canonical encoder's bound method, for the ledger's hot path
encode_canonical = _CANONICAL.encode


def canonical_bytes(event: Event | dict[str, Any]) -> bytes:
    """Canonical bytes of an event (a Struct or a JSON dict without `hash`)."""
    return _CANONICAL.encode(event)


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """The chain hash of an event given its predecessor's hash."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def canonical_from_json(message: bytes | str | dict[str, Any]) -> tuple[dict[str, Any], bytes, str]:
    """Re-derive canonical bytes from an event received as JSON.

    Returns:
        (the event as a dict without `hash`, its canonical bytes, the claimed hash).

    Raises:
        ValueError: if the message is not a JSON object with a string `hash`.
    """
    if isinstance(message, dict):
        body = dict(message)
    else:
        try:
            body = _JSON.decode(message)
        except msgspec.DecodeError as exc:
            raise ValueError(f"event is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("event is not a JSON object")
    claimed = body.pop("hash", None)
    if not isinstance(claimed, str):
        raise ValueError("event has no hash")
    return body, _CANONICAL.encode(body), claimed


class ChainProblem(Struct, frozen=True):
    """One way a tenant's chain fails to verify, located by tenant and seq."""

    tenant_id: str
    seq: int
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "seq": self.seq, "message": self.problem}


class ChainVerifier:
    """Verifies one tenant's chain incrementally, in constant memory.

    Feed events in stored order; each check re-derives the hash from the
    event's own data, so a changed byte, a deleted event, a duplicated or a
    swapped one is found and named by tenant and seq.
    """

    __slots__ = ("tenant_id", "expected_seq", "head", "examined")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.expected_seq = 1
        self.head = GENESIS_HASH
        self.examined = 0

    def check(
        self, body: dict[str, Any] | Event, canonical: bytes, claimed_hash: str
    ) -> list[ChainProblem]:
        """Check the next event; returns the problems found (empty when it verifies)."""
        self.examined += 1
        if isinstance(body, Event):
            seq, prev, tenant = body.seq, body.prev_hash, body.tenant_id
        else:
            seq, prev, tenant = body.get("seq"), body.get("prevHash"), body.get("tenantId")
        where = seq if isinstance(seq, int) else self.expected_seq
        problems: list[ChainProblem] = []
        if tenant != self.tenant_id:
            problems.append(
                ChainProblem(self.tenant_id, where, f"event belongs to tenant {tenant!r}")
            )
        if seq != self.expected_seq:
            problems.append(
                ChainProblem(
                    self.tenant_id, where, f"seq {seq} where {self.expected_seq} was expected"
                )
            )
        if prev != self.head:
            problems.append(
                ChainProblem(self.tenant_id, where, "prevHash does not match the previous hash")
            )
        try:
            actual = chain_hash(prev if isinstance(prev, str) else GENESIS_HASH, canonical)
        except ValueError:
            actual = ""
        if actual != claimed_hash:
            problems.append(
                ChainProblem(self.tenant_id, where, "hash does not match the event's content")
            )
        self.expected_seq = (seq if isinstance(seq, int) else self.expected_seq) + 1
        self.head = claimed_hash
        return problems


def verify_chain(
    tenant_id: str, messages: Iterable[bytes | dict[str, Any]]
) -> Iterator[ChainProblem]:
    """Verify a whole chain given as JSON messages (e.g. read back from a topic)."""
    verifier = ChainVerifier(tenant_id)
    for message in messages:
        try:
            body, canonical, claimed = canonical_from_json(message)
        except ValueError as exc:
            yield ChainProblem(tenant_id, verifier.expected_seq, str(exc))
            verifier.expected_seq += 1
            continue
        yield from verifier.check(body, canonical, claimed)
