"""sim/contract.py: deterministic, UUID-shaped ids and envelopes that speak the contract's JSON."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest

from sim.contract import TWIN_ACTOR, CommandIds
from turingcore.contract import (
    CreateTenant,
    Leg,
    PostEntry,
    decode_envelope,
    encode_envelope,
)

STAMP = "2025-07-01T10:15:00+10:00"


def ids_of(seed: int, tenant: str, count: int) -> list[tuple[str, str]]:
    """The first `count` (commandId, idempotencyKey) pairs of one tenant of one run."""
    ids = CommandIds(seed, tenant)
    return [ids.next() for _ in range(count)]


def test_ids_are_deterministic_per_seed_and_tenant() -> None:
    """Two CommandIds with the same (seed, tenant) give the same sequence."""
    assert ids_of(42, "cu-small", 500) == ids_of(42, "cu-small", 500)


@pytest.mark.parametrize("seed", [0, 1, 42, 2**63 - 1])
def test_ids_are_version_4_uuids_in_canonical_form(seed: int) -> None:
    """Every id parses as a UUID, version 4, RFC 4122 variant, written in canonical lowercase."""
    for command_id, key in ids_of(seed, "cu-a", 300):
        for text in (command_id, key):
            parsed = uuid.UUID(text)
            assert parsed.version == 4
            assert parsed.variant == uuid.RFC_4122
            assert str(parsed) == text


def test_ids_are_unique_within_a_tenant() -> None:
    """10,000 commands: 20,000 distinct ids (command ids and keys never coincide)."""
    pairs = ids_of(7, "cu-a", 10_000)
    every = [text for pair in pairs for text in pair]
    assert len(set(every)) == len(every)


def test_ids_differ_across_tenants_and_seeds() -> None:
    """Other tenant or other seed: no id in common with the first."""
    base = {text for pair in ids_of(7, "cu-a", 1_000) for text in pair}
    for seed, tenant in ((7, "cu-b"), (8, "cu-a"), (70, "cu-a"), (7, "cu-a7")):
        other = {text for pair in ids_of(seed, tenant, 1_000) for text in pair}
        assert base.isdisjoint(other), (seed, tenant)


def test_counter_counts_commands() -> None:
    """`count` is the number of ids handed out; each pair is numbered by it."""
    ids = CommandIds(3, "cu-a")
    first = ids.next()
    second = ids.next()
    assert ids.count == 2
    assert first[0][:-12] == second[0][:-12]
    assert int(second[0][-12:], 16) == int(first[0][-12:], 16) + 1


def test_envelope_is_complete_and_stamped() -> None:
    """envelope() fills ids, tenant, type, the twin's actor, timestamp and payload."""
    ids = CommandIds(9, "cu-a")
    payload = CreateTenant("CU_A", "Alpha", "AU", "AUD", "Australia/Sydney")
    envelope = ids.envelope("CreateTenant", STAMP, payload)
    assert (envelope.command_id, envelope.idempotency_key) == ids_of(9, "cu-a", 1)[0]
    assert envelope.tenant_id == "cu-a"
    assert envelope.command_type == "CreateTenant"
    assert envelope.actor == TWIN_ACTOR
    assert envelope.timestamp == STAMP
    assert envelope.payload is payload


def test_envelope_serialises_to_camel_case_contract_json() -> None:
    """encode_envelope gives the contract's camelCase JSON; amounts are decimal dollars."""
    ids = CommandIds(9, "cu-a")
    entry = PostEntry(
        date(2025, 7, 1),
        date(2025, 7, 1),
        "AUD",
        [Leg("acct-1", "CREDIT", 1234), Leg("GL_CARD_CLEARING", "DEBIT", 1234)],
        "Card purchase",
        {"channel": "CARD", "category": "groceries", "merchantMcc": "5411"},
        {"scenarioId": "small"},
    )
    envelope = ids.envelope("PostEntry", STAMP, entry)
    raw = encode_envelope(envelope)
    body = json.loads(raw)
    assert set(body) == {
        "commandId",
        "tenantId",
        "commandType",
        "actor",
        "timestamp",
        "payload",
        "idempotencyKey",
    }
    assert body["actor"] == {"actorType": "SYSTEM", "actorId": "cu-digital-twin"}
    assert body["commandId"] == envelope.command_id
    assert body["idempotencyKey"] == envelope.idempotency_key
    payload = body["payload"]
    assert {"bookingDate", "valueDate", "currency", "legs", "narrative", "tags", "metadata"} == set(
        payload
    )
    assert payload["bookingDate"] == "2025-07-01"
    assert payload["legs"][0] == {"accountId": "acct-1", "direction": "CREDIT", "amount": 12.34}
    assert b'"amount":12.34' in raw
    assert decode_envelope(raw) == envelope


def test_every_command_of_a_run_has_its_own_id(small_events) -> None:
    """Across a run, each event's causing commandId is UUID-shaped and used by one command."""
    seen: dict[str, str] = {}
    for tenant, events in small_events.items():
        for event in events:
            command = event["causationId"]
            assert uuid.UUID(command).version == 4
            assert seen.setdefault(command, tenant) == tenant
    stretches = [
        (tenant, event["causationId"])
        for tenant, events in small_events.items()
        for event in events
    ]
    changes = sum(1 for a, b in zip(stretches, stretches[1:], strict=False) if a != b) + 1
    assert changes == len(seen)
