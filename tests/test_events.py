"""Ledger events: canonical bytes (pinned by a fixed vector), the hash chain, verification."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

import msgspec
import pytest
from platform_builders import Bank, new_bank

from turingcore.events import (
    GENESIS_HASH,
    BalanceUpdatedPayload,
    ChainProblem,
    ChainVerifier,
    EntryPostedPayload,
    Event,
    LegPosted,
    SealedEvent,
    canonical_bytes,
    canonical_from_json,
    chain_hash,
    require_canonical_order,
    verify_chain,
)
from turingcore.monitor import FraudAlertPayload, ThresholdReportPayload

# --------------------------------------------------------------------------- fixed vector
#
# The expected bytes below were written by hand from the rules in events.py's
# docstring: keys sorted by code point at every level, no whitespace, integers
# as digits, `"` and `\` escaped, other characters (é) as raw UTF-8, `null`
# for absent values. The hashes were computed with hashlib over
# bytes.fromhex(prevHash) + those bytes, and are recomputed in the tests.

ENTRY_ID = "5f0e6b1c-2a3d-4e5f-b000-000000000001"
VECTOR_TIME = "2025-07-01T09:00:00+10:00"

EXPECTED_1 = (
    b'{"causationId":"cmd-0001",'
    b'"entityId":"5f0e6b1c-2a3d-4e5f-b000-000000000001",'
    b'"eventId":"5f0e6b1c-2a3d-4e5f-8000-000000000001",'
    b'"eventType":"EntryPosted",'
    b'"occurredAt":"2025-07-01T09:00:00+10:00",'
    b'"payload":{"bookingDate":"2025-07-01","currency":"AUD",'
    b'"entryId":"5f0e6b1c-2a3d-4e5f-b000-000000000001",'
    b'"legs":[{"accountId":"acc-1","amountCents":12345,"direction":"DEBIT"},'
    b'{"accountId":"GL_SALARY_CLEARING","amountCents":12345,"direction":"CREDIT"}],'
    b'"metadata":{"day":1,"scenarioId":"vector"},'
    b'"narrative":"Pay \\"July\\" \\\\ caf\xc3\xa9",'
    b'"tags":{"category":"SALARY","channel":"NPP"},'
    b'"valueDate":"2025-07-02"},'
    b'"prevHash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"seq":1,"tenantId":"cu-vector"}'
)
HASH_1 = "43b3284f58a3a140f4eae7de4a07cedf20a6d7e850d03d6859e2ed8ca419a168"

EXPECTED_2 = (
    b'{"causationId":"cmd-0001",'
    b'"entityId":"GL_SALARY_CLEARING",'
    b'"eventId":"5f0e6b1c-2a3d-4e5f-8000-000000000002",'
    b'"eventType":"AccountBalanceUpdated",'
    b'"occurredAt":"2025-07-01T09:00:00+10:00",'
    b'"payload":{"accountId":"GL_SALARY_CLEARING","balanceCents":-12345,'
    b'"deltaCents":-12345,"entryId":"5f0e6b1c-2a3d-4e5f-b000-000000000001"},'
    b'"prevHash":"43b3284f58a3a140f4eae7de4a07cedf20a6d7e850d03d6859e2ed8ca419a168",'
    b'"seq":2,"tenantId":"cu-vector"}'
)
HASH_2 = "84b132f4237cf742825ddb4b59e08ae1b7911935ee6f149d86b22c21f028de13"


def vector_events() -> tuple[Event, Event]:
    """The two vector events, built by hand (dict fields given out of order on purpose)."""
    first = Event(
        event_id="5f0e6b1c-2a3d-4e5f-8000-000000000001",
        event_type="EntryPosted",
        tenant_id="cu-vector",
        entity_id=ENTRY_ID,
        payload=EntryPostedPayload(
            booking_date=date(2025, 7, 1),
            currency="AUD",
            entry_id=ENTRY_ID,
            legs=[
                LegPosted("acc-1", 12345, "DEBIT"),
                LegPosted("GL_SALARY_CLEARING", 12345, "CREDIT"),
            ],
            metadata={"scenarioId": "vector", "day": 1},
            narrative='Pay "July" \\ café',
            tags={"channel": "NPP", "category": "SALARY"},
            value_date=date(2025, 7, 2),
        ),
        occurred_at=VECTOR_TIME,
        causation_id="cmd-0001",
        seq=1,
        prev_hash=GENESIS_HASH,
    )
    second = Event(
        event_id="5f0e6b1c-2a3d-4e5f-8000-000000000002",
        event_type="AccountBalanceUpdated",
        tenant_id="cu-vector",
        entity_id="GL_SALARY_CLEARING",
        payload=BalanceUpdatedPayload("GL_SALARY_CLEARING", -12345, -12345, ENTRY_ID),
        occurred_at=VECTOR_TIME,
        causation_id="cmd-0001",
        seq=2,
        prev_hash=HASH_1,
    )
    return first, second


def test_fixed_vector_canonical_bytes() -> None:
    """The two hand-built events encode to exactly the hand-derived canonical bytes."""
    first, second = vector_events()
    assert canonical_bytes(first) == EXPECTED_1
    assert canonical_bytes(second) == EXPECTED_2


def test_fixed_vector_chain_hashes() -> None:
    """hash = SHA-256(bytes.fromhex(prevHash) ‖ canonical), from genesis, pinned both ways."""
    independent_1 = hashlib.sha256(bytes.fromhex("0" * 64) + EXPECTED_1).hexdigest()
    independent_2 = hashlib.sha256(bytes.fromhex(independent_1) + EXPECTED_2).hexdigest()
    assert (independent_1, independent_2) == (HASH_1, HASH_2)
    assert chain_hash(GENESIS_HASH, EXPECTED_1) == HASH_1
    assert chain_hash(HASH_1, EXPECTED_2) == HASH_2
    assert GENESIS_HASH == "0" * 64


def test_fixed_vector_verifies_and_survives_the_json_path() -> None:
    """The vector as JSON messages verifies, and the consumer re-derives the same bytes."""
    first, second = vector_events()
    sealed = [SealedEvent(first, HASH_1, EXPECTED_1), SealedEvent(second, HASH_2, EXPECTED_2)]
    messages = [s.to_json_bytes() for s in sealed]
    assert list(verify_chain("cu-vector", messages)) == []
    for message, expected, claimed in zip(
        messages, (EXPECTED_1, EXPECTED_2), (HASH_1, HASH_2), strict=True
    ):
        body, canonical, hash_ = canonical_from_json(message)
        assert canonical == expected
        assert hash_ == claimed
        assert "hash" not in body
    assert json.loads(messages[1])["hash"] == HASH_2


def test_incoming_key_order_whitespace_and_escapes_do_not_matter() -> None:
    """A JSON message with reversed keys, indentation and \\u escapes gives the same bytes."""
    body = json.loads(SealedEvent(vector_events()[0], HASH_1, EXPECTED_1).to_json_bytes())

    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: reverse(node[key]) for key in reversed(list(node))}
        if isinstance(node, list):
            return [reverse(item) for item in node]
        return node

    scrambled = json.dumps(reverse(body), indent=3, ensure_ascii=True)
    assert "\\u00e9" in scrambled
    assert scrambled.index('"tenantId"') < scrambled.index('"causationId"')
    for message in (scrambled, scrambled.encode(), json.loads(scrambled)):
        parsed, canonical, claimed = canonical_from_json(message)
        assert canonical == EXPECTED_1
        assert claimed == HASH_1
        assert chain_hash(parsed["prevHash"], canonical) == claimed


def test_canonical_bytes_of_a_dict_equal_those_of_the_struct() -> None:
    """The dict form of an event (as decoded from JSON) encodes to the Struct's bytes."""
    first, second = vector_events()
    for event, expected in ((first, EXPECTED_1), (second, EXPECTED_2)):
        as_dict = msgspec.json.decode(msgspec.json.encode(event))
        assert canonical_bytes(as_dict) == expected
        assert msgspec.convert(as_dict, Event).seq == event.seq


def test_a_struct_declared_out_of_canonical_order_is_refused() -> None:
    """Fields out of sorted JSON-name order would change the bytes, so import refuses them."""

    class Unsorted(msgspec.Struct, rename="camel"):
        seq: int
        account_id: str

    with pytest.raises(TypeError, match=r"Unsorted must declare its fields in sorted"):
        require_canonical_order(Unsorted)


@pytest.mark.parametrize(
    "payload",
    [
        FraudAlertPayload(
            account_id="a",
            alert_id="f",
            amount_cents=1,
            channel="NPP",
            counterparty=None,
            entry_id="e",
            observed=3,
            rule="VELOCITY",
            window_seconds=60,
        ),
        ThresholdReportPayload(
            account_id="a",
            amount_cents=1_000_000,
            direction="DEPOSIT",
            entry_id="e",
            report_id="r",
            threshold_cents=1_000_000,
        ),
        BalanceUpdatedPayload("a", 5, 5, "e"),
    ],
)
def test_every_event_struct_encodes_as_if_all_keys_were_sorted(payload: msgspec.Struct) -> None:
    """The hot-path encoder keeps declared order; it must equal a full sort at every level."""
    first, _second = vector_events()
    event = msgspec.structs.replace(first, payload=payload)
    assert canonical_bytes(event) == msgspec.json.Encoder(order="sorted").encode(event)


def test_sealed_event_builtins_are_the_envelope_plus_hash() -> None:
    """to_builtins is the EventEnvelope as a dict: the canonical fields plus `hash`."""
    sealed = SealedEvent(vector_events()[1], HASH_2, EXPECTED_2)
    body = sealed.to_builtins()
    assert body.pop("hash") == HASH_2
    assert body == json.loads(EXPECTED_2)
    assert json.loads(sealed.to_json_bytes()) == sealed.to_builtins()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"seq": 1}', "no hash"),
        ({"seq": 1, "hash": 7}, "no hash"),
    ],
)
def test_canonical_from_json_refuses_what_is_not_an_event(message: Any, reason: str) -> None:
    """Messages that are not objects with a string hash are ValueErrors saying why."""
    with pytest.raises(ValueError, match=reason):
        canonical_from_json(message)


def test_canonical_from_json_leaves_a_dict_message_alone() -> None:
    """Re-deriving from a dict does not pop `hash` out of the caller's dict."""
    message = json.loads(SealedEvent(vector_events()[0], HASH_1, EXPECTED_1).to_json_bytes())
    canonical_from_json(message)
    assert message["hash"] == HASH_1


# --------------------------------------------------------------------------- platform chains


@pytest.fixture(scope="module")
def traded() -> Bank:
    """A tenant with customers, accounts and a day of entries (about 40 events)."""
    bank = new_bank(customers=3, deposit=80_000)
    a, b, c = bank.accounts
    bank.submit(
        bank.cmd.post([(a, "DEBIT", 125_000), ("GL_SALARY_CLEARING", "CREDIT", 125_000)]),
        bank.cmd.post([(b, "CREDIT", 4_250), ("GL_CARD_CLEARING", "DEBIT", 4_250)]),
        bank.cmd.post([(a, "CREDIT", 10_000), (c, "DEBIT", 10_000)]),
        bank.cmd.post([(c, "CREDIT", 999), ("GL_BPAY_CLEARING", "DEBIT", 999)]),
    )
    return bank


def messages_of(bank: Bank) -> list[bytes]:
    """The tenant's events as JSON messages, the way a Kafka consumer receives them."""
    return [sealed.to_json_bytes() for sealed in bank.recorder.events(bank.tenant_id)]


def test_platform_events_obey_the_documented_canonical_form(traded: Bank) -> None:
    """Every sealed event's bytes are the sorted-key encoding of its data and chain from genesis."""
    head = GENESIS_HASH
    for seq, sealed in enumerate(traded.recorder.events(traded.tenant_id), start=1):
        event = sealed.event
        assert (event.seq, event.prev_hash) == (seq, head)
        assert sealed.canonical == canonical_bytes(event)
        body = json.loads(sealed.canonical)
        assert sealed.canonical == json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        assert "hash" not in body
        assert sealed.hash == hashlib.sha256(bytes.fromhex(head) + sealed.canonical).hexdigest()
        head = sealed.hash
    assert traded.platform.head(traded.tenant_id) == (seq, head)


def test_consumer_path_rederives_identical_bytes(traded: Bank) -> None:
    """canonical_from_json(sealed.to_json_bytes()) gives back the exact canonical bytes."""
    for sealed in traded.recorder.events(traded.tenant_id):
        _body, canonical, claimed = canonical_from_json(sealed.to_json_bytes())
        assert canonical == sealed.canonical
        assert claimed == sealed.hash


def test_intact_chain_verifies_with_nothing_to_report(traded: Bank) -> None:
    """The published chain verifies from genesis with no problems, every event examined."""
    messages = messages_of(traded)
    assert list(verify_chain(traded.tenant_id, messages)) == []
    verifier = ChainVerifier(traded.tenant_id)
    for message in messages:
        assert verifier.check(*canonical_from_json(message)) == []
    assert verifier.examined == len(messages)
    assert verifier.head == traded.platform.head(traded.tenant_id)[1]


def test_verifier_accepts_live_structs_too(traded: Bank) -> None:
    """ChainVerifier.check takes the live Event Structs as well as decoded dicts."""
    verifier = ChainVerifier(traded.tenant_id)
    for sealed in traded.recorder.events(traded.tenant_id):
        assert verifier.check(sealed.event, sealed.canonical, sealed.hash) == []


def _edit(message: bytes, change: Any) -> bytes:
    body = json.loads(message)
    change(body)
    return json.dumps(body).encode()


def _seq_of(messages: list[bytes], event_type: str, nth: int = 0) -> int:
    seqs = [json.loads(m)["seq"] for m in messages if json.loads(m)["eventType"] == event_type]
    return seqs[nth]


def problems_for(tenant: str, messages: list[bytes]) -> list[ChainProblem]:
    found = list(verify_chain(tenant, messages))
    assert all(p.tenant_id == tenant for p in found)
    return found


def test_changed_amount_is_found_at_its_seq(traded: Bank) -> None:
    """Changing one leg's amount by a cent fails exactly that event's hash, named by seq."""
    messages = messages_of(traded)
    k = _seq_of(messages, "EntryPosted", 1)

    def change(body: dict[str, Any]) -> None:
        body["payload"]["legs"][0]["amountCents"] += 1

    messages[k - 1] = _edit(messages[k - 1], change)
    found = problems_for(traded.tenant_id, messages)
    assert [(p.seq, p.problem) for p in found] == [(k, "hash does not match the event's content")]
    assert found[0].to_dict() == {
        "tenant": traded.tenant_id,
        "seq": k,
        "message": "hash does not match the event's content",
    }


def test_changed_balance_is_found_at_its_seq(traded: Bank) -> None:
    """A doctored balanceCents in an AccountBalanceUpdated is caught at that seq."""
    messages = messages_of(traded)
    k = _seq_of(messages, "AccountBalanceUpdated", 3)

    def change(body: dict[str, Any]) -> None:
        body["payload"]["balanceCents"] += 100_000

    messages[k - 1] = _edit(messages[k - 1], change)
    assert [p.seq for p in problems_for(traded.tenant_id, messages)] == [k]


def test_deleted_event_is_found_where_the_gap_is(traded: Bank) -> None:
    """Deleting event k is reported at seq k+1: seq out of order and prevHash broken."""
    messages = messages_of(traded)
    k = 9
    del messages[k - 1]
    found = problems_for(traded.tenant_id, messages)
    assert {p.seq for p in found} == {k + 1}
    assert any(f"where {k} was expected" in p.problem for p in found)
    assert any("prevHash" in p.problem for p in found)


def test_swapped_events_are_found_at_both_seqs(traded: Bank) -> None:
    """Swapping events k and k+1 names both (k+1 first, as stored) and the link into k+2.

    Event k+2 is intact, but its stored predecessor is now k, so its link
    (and the seq the verifier expects) is off; nothing after k+2 is reported,
    and no event's content is blamed.
    """
    messages = messages_of(traded)
    k = 12
    messages[k - 1], messages[k] = messages[k], messages[k - 1]
    found = problems_for(traded.tenant_id, messages)
    assert found, "a swap must be found"
    assert [p.seq for p in found][:1] == [k + 1]
    assert {p.seq for p in found} == {k, k + 1, k + 2}
    assert "prevHash does not match the previous hash" in {
        p.problem for p in found if p.seq == k + 2
    }
    assert all(p.problem != "hash does not match the event's content" for p in found)


def test_duplicated_event_is_found(traded: Bank) -> None:
    """An event delivered twice is reported at its seq as a repeat, with a broken link."""
    messages = messages_of(traded)
    k = 15
    messages.insert(k, messages[k - 1])
    found = problems_for(traded.tenant_id, messages)
    assert found
    assert found[0].seq == k
    assert f"seq {k} where {k + 1} was expected" in found[0].problem
    assert any("prevHash" in p.problem for p in found)


def test_changed_prev_hash_is_found(traded: Bank) -> None:
    """Pointing event k's prevHash elsewhere breaks the link and the hash at seq k."""
    messages = messages_of(traded)
    k = 7
    other = json.loads(messages[k - 3])["hash"]

    def change(body: dict[str, Any]) -> None:
        body["prevHash"] = other

    messages[k - 1] = _edit(messages[k - 1], change)
    found = problems_for(traded.tenant_id, messages)
    assert {p.seq for p in found} == {k}
    assert {p.problem for p in found} == {
        "prevHash does not match the previous hash",
        "hash does not match the event's content",
    }


def test_changed_claimed_hash_breaks_that_event_and_the_next_link(traded: Bank) -> None:
    """Forging event k's `hash` fails k's content check and k+1's prevHash link."""
    messages = messages_of(traded)
    k = 5

    def change(body: dict[str, Any]) -> None:
        body["hash"] = "f" * 64

    messages[k - 1] = _edit(messages[k - 1], change)
    found = problems_for(traded.tenant_id, messages)
    assert [(p.seq, p.problem) for p in found] == [
        (k, "hash does not match the event's content"),
        (k + 1, "prevHash does not match the previous hash"),
    ]


def test_event_of_another_tenant_is_named(traded: Bank) -> None:
    """A chain verified under another tenant's id names the first event as foreign."""
    found = list(verify_chain("cu-other", messages_of(traded)))
    assert found[0].tenant_id == "cu-other"
    assert found[0].seq == 1
    assert repr(traded.tenant_id) in found[0].problem


def test_garbage_message_is_reported_and_verification_goes_on(traded: Bank) -> None:
    """A message that is not an event is a problem at its position; later ones still check."""
    messages = messages_of(traded)
    messages[2] = b"not json at all"
    found = problems_for(traded.tenant_id, messages)
    assert found[0].seq == 3
    assert "not valid JSON" in found[0].problem
    assert all(p.seq in (3, 4) for p in found)
