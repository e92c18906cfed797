"""The TuringCore-v3 command contract as typed objects, and its JSON wire codec.

The Structs below serialise to exactly the contract's camelCase JSON. Inside
they hold money as integer cents; the wire codec turns JSON decimal numbers
into cents (exactly, from their text) on the way in, and cents into decimal
numbers on the way out. Which fields are money is declared once, in
`MONEY_FIELDS`, so the codec never guesses.

Construction in Python does not validate (msgspec Structs are cheap to build,
which matters on the hot path); `decode_envelope` validates everything a
client can get wrong, and the domain (`turingcore.domain`) enforces the
business rules on every command however it arrived.

`decode_envelope` has two paths. The *reference* path (`json.loads` with exact
Decimals, money converted by `MONEY_FIELDS`, then `msgspec.convert`) is the
authority: it defines what is accepted and every `WireError` message. A *fast*
path (one typed msgspec decode of a PostEntry, money read from the number's
own text) handles the common well-formed entry in a fraction of the time and
gives up, without judging, on anything it is not sure of; the reference path
then decides. So the fast path can only ever accept what the reference path
accepts, with the same result (tests/test_contract.py checks both agree).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from turingcore.money import MAX_CENTS, MoneyError, format_cents, parse_cents

UPPER_SNAKE = r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$"
E164 = r"^\+[1-9][0-9]{6,14}$"
ID_TEXT = Annotated[str, Meta(min_length=1, max_length=128)]
NAME_TEXT = Annotated[str, Meta(min_length=1, max_length=200)]
#: Money inside (integer cents); on the wire a JSON decimal number with at most two places.
Cents = Annotated[
    int,
    Meta(
        extra_json_schema={
            "type": "number",
            "minimum": 0,
            "multipleOf": 0.01,
            "description": "an exact decimal amount, at most two places (integer cents inside)",
        }
    ),
]

CommandType = Literal["CreateTenant", "UpsertProduct", "CreateCustomer", "OpenAccount", "PostEntry"]
ProductType = Literal["DEPOSIT", "LOAN", "TERM_DEPOSIT", "CREDIT_CARD"]
Feature = Literal["NPP_ENABLED", "BPAY_ENABLED", "CARD_ENABLED"]
Direction = Literal["DEBIT", "CREDIT"]


class _Wire(Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Contract objects: camelCase on the wire, unknown fields refused."""


class Actor(_Wire, frozen=True):
    actor_type: Literal["SYSTEM", "USER", "SERVICE"]
    actor_id: ID_TEXT


class CreateTenant(_Wire):
    tenant_code: Annotated[str, Meta(pattern=UPPER_SNAKE, max_length=40)]
    display_name: NAME_TEXT
    region: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    base_currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    time_zone: Annotated[str, Meta(min_length=1, max_length=64)]
    regulatory_jurisdiction: str | None = None
    business_type: str | None = None


class Interest(_Wire):
    rate: Decimal | None = None
    base_rate: Decimal | None = None
    bonus_rate: Decimal | None = None
    bonus_conditions: list[str] | None = None
    calculation_method: str | None = None
    payment_frequency: str | None = None


class Constraints(_Wire):
    min_balance: Cents | None = None
    max_balance: Cents | None = None
    allow_overdraft: bool = False
    overdraft_limit: Cents | None = None
    min_amount: Cents | None = None
    max_amount: Cents | None = None
    term_months_default: Annotated[int, Meta(ge=1, le=600)] | None = None
    term_months_options: list[Annotated[int, Meta(ge=1, le=600)]] | None = None


class CreditCriteria(_Wire):
    min_income: Cents | None = None
    max_dti_ratio: Decimal | None = None
    min_credit_score: Annotated[int, Meta(ge=0, le=1200)] | None = None


class UpsertProduct(_Wire):
    product_code: Annotated[str, Meta(pattern=UPPER_SNAKE, max_length=40)]
    name: NAME_TEXT
    product_type: ProductType
    interest: Interest
    category: str | None = None
    fees: dict[str, Cents] | None = None
    constraints: Constraints | None = None
    features: list[Feature] | None = None
    credit_criteria: CreditCriteria | None = None


class Person(_Wire):
    first_name: NAME_TEXT
    last_name: NAME_TEXT
    date_of_birth: date
    email: Annotated[str, Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    mobile: Annotated[str, Meta(pattern=E164)]


class Address(_Wire):
    line1: NAME_TEXT
    suburb: NAME_TEXT
    state: Annotated[str, Meta(min_length=2, max_length=3)]
    postcode: Annotated[str, Meta(pattern=r"^[0-9]{4}$")]
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    line2: str | None = None


class Employment(_Wire):
    status: str
    employer: str | None = None
    occupation: str | None = None
    annual_income: Cents | None = None


class RiskProfile(_Wire):
    segment: str | None = None
    kyc_status: str | None = None
    credit_score: Annotated[int, Meta(ge=0, le=1200)] | None = None


class CreateCustomer(_Wire):
    person: Person
    address: Address
    external_ref: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    employment: Employment | None = None
    risk_profile: RiskProfile | None = None


class OpenAccount(_Wire):
    customer_id: ID_TEXT
    product_code: Annotated[str, Meta(pattern=UPPER_SNAKE, max_length=40)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    account_alias: str | None = None
    initial_deposit: Cents | None = None
    account_purpose: str | None = None


class Leg(_Wire, frozen=True, gc=False):
    account_id: ID_TEXT
    direction: Direction
    amount: Annotated[
        int,
        Meta(
            extra_json_schema={
                "type": "number",
                "exclusiveMinimum": 0,
                "multipleOf": 0.01,
                "description": "an exact decimal amount above zero, at most two places",
            }
        ),
    ]


class PostEntry(_Wire):
    booking_date: date
    value_date: date
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    legs: Annotated[list[Leg], Meta(min_length=2, max_length=100)]
    narrative: Annotated[str, Meta(max_length=500)]
    tags: dict[str, str] | None = None
    metadata: dict[str, str | int] | None = None


Payload = CreateTenant | UpsertProduct | CreateCustomer | OpenAccount | PostEntry

PAYLOAD_TYPES: dict[str, type[Payload]] = {
    "CreateTenant": CreateTenant,
    "UpsertProduct": UpsertProduct,
    "CreateCustomer": CreateCustomer,
    "OpenAccount": OpenAccount,
    "PostEntry": PostEntry,
}


class Envelope(_Wire):
    """A command as the contract defines it; `payload` is the typed object."""

    command_id: ID_TEXT
    tenant_id: ID_TEXT
    command_type: CommandType
    actor: Actor
    timestamp: str
    payload: Any
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class CommandResult(Struct, frozen=True, gc=False):
    """The answer to one command: the contract's CommandAccepted, or a refusal.

    `status` is ACCEPTED or REJECTED; a refusal names the `rule` it broke
    (`error` is INVARIANT_VIOLATION for business rules, BAD_REQUEST for a
    malformed command). `first_seq`/`last_seq` give the events it wrote.
    """

    command_id: str
    status: Literal["ACCEPTED", "REJECTED"]
    correlation_id: str
    accepted_at: str
    rule: str | None = None
    error: str | None = None
    message: str | None = None
    first_seq: int = 0
    last_seq: int = 0

    @property
    def accepted(self) -> bool:
        return self.status == "ACCEPTED"

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON answer: 202 CommandAccepted, or 422/400 Error body."""
        if self.accepted:
            return {
                "commandId": self.command_id,
                "status": self.status,
                "correlationId": self.correlation_id,
                "acceptedAt": self.accepted_at,
            }
        if self.error in ("BAD_REQUEST", "FORBIDDEN"):
            return {"error": self.error, "message": self.message, "details": {"rule": self.rule}}
        return {
            "commandId": self.command_id,
            "error": "INVARIANT_VIOLATION",
            "invariant": self.rule,
            "details": {"message": self.message},
        }


# --------------------------------------------------------------------------- money paths

#: JSON paths (camelCase) of every money field per command type. `[]` walks a
#: list, `*` every value of a mapping. Leg amounts must also be above zero.
MONEY_FIELDS: dict[str, tuple[str, ...]] = {
    "CreateTenant": (),
    "UpsertProduct": (
        "fees.*",
        "constraints.minBalance",
        "constraints.maxBalance",
        "constraints.overdraftLimit",
        "constraints.minAmount",
        "constraints.maxAmount",
        "creditCriteria.minIncome",
    ),
    "CreateCustomer": ("employment.annualIncome",),
    "OpenAccount": ("initialDeposit",),
    "PostEntry": ("legs[].amount",),
}
_POSITIVE_MONEY = {"legs[].amount"}


def _walk_money(
    node: Any, parts: list[str], where: str, convert: Callable[[Any, str], Any]
) -> None:
    """Apply `convert(value, path)` in place to every value the path selects."""
    if not parts or node is None:
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        key = head[:-2]
        items = node.get(key) if isinstance(node, dict) else None
        if isinstance(items, list):
            for index, item in enumerate(items):
                _walk_money(item, rest, f"{where}{key}[{index}].", convert)
        return
    if head == "*":
        if isinstance(node, dict):
            for key in list(node):
                node[key] = convert(node[key], f"{where}{key}")
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _walk_money(node[head], rest, f"{where}{head}.", convert)
    elif node[head] is not None:
        node[head] = convert(node[head], f"{where}{head}")


# --------------------------------------------------------------------------- codec


class WireError(ValueError):
    """A malformed envelope or payload (the API's 400): names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


def _nonfinite(name: str) -> Decimal:
    """NaN / Infinity literals become non-finite Decimals, refused by the field's check."""
    return Decimal(name)


def _check_timestamp(text: str) -> None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WireError("timestamp", f"{text!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise WireError("timestamp", "must carry a UTC offset")


_MSGSPEC_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")


def decode_envelope(data: bytes | str | msgspec.Raw) -> Envelope:
    """Parse and validate one command envelope from JSON, money exactly.

    Tries the fast path first (a well-formed PostEntry), then the reference
    path, which alone decides what is refused and how the error reads.

    Raises:
        WireError: naming the field, for anything a client can get wrong.
    """
    fast = _fast_post_entry(data)
    if fast is not None:
        return fast
    return decode_envelope_reference(data)


def decode_envelope_reference(data: bytes | str | msgspec.Raw) -> Envelope:
    """The reference decoder: exact Decimals from `json`, then `envelope_from_json`.

    Raises:
        WireError: naming the field, for anything a client can get wrong.
    """
    raw = _UNTYPED.decode(data)
    if raw is _MALFORMED:
        # msgspec refuses what json accepts as NaN/Infinity (named by the
        # money check) and words its errors differently: json has the last word.
        text = data if isinstance(data, str | bytes | bytearray) else bytes(data)
        try:
            raw = json.loads(text, parse_float=Decimal, parse_constant=_nonfinite)
        except WireError:
            raise
        except (ValueError, RecursionError) as exc:
            raise WireError("", f"body is not valid JSON: {exc}") from None
    return envelope_from_json(raw)


def envelope_from_json(raw: Any) -> Envelope:
    """Validate an already-parsed JSON object (numbers as int/Decimal)."""
    if not isinstance(raw, dict):
        raise WireError("", "the envelope must be a JSON object")
    command_type = raw.get("commandType")
    if command_type not in PAYLOAD_TYPES:
        allowed = ", ".join(PAYLOAD_TYPES)
        raise WireError("commandType", f"{command_type!r} is not one of {allowed}")
    payload = raw.get("payload")
    if not isinstance(payload, dict):
        raise WireError("payload", "must be a JSON object")
    payload = _deep_copy(payload)
    for path in MONEY_FIELDS[command_type]:
        positive = path in _POSITIVE_MONEY

        def to_cents(value: Any, where: str, positive: bool = positive) -> int:
            if isinstance(value, str):
                raise WireError(f"payload.{where}", "must be a JSON number, not a string")
            try:
                return parse_cents(value, f"payload.{where}", allow_zero=not positive)
            except MoneyError as exc:
                raise WireError(exc.field, exc.reason) from None

        _walk_money(payload, path.split("."), "", to_cents)
    outer = {key: value for key, value in raw.items() if key != "payload"}
    outer["payload"] = None
    envelope = _convert(outer, Envelope, "")
    _check_timestamp(envelope.timestamp)
    envelope.payload = _convert(payload, PAYLOAD_TYPES[command_type], "payload")
    return envelope


def _convert(node: Any, kind: type[Any], prefix: str) -> Any:
    """msgspec validation with its error turned into a WireError naming the field."""
    try:
        return msgspec.convert(node, type=kind, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _MSGSPEC_PATH.search(text)
        inner = match.group("path").lstrip(".") if match else ""
        field = ".".join(part for part in (prefix, inner) if part)
        message = _MSGSPEC_PATH.sub("", text).strip().rstrip("-").strip()
        raise WireError(field, message) from None


# --------------------------------------------------------------------------- fast path

_MALFORMED = object()


class _UntypedDecoder:
    """JSON to builtins with exact Decimals (msgspec), or `_MALFORMED` when msgspec refuses.

    Equal to `json.loads(parse_float=Decimal)` on every document msgspec
    accepts (numbers with a fraction or exponent become `Decimal` of their
    text, the last of duplicate keys wins); anything else goes to `json`.
    """

    __slots__ = ("_decode",)

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(float_hook=Decimal).decode

    def decode(self, data: bytes | str | msgspec.Raw) -> Any:
        try:
            return self._decode(data)
        except (ValueError, RecursionError, TypeError):  # DecodeError is a ValueError
            return _MALFORMED


_UNTYPED = _UntypedDecoder()


class _NumberText(str):
    """The text of a JSON number with a fraction or exponent, as msgspec read it.

    A distinct type so a JSON *string* holding digits is never taken for money.
    """

    __slots__ = ()


class _FastLeg(_Wire, frozen=True, gc=False):
    account_id: ID_TEXT
    direction: Direction
    amount: Any


class _FastPostEntry(_Wire, gc=False):
    booking_date: date
    value_date: date
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    legs: Annotated[list[_FastLeg], Meta(min_length=2, max_length=100)]
    narrative: Annotated[str, Meta(max_length=500)]
    tags: dict[str, str] | None = None
    metadata: dict[str, str | int] | None = None


class _FastPostEnvelope(_Wire, gc=False):
    command_id: ID_TEXT
    tenant_id: ID_TEXT
    command_type: Literal["PostEntry"]
    actor: Actor
    timestamp: str
    payload: _FastPostEntry
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


_FAST_POST = msgspec.json.Decoder(_FastPostEnvelope, float_hook=_NumberText)
_MAX_WHOLE_UNITS = MAX_CENTS // 100


def _fast_leg_cents(amount: Any) -> int | None:
    """Cents of a leg amount the reference path surely accepts as-is, else None.

    Only plain positive integers and `digits.d` / `digits.dd` numbers are
    read here; exponents, signs, longer fractions and everything else are
    left to `parse_cents` on the reference path. The text is a valid JSON
    number (msgspec only hands those to the float hook), so without a sign
    or an exponent it is digits, a dot and digits.
    """
    kind = type(amount)
    if kind is int:
        return amount * 100 if 0 < amount <= _MAX_WHOLE_UNITS else None
    if kind is not _NumberText or amount[0] == "-" or "e" in amount or "E" in amount:
        return None
    places = len(amount) - amount.find(".") - 1
    if places == 2:
        cents = int(amount.replace(".", ""))
    elif places == 1:
        cents = int(amount.replace(".", "")) * 10
    else:
        return None
    return cents if 0 < cents <= MAX_CENTS else None


def _fast_post_entry(data: bytes | str | msgspec.Raw) -> Envelope | None:
    """A well-formed PostEntry decoded in one typed pass, or None to defer to the reference."""
    try:
        wire = _FAST_POST.decode(data)
    except (ValueError, RecursionError, TypeError):  # DecodeError is a ValueError
        return None
    payload = wire.payload
    legs = []
    for leg in payload.legs:
        cents = _fast_leg_cents(leg.amount)
        if cents is None:
            return None
        legs.append(Leg(leg.account_id, leg.direction, cents))
    timestamp = wire.timestamp
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return Envelope(
        wire.command_id,
        wire.tenant_id,
        "PostEntry",
        wire.actor,
        timestamp,
        PostEntry(
            payload.booking_date,
            payload.value_date,
            payload.currency,
            legs,
            payload.narrative,
            payload.tags,
            payload.metadata,
        ),
        wire.idempotency_key,
    )


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _deep_copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_deep_copy(value) for value in node]
    return node


_ENCODER = msgspec.json.Encoder(decimal_format="number")


def envelope_to_json(envelope: Envelope) -> dict[str, Any]:
    """The envelope as JSON-ready builtins, money as exact two-place Decimals."""
    body = msgspec.to_builtins(envelope, builtin_types=(Decimal,))
    payload = msgspec.to_builtins(envelope.payload, builtin_types=(Decimal,))
    for path in MONEY_FIELDS[envelope.command_type]:
        _walk_money(payload, path.split("."), "", lambda value, _where: format_cents(value))
    body["payload"] = payload
    return body


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialise to the contract's JSON bytes (amounts as decimal numbers)."""
    return _ENCODER.encode(envelope_to_json(envelope))
