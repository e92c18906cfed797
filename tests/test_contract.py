"""The contract's wire codec: exact money in and out, and WireErrors that name the field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from platform_builders import Commands

from turingcore.contract import (
    MONEY_FIELDS,
    CommandResult,
    Envelope,
    WireError,
    _fast_post_entry,
    decode_envelope,
    decode_envelope_reference,
    encode_envelope,
    envelope_from_json,
)
from turingcore.embedded import EmbeddedPlatform

AMOUNT = "__AMOUNT__"
_EXACT = msgspec.json.Encoder(decimal_format="number")


def wire(command_type: str, payload: dict[str, Any], **outer: Any) -> dict[str, Any]:
    """A JSON envelope (as builtins) around a payload."""
    body = {
        "commandId": "7b0c7a52-3c8e-4a59-9f57-1f1a0c2b9d01",
        "tenantId": "cu-a",
        "commandType": command_type,
        "actor": {"actorType": "SERVICE", "actorId": "twin"},
        "timestamp": "2025-07-01T09:00:00+10:00",
        "payload": payload,
        "idempotencyKey": "key-1",
    }
    body.update(outer)
    return body


def post_entry(amount: Any = 1, **changes: Any) -> dict[str, Any]:
    """A PostEntry payload whose first leg carries `amount` (JSON-ready)."""
    payload = {
        "bookingDate": "2025-07-01",
        "valueDate": "2025-07-02",
        "currency": "AUD",
        "legs": [
            {"accountId": "acc-1", "direction": "DEBIT", "amount": amount},
            {"accountId": "GL_SALARY_CLEARING", "direction": "CREDIT", "amount": 1},
        ],
        "narrative": "salary",
        "tags": {"channel": "NPP"},
        "metadata": {"scenarioId": "s1", "day": 3},
    }
    payload.update(changes)
    return payload


def with_amount(text: str) -> str:
    """The PostEntry envelope's JSON text with the first leg amount spelled as `text`."""
    return json.dumps(wire("PostEntry", post_entry(AMOUNT))).replace(f'"{AMOUNT}"', text)


def upsert_product() -> dict[str, Any]:
    return {
        "productCode": "SAVER_PLUS",
        "name": "Saver Plus",
        "productType": "DEPOSIT",
        "category": "SAVINGS",
        "interest": {"rate": Decimal("0.0425"), "calculationMethod": "DAILY"},
        "fees": {"monthlyFee": Decimal("5.00"), "atmFeeOther": Decimal("2.5")},
        "constraints": {
            "minBalance": Decimal("10.00"),
            "maxBalance": 250000,
            "allowOverdraft": True,
            "overdraftLimit": Decimal("500.01"),
            "minAmount": Decimal("0.01"),
            "maxAmount": Decimal("1E+4"),
        },
        "features": ["NPP_ENABLED", "CARD_ENABLED"],
        "creditCriteria": {"minIncome": Decimal("45000.50"), "minCreditScore": 600},
    }


def create_customer() -> dict[str, Any]:
    return {
        "externalRef": "EXT-1",
        "person": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "dateOfBirth": "1980-12-10",
            "email": "ada@example.com",
            "mobile": "+61400000001",
        },
        "address": {
            "line1": "1 George St",
            "suburb": "Sydney",
            "state": "NSW",
            "postcode": "2000",
            "country": "AU",
        },
        "employment": {"status": "EMPLOYED", "annualIncome": Decimal("85000.75")},
        "riskProfile": {"segment": "RETAIL", "kycStatus": "VERIFIED", "creditScore": 700},
    }


def dumps(body: Any) -> str:
    """JSON text keeping Decimals as exact numbers (as a client would send them)."""
    return _EXACT.encode(body).decode()


# --------------------------------------------------------------------------- exact money


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.001", "more than two decimal places"),
        ("1.101", "more than two decimal places"),
        ("1e999", "larger"),
        ("-1", "negative"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ('"12.30"', "not a string"),
        ("true", "boolean"),
        ("null", "got `null`"),
    ],
)
def test_bad_leg_amounts_are_refused_naming_the_leg(text: str, reason: str) -> None:
    """Each bad amount on the wire is a WireError naming payload.legs[0].amount."""
    with pytest.raises(WireError) as caught:
        decode_envelope(with_amount(text))
    assert caught.value.field == "payload.legs[0].amount", caught.value
    assert reason in caught.value.reason


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_leg_amounts_are_refused_naming_the_leg(text: str) -> None:
    """NaN and the infinities are refused, and the error names the field they sat in."""
    with pytest.raises(WireError) as caught:
        decode_envelope(with_amount(text))
    assert caught.value.field == "payload.legs[0].amount", caught.value


@pytest.mark.parametrize(("text", "cents"), [("12.30", 1230), ("1E+1", 1000), ("0.01", 1)])
def test_exact_amounts_are_accepted_as_exact_cents(text: str, cents: int) -> None:
    """12.30 and 1E+1 arrive as exactly 1230 and 1000 cents (no float on the way)."""
    envelope = decode_envelope(with_amount(text))
    assert envelope.payload.legs[0].amount == cents
    assert type(envelope.payload.legs[0].amount) is int


def test_python_floats_are_refused_naming_the_field() -> None:
    """An already-parsed body holding a Python float is refused, the field named."""
    with pytest.raises(WireError) as caught:
        envelope_from_json(wire("PostEntry", post_entry(12.3)))
    assert caught.value.field == "payload.legs[0].amount"
    assert "float" in caught.value.reason
    body = wire("OpenAccount", {"customerId": "c", "productCode": "SAVER", "currency": "AUD"})
    body["payload"]["initialDeposit"] = 0.1
    with pytest.raises(WireError) as caught:
        envelope_from_json(body)
    assert caught.value.field == "payload.initialDeposit"


def test_an_amount_too_long_for_decimal_context_is_a_wire_error() -> None:
    """A 27-digit amount with a third decimal is a 400 naming the field, not a crash."""
    with pytest.raises(WireError) as caught:
        decode_envelope(with_amount("123456789012345678901234567.001"))
    assert caught.value.field == "payload.legs[0].amount"


def test_money_fields_of_open_account_and_create_customer_become_cents() -> None:
    """initialDeposit and employment.annualIncome are parsed exactly into cents."""
    body = wire(
        "OpenAccount",
        {
            "customerId": "c-1",
            "productCode": "SAVER",
            "currency": "AUD",
            "initialDeposit": Decimal("1234.50"),
        },
    )
    assert decode_envelope(dumps(body)).payload.initial_deposit == 123_450
    customer = decode_envelope(dumps(wire("CreateCustomer", create_customer())))
    assert customer.payload.employment.annual_income == 8_500_075
    assert customer.payload.person.date_of_birth.isoformat() == "1980-12-10"


def test_open_account_deposit_may_be_zero_but_not_negative() -> None:
    """initialDeposit 0 is allowed (only leg amounts must be above zero); -0.01 is not."""
    payload = {"customerId": "c-1", "productCode": "SAVER", "currency": "AUD"}
    zero = dumps(wire("OpenAccount", {**payload, "initialDeposit": 0}))
    assert decode_envelope(zero).payload.initial_deposit == 0
    negative = dumps(wire("OpenAccount", {**payload, "initialDeposit": Decimal("-0.01")}))
    with pytest.raises(WireError) as caught:
        decode_envelope(negative)
    assert caught.value.field == "payload.initialDeposit"


def test_upsert_product_decodes_with_every_money_field_in_cents() -> None:
    """An UpsertProduct with rates, fees, constraints and credit criteria decodes exactly.

    Every money path in MONEY_FIELDS["UpsertProduct"] becomes integer cents and
    the interest rate stays an exact Decimal.
    """
    envelope = decode_envelope(dumps(wire("UpsertProduct", upsert_product())))
    product = envelope.payload
    assert product.interest.rate == Decimal("0.0425")
    assert product.fees == {"monthlyFee": 500, "atmFeeOther": 250}
    limits = product.constraints
    assert (limits.min_balance, limits.max_balance) == (1_000, 25_000_000)
    assert (limits.overdraft_limit, limits.min_amount, limits.max_amount) == (50_001, 1, 1_000_000)
    assert product.credit_criteria.min_income == 4_500_050
    assert len(MONEY_FIELDS["UpsertProduct"]) == 7


def test_negative_rate_on_the_wire_is_refused() -> None:
    """A negative interest.rate never gets in: a 400 naming it, or the domain's NEGATIVE_RATE.

    Either answer is the contract's; what must not happen is a crash while decoding.
    """
    payload = upsert_product()
    payload["interest"]["rate"] = Decimal("-0.01")
    try:
        envelope = decode_envelope(dumps(wire("UpsertProduct", payload)))
    except WireError as exc:
        field = exc.field
    else:
        field = None
    if field is not None:
        assert field == "payload.interest.rate"
        return
    platform = EmbeddedPlatform()
    commands = Commands("cu-a")
    platform.submit("cu-a", [commands.create_tenant("CU_A")])
    envelope.tenant_id = "cu-a"
    (result,) = platform.submit("cu-a", [envelope])
    assert result.rule == "NEGATIVE_RATE"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("fees.monthlyFee", "0.001"),
        ("constraints.minBalance", "-5"),
        ("creditCriteria.minIncome", "1e999"),
    ],
)
def test_bad_product_money_is_named_by_its_path(path: str, value: str) -> None:
    """A bad amount deep in an UpsertProduct names its full path."""
    payload = upsert_product()
    head, leaf = path.split(".")
    payload[head][leaf] = AMOUNT
    text = dumps(wire("UpsertProduct", payload)).replace(f'"{AMOUNT}"', value)
    with pytest.raises(WireError) as caught:
        decode_envelope(text)
    assert caught.value.field == f"payload.{path}"


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    ("command_type", "payload"),
    [
        ("PostEntry", post_entry(Decimal("12.30"))),
        ("CreateCustomer", create_customer()),
        (
            "OpenAccount",
            {
                "customerId": "c-1",
                "productCode": "SAVER",
                "currency": "AUD",
                "initialDeposit": Decimal("1E+1"),
                "accountAlias": "Bills",
            },
        ),
        (
            "CreateTenant",
            {
                "tenantCode": "CU_A",
                "displayName": "CU A",
                "region": "AU",
                "baseCurrency": "AUD",
                "timeZone": "Australia/Sydney",
            },
        ),
        ("UpsertProduct", upsert_product()),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_encode_decode_round_trip_keeps_money_exact(
    command_type: str, payload: dict[str, Any]
) -> None:
    """decode(encode(decode(x))) == decode(x), and the re-encoded amounts equal the originals."""
    first = decode_envelope(dumps(wire(command_type, payload)))
    encoded = encode_envelope(first)
    again = decode_envelope(encoded)
    assert again == first
    assert encode_envelope(again) == encoded
    back = json.loads(encoded, parse_float=Decimal)
    for path in MONEY_FIELDS[command_type]:
        for original, echoed in zip(
            _select(payload, path), _select(back["payload"], path), strict=True
        ):
            assert Decimal(original) == echoed, path
            assert not isinstance(echoed, float)


def _select(node: Any, path: str) -> list[Any]:
    """Values a MONEY_FIELDS path selects (`[]` walks a list, `*` a mapping)."""
    found = [node]
    for part in path.split("."):
        step: list[Any] = []
        for item in found:
            if not isinstance(item, dict):
                continue
            if part == "*":
                step.extend(item.values())
            elif part.endswith("[]"):
                step.extend(item.get(part[:-2]) or [])
            elif part in item:
                step.append(item[part])
        found = step
    return found


def test_round_trip_writes_amounts_as_two_place_numbers() -> None:
    """On the way out, 1230 cents is the JSON number 12.30 (not a string, not a float)."""
    encoded = encode_envelope(decode_envelope(with_amount("12.3")))
    assert b'"amount":12.30' in encoded
    assert b'"amount":1.00' in encoded


# --------------------------------------------------------------------------- wire errors


def _mutated(change: Any) -> str:
    body = wire("PostEntry", post_entry(1))
    change(body)
    return json.dumps(body)


@pytest.mark.parametrize(
    ("change", "field", "mentions"),
    [
        (lambda b: b.update(extra=1), "", "extra"),
        (lambda b: b["payload"].update(color="red"), "payload", "color"),
        (lambda b: b["payload"]["legs"][1].update(memo="x"), "payload.legs[1]", "memo"),
        (lambda b: b["actor"].update(actorType="ROBOT"), "actor.actorType", "ROBOT"),
        (lambda b: b["payload"]["legs"][0].update(direction="UP"), "payload.legs[0].direction", ""),
        (lambda b: b.update(commandType="CloseAccount"), "commandType", "CloseAccount"),
        (lambda b: b.pop("commandType"), "commandType", ""),
        (lambda b: b.pop("commandId"), "", "commandId"),
        (lambda b: b["payload"].pop("narrative"), "payload", "narrative"),
        (lambda b: b["payload"]["legs"][0].pop("amount"), "payload.legs[0]", "amount"),
        (lambda b: b.update(timestamp="2025-07-01T09:00:00"), "timestamp", "offset"),
        (lambda b: b.update(timestamp="next tuesday"), "timestamp", "ISO 8601"),
        (lambda b: b.update(payload=[1, 2]), "payload", "object"),
        (lambda b: b.update(payload=None), "payload", "object"),
        (lambda b: b["payload"].update(bookingDate="2025-13-01"), "payload.bookingDate", ""),
        (lambda b: b["payload"].update(currency="aud"), "payload.currency", ""),
        (lambda b: b["payload"].update(legs=[b["payload"]["legs"][0]]), "payload.legs", ""),
        (lambda b: b.update(idempotencyKey=""), "idempotencyKey", ""),
        (lambda b: b["actor"].update(actorId=""), "actor.actorId", ""),
    ],
)
def test_malformed_envelopes_are_wire_errors_naming_the_field(
    change: Any, field: str, mentions: str
) -> None:
    """Unknown fields, wrong enums, missing fields, bad timestamps, bad shapes: 400s."""
    with pytest.raises(WireError) as caught:
        decode_envelope(_mutated(change))
    assert caught.value.field == field, caught.value
    assert mentions in str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(tenantCode="cu_a"), "payload.tenantCode"),
        (lambda p: p.update(region="AUS"), "payload.region"),
        (lambda p: p.update(baseCurrency="A$"), "payload.baseCurrency"),
        (lambda p: p.update(displayName=""), "payload.displayName"),
    ],
)
def test_create_tenant_shapes_are_checked_on_the_wire(change: Any, field: str) -> None:
    """tenantCode UPPER_SNAKE, region alpha-2, currency alpha-3: refused naming the field."""
    payload = {
        "tenantCode": "CU_A",
        "displayName": "CU A",
        "region": "AU",
        "baseCurrency": "AUD",
        "timeZone": "Australia/Sydney",
    }
    assert decode_envelope(dumps(wire("CreateTenant", payload))).payload.tenant_code == "CU_A"
    change(payload)
    with pytest.raises(WireError) as caught:
        decode_envelope(dumps(wire("CreateTenant", payload)))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("path", "value"),
    [("mobile", "0400 000 001"), ("email", "not-an-email"), ("dateOfBirth", "10/12/1980")],
)
def test_person_fields_are_checked_on_the_wire(path: str, value: str) -> None:
    """A non-E.164 mobile, a malformed email or date is refused naming payload.person.*."""
    payload = create_customer()
    payload["person"][path] = value
    with pytest.raises(WireError) as caught:
        decode_envelope(dumps(wire("CreateCustomer", payload)))
    assert caught.value.field == f"payload.person.{path}"


@pytest.mark.parametrize("body", ["[1, 2]", '"envelope"', "42", "null"])
def test_a_body_that_is_not_an_object_is_refused(body: str) -> None:
    """A JSON body that is not an object is a WireError saying so."""
    with pytest.raises(WireError, match="JSON object"):
        decode_envelope(body)


@pytest.mark.parametrize("body", ["{", "", "{'a': 1}", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(body: str | bytes) -> None:
    """Bytes that are not JSON at all are a WireError, not a crash."""
    with pytest.raises(WireError, match="not valid JSON"):
        decode_envelope(body)


def test_decoding_does_not_modify_the_callers_body() -> None:
    """envelope_from_json converts money on a copy: the caller's dict keeps its Decimals."""
    body = wire("PostEntry", post_entry(Decimal("12.30")))
    snapshot = json.loads(dumps(body), parse_float=Decimal)
    envelope = envelope_from_json(body)
    assert envelope.payload.legs[0].amount == 1230
    assert body == snapshot


def test_decoded_envelope_keeps_every_outer_field() -> None:
    """commandId, tenantId, actor, timestamp and idempotencyKey survive decoding as sent."""
    envelope = decode_envelope(json.dumps(wire("PostEntry", post_entry(1))))
    assert isinstance(envelope, Envelope)
    assert envelope.command_id == "7b0c7a52-3c8e-4a59-9f57-1f1a0c2b9d01"
    assert (envelope.tenant_id, envelope.command_type) == ("cu-a", "PostEntry")
    assert (envelope.actor.actor_type, envelope.actor.actor_id) == ("SERVICE", "twin")
    assert envelope.timestamp == "2025-07-01T09:00:00+10:00"
    assert envelope.idempotency_key == "key-1"
    assert envelope.payload.metadata == {"scenarioId": "s1", "day": 3}


# --------------------------------------------------------------------------- answers


def test_command_result_json_follows_the_contract() -> None:
    """Accepted → 202 CommandAccepted; rule refusal → 422 InvariantViolation; 400 → Error."""
    accepted = CommandResult("c1", "ACCEPTED", "c1", "2025-07-01T09:00:00+10:00", first_seq=3)
    assert accepted.accepted
    assert accepted.to_json() == {
        "commandId": "c1",
        "status": "ACCEPTED",
        "correlationId": "c1",
        "acceptedAt": "2025-07-01T09:00:00+10:00",
    }
    refused = CommandResult(
        "c2",
        "REJECTED",
        "c2",
        "t",
        rule="UNBALANCED_ENTRY",
        error="INVARIANT_VIOLATION",
        message="debits 1 != credits 2",
    )
    assert not refused.accepted
    assert refused.to_json() == {
        "commandId": "c2",
        "error": "INVARIANT_VIOLATION",
        "invariant": "UNBALANCED_ENTRY",
        "details": {"message": "debits 1 != credits 2"},
    }
    bad = CommandResult("c3", "REJECTED", "c3", "t", rule="x", error="BAD_REQUEST", message="m")
    assert bad.to_json() == {"error": "BAD_REQUEST", "message": "m", "details": {"rule": "x"}}


# --------------------------------------------------------------------------- fast path


@pytest.mark.parametrize(
    "text",
    ["12.30", "12.3", "1", "7E+1", "1.000", "0.01", "9999999999999.99", "10000000000000", "1e2"],
)
def test_fast_and_reference_decoders_agree_on_well_formed_entries(text: str) -> None:
    """Every well-formed PostEntry decodes to the same Envelope on both paths."""
    body = with_amount(text)
    assert decode_envelope(body) == decode_envelope_reference(body)
    assert decode_envelope(body.encode()) == decode_envelope_reference(body.encode())


@pytest.mark.parametrize(
    "text",
    [
        "0.001",
        "1.101",
        "1e999",
        "-1",
        "-0.50",
        "0",
        "0.00",
        '"12.30"',
        "true",
        "null",
        "NaN",
        "Infinity",
        "10000000000000.01",
        "123456789012345678901234567.001",
        "[1]",
        '{"v": 1}',
    ],
)
def test_fast_and_reference_decoders_refuse_alike(text: str) -> None:
    """Anything the reference refuses, decode_envelope refuses with the same field and reason."""
    body = with_amount(text)
    with pytest.raises(WireError) as reference:
        decode_envelope_reference(body)
    with pytest.raises(WireError) as fast:
        decode_envelope(body)
    assert (fast.value.field, fast.value.reason) == (reference.value.field, reference.value.reason)


def test_the_fast_path_takes_plain_entries_and_defers_the_rest() -> None:
    """Plain PostEntries are decoded in one pass; other commands and odd amounts are deferred.

    Deferring is always safe (the reference decides); this pins that the common
    case really is fast, so the speed-up cannot silently disappear.
    """
    plain = with_amount("12.30")
    assert _fast_post_entry(plain) == decode_envelope_reference(plain)
    for deferred in (
        with_amount("1E+1"),
        with_amount("1.000"),
        with_amount('"1.00"'),
        json.dumps(wire("PostEntry", post_entry(1), timestamp="2025-07-01T09:00:00")),
        dumps(wire("CreateCustomer", create_customer())),
    ):
        assert _fast_post_entry(deferred) is None


def test_duplicate_keys_take_the_last_value_on_both_paths() -> None:
    """A repeated key means the same on both paths (the last one wins, as json does)."""
    body = with_amount("1.00").replace(
        '"narrative": "salary"', '"narrative": "a", "narrative": "b"'
    )
    assert body.count('"narrative"') == 2
    assert decode_envelope(body).payload.narrative == "b"
    assert decode_envelope_reference(body).payload.narrative == "b"
