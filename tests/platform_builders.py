"""Builders shared by the platform's tests (`turingcore`): envelopes, tenants, recorders.

Everything here goes through the platform's public surface: contract Structs
built in Python, `EmbeddedPlatform.submit`, its listeners and read queries.
Nothing reaches into the shell's internals, so optimising the shell does not
break the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from turingcore.contract import (
    Actor,
    Address,
    CommandResult,
    Constraints,
    CreateCustomer,
    CreateTenant,
    Envelope,
    Interest,
    Leg,
    OpenAccount,
    Person,
    PostEntry,
    UpsertProduct,
)
from turingcore.domain import RULES
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH, SealedEvent

DAY = date(2025, 7, 1)
TIMESTAMP = "2025-07-01T09:00:00+10:00"
SYDNEY = Address("1 George St", "Sydney", "NSW", "2000", "AU")


def stamp(day: date, time: str = "09:00:00", offset: str = "+10:00") -> str:
    """An ISO 8601 command timestamp on `day` with an explicit UTC offset."""
    return f"{day.isoformat()}T{time}{offset}"


class Commands:
    """Makes envelopes for one tenant, with deterministic and unique command ids."""

    def __init__(self, tenant_id: str, timestamp: str = TIMESTAMP, tag: str = "cmd") -> None:
        self.tenant_id = tenant_id
        self.timestamp = timestamp
        self.tag = tag
        self.count = 0

    def envelope(
        self,
        kind: str,
        payload: Any,
        *,
        key: str | None = None,
        timestamp: str | None = None,
        tenant_id: str | None = None,
    ) -> Envelope:
        self.count += 1
        return Envelope(
            command_id=f"{self.tenant_id}-{self.tag}-{self.count:05d}",
            tenant_id=self.tenant_id if tenant_id is None else tenant_id,
            command_type=kind,
            actor=Actor("SYSTEM", "tests"),
            timestamp=self.timestamp if timestamp is None else timestamp,
            payload=payload,
            idempotency_key=key,
        )

    def create_tenant(
        self,
        code: str,
        *,
        currency: str = "AUD",
        region: str = "AU",
        time_zone: str = "Australia/Sydney",
        **kw: Any,
    ) -> Envelope:
        return self.envelope(
            "CreateTenant", CreateTenant(code, f"{code} CU", region, currency, time_zone), **kw
        )

    def product(
        self,
        code: str = "SAVER",
        product_type: str = "DEPOSIT",
        *,
        interest: Interest | None = None,
        constraints: Constraints | None = None,
        name: str | None = None,
        **kw: Any,
    ) -> Envelope:
        payload = UpsertProduct(
            code,
            name or code.title(),
            product_type,
            interest if interest is not None else Interest(rate=Decimal("0.015")),
            constraints=constraints,
        )
        return self.envelope("UpsertProduct", payload, **kw)

    def customer(
        self,
        n: int,
        *,
        email: str | None = None,
        mobile: str | None = None,
        external_ref: str | None = None,
        born: date = date(1980, 1, 1),
        **kw: Any,
    ) -> Envelope:
        person = Person(
            "Ada",
            f"Member{n}",
            born,
            email if email is not None else f"m{n}@{self.tenant_id}.example",
            mobile if mobile is not None else f"+6140{n:07d}",
        )
        payload = CreateCustomer(person, SYDNEY, external_ref=external_ref)
        return self.envelope("CreateCustomer", payload, **kw)

    def open_account(
        self,
        customer_id: str,
        product: str = "SAVER",
        deposit: int | None = None,
        *,
        currency: str = "AUD",
        alias: str | None = None,
        **kw: Any,
    ) -> Envelope:
        payload = OpenAccount(
            customer_id, product, currency, account_alias=alias, initial_deposit=deposit
        )
        return self.envelope("OpenAccount", payload, **kw)

    def post(
        self,
        legs: Sequence[tuple[str, str, int]],
        *,
        booking: date = DAY,
        value: date | None = None,
        currency: str = "AUD",
        narrative: str = "test entry",
        **kw: Any,
    ) -> Envelope:
        payload = PostEntry(
            booking,
            value if value is not None else booking,
            currency,
            [Leg(account, direction, amount) for account, direction, amount in legs],
            narrative,
        )
        return self.envelope("PostEntry", payload, **kw)


class Recorder:
    """A listener that keeps every published batch, per tenant, in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[SealedEvent]]] = []

    def __call__(self, tenant_id: str, events: list[SealedEvent]) -> None:
        self.batches.append((tenant_id, list(events)))

    def events(self, tenant_id: str | None = None) -> list[SealedEvent]:
        return [e for t, batch in self.batches if tenant_id in (None, t) for e in batch]


class RecordingSink:
    """An EventSink that keeps what the shell stores, to check what a refusal writes."""

    def __init__(self) -> None:
        self.appended: list[tuple[str, list[SealedEvent]]] = []
        self.refusals: list[tuple[str, Envelope, CommandResult]] = []
        self.closed = False

    def append(self, tenant_id: str, events: Sequence[SealedEvent]) -> None:
        self.appended.append((tenant_id, list(events)))

    def rejected(self, tenant_id: str, envelope: Envelope, result: CommandResult) -> None:
        self.refusals.append((tenant_id, envelope, result))

    def close(self) -> None:
        self.closed = True


@dataclass
class Bank:
    """A tenant set up on a platform: its command maker, customers and accounts."""

    platform: EmbeddedPlatform
    recorder: Recorder
    tenant_id: str
    code: str
    cmd: Commands
    customers: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    def submit(self, *envelopes: Envelope) -> list[CommandResult]:
        return self.platform.submit(self.tenant_id, list(envelopes))

    def one(self, envelope: Envelope) -> CommandResult:
        (result,) = self.platform.submit(self.tenant_id, [envelope])
        return result

    def balances(self) -> dict[str, int]:
        """Every account's balance in cents (GL accounts included) from the read model."""
        state = self.platform.tenant(self.tenant_id)
        assert state is not None
        return {account_id: a.balance for account_id, a in state.accounts.items()}

    def head(self) -> tuple[int, str]:
        """The tenant's (seq, head hash); genesis for a tenant the platform never saw."""
        try:
            return self.platform.head(self.tenant_id)
        except KeyError:
            return (0, GENESIS_HASH)

    def snapshot(self) -> Any:
        """What a refusal must leave untouched: the head, the read model, the published."""
        state = self.platform.tenant(self.tenant_id)
        return (
            self.head(),
            copy.deepcopy(self.balances()) if state is not None else None,
            self.platform.customers(self.tenant_id, limit=1000),
            self.platform.accounts(self.tenant_id, limit=1000),
            len(self.recorder.events()),
        )

    def refuse(self, envelope: Envelope, rule: str) -> CommandResult:
        """Submit a command that must be refused by `rule`; check nothing was written."""
        before = self.snapshot()
        result = self.one(envelope)
        assert result.status == "REJECTED", (rule, result)
        assert result.rule == rule, (rule, result)
        assert rule in RULES
        assert result.error == "INVARIANT_VIOLATION"
        assert result.message
        assert result.first_seq == result.last_seq == 0
        assert result.to_json()["invariant"] == rule
        assert self.snapshot() == before, f"{rule}: a refusal changed state"
        return result

    def accept(self, envelope: Envelope) -> list[SealedEvent]:
        """Submit a command that must be accepted; returns the events it published."""
        published = len(self.recorder.events())
        seq_before = self.head()[0]
        result = self.one(envelope)
        assert result.accepted, result
        events = self.recorder.events()[published:]
        assert [e.event.seq for e in events] == list(range(result.first_seq, result.last_seq + 1))
        assert result.first_seq == seq_before + 1
        assert all(e.event.causation_id == envelope.command_id for e in events)
        return events


def new_bank(
    platform: EmbeddedPlatform | None = None,
    tenant_id: str = "cu-a",
    code: str = "CU_A",
    *,
    customers: int = 2,
    deposit: int = 50_000,
    recorder: Recorder | None = None,
) -> Bank:
    """A tenant with a SAVER deposit product, customers and one funded account each."""
    platform = platform if platform is not None else EmbeddedPlatform()
    if recorder is None:
        recorder = Recorder()
        platform.subscribe(recorder)
    bank = Bank(platform, recorder, tenant_id, code, Commands(tenant_id))
    cmd = bank.cmd
    results = bank.submit(cmd.create_tenant(code), cmd.product("SAVER"))
    results += bank.submit(*(cmd.customer(i) for i in range(customers)))
    assert all(r.accepted for r in results), results
    bank.customers = [row["customerId"] for row in platform.customers(tenant_id)["customers"]]
    opened = bank.submit(*(cmd.open_account(c, "SAVER", deposit) for c in bank.customers))
    assert all(r.accepted for r in opened), opened
    bank.accounts = [row["accountId"] for row in platform.accounts(tenant_id)["accounts"]]
    return bank
