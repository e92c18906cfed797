"""sim/target.py: the embedded target and the paged read helpers the twin relies on."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from platform_builders import Commands

from models.products import EVERYDAY, skeleton_products
from sim.contract import CommandIds
from sim.target import EmbeddedTarget, all_accounts, all_customers, read_model_balances
from turingcore.contract import (
    Constraints,
    CreateTenant,
    Envelope,
    Interest,
    UpsertProduct,
)
from turingcore.eventlog import EventLogReader
from turingcore.events import SealedEvent

STAMP = "2025-07-01T09:00:00+10:00"
OVERDRAFT = "OVERDRAFT_PLUS"


def overdraft_product() -> UpsertProduct:
    """A transaction account allowed $500.00 of overdraft."""
    return UpsertProduct(
        product_code=OVERDRAFT,
        name="Everyday with overdraft",
        product_type="DEPOSIT",
        interest=Interest(rate=Decimal("0.00")),
        constraints=Constraints(min_balance=0, allow_overdraft=True, overdraft_limit=50_000),
    )


class Bank:
    """One tenant on an embedded target, with helpers to add members and payments.

    Envelopes come from the platform tests' builders (`platform_builders.Commands`).
    """

    def __init__(self, target: EmbeddedTarget, tenant: str, code: str) -> None:
        self.target, self.tenant = target, tenant
        self.cmd = Commands(tenant, STAMP)
        products = [*skeleton_products(), overdraft_product()]
        setup = [
            self.cmd.create_tenant(code),
            *(self.cmd.envelope("UpsertProduct", product) for product in products),
        ]
        assert all(r.accepted for r in target.submit(tenant, setup))
        self.people = 0

    def member(self, product: str = EVERYDAY, deposit: int = 10_000) -> tuple[str, str]:
        """A new customer with one account: (customerId, accountId)."""
        self.people += 1
        created = self.target.submit(self.tenant, [self.cmd.customer(self.people)])[0]
        assert created.accepted, created
        customer = self.target.customers(self.tenant, limit=1000)["customers"][-1]["customerId"]
        opened = self.target.submit(
            self.tenant, [self.cmd.open_account(customer, product, deposit)]
        )[0]
        assert opened.accepted, opened
        account = self.target.accounts(self.tenant, customer_id=customer)["accounts"][0]
        return customer, account["accountId"]

    def card(self, account: str, cents: int) -> Envelope:
        """A card purchase of `cents` from `account`, with an idempotency key."""
        legs = [(account, "CREDIT", cents), ("GL_CARD_CLEARING", "DEBIT", cents)]
        key = f"{self.tenant}-card-{self.cmd.count + 1}"
        return self.cmd.post(legs, narrative="Card purchase", key=key)


@pytest.fixture
def target():  # noqa: ANN201 - an EmbeddedTarget, closed after the test
    """An embedded target without an event log."""
    embedded = EmbeddedTarget()
    yield embedded
    embedded.close()


def test_embedded_target_is_named_and_publishes_in_chain_order(target) -> None:
    """Listeners get each tenant's events once, in seq order; head is the last event's hash."""
    batches: list[tuple[str, list[SealedEvent]]] = []
    target.subscribe(lambda tenant, events: batches.append((tenant, list(events))))
    assert target.name == "embedded"
    bank = Bank(target, "cu-a", "CU_A")
    bank.member()
    seqs = [e.event.seq for tenant, events in batches for e in events if tenant == "cu-a"]
    assert seqs == list(range(1, len(seqs) + 1))
    seq, head = target.head("cu-a")
    assert seq == seqs[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", head)
    assert head == batches[-1][1][-1].hash


def test_paged_helpers_return_every_row_exactly_once(target) -> None:
    """all_accounts/all_customers walk every page (page size 2 over 5 members)."""
    bank = Bank(target, "cu-a", "CU_A")
    made = [bank.member(deposit=1_000 * (i + 1)) for i in range(5)]
    customers = [row["customerId"] for row in all_customers(target, "cu-a", page=2)]
    accounts = [row["accountId"] for row in all_accounts(target, "cu-a", page=2)]
    assert customers == [customer for customer, _ in made]
    assert accounts == [account for _, account in made]
    assert target.accounts("cu-a", limit=2, offset=4)["total"] == 5
    with pytest.raises(ValueError, match="limit"):
        target.accounts("cu-a", limit=0)


def test_read_model_balances_are_exact_cents_with_sign(target) -> None:
    """Balances come back as integer cents: positive, and negative within an overdraft."""
    bank = Bank(target, "cu-a", "CU_A")
    _, saver = bank.member(deposit=12_345)
    _, overdrawn = bank.member(product=OVERDRAFT, deposit=1_000)
    results = target.submit("cu-a", [bank.card(overdrawn, 3_599)])
    assert results[0].accepted, results[0]
    balances = read_model_balances(target, "cu-a")
    assert balances == {saver: 12_345, overdrawn: -2_599}
    assert all(type(cents) is int for cents in balances.values())


def test_refusal_and_idempotent_replay(target) -> None:
    """An overdrawing payment is refused (OVERDRAFT_LIMIT); a re-sent command writes nothing."""
    bank = Bank(target, "cu-a", "CU_A")
    _, account = bank.member(deposit=5_000)
    too_much = bank.card(account, 5_001)
    fine = bank.card(account, 4_000)
    first = target.submit("cu-a", [too_much, fine])
    assert [r.status for r in first] == ["REJECTED", "ACCEPTED"]
    assert first[0].rule == "OVERDRAFT_LIMIT"
    head = target.head("cu-a")
    again = target.submit("cu-a", [too_much, fine])
    assert again == first
    assert target.head("cu-a") == head
    assert read_model_balances(target, "cu-a") == {account: 1_000}


def test_tenants_are_isolated(target) -> None:
    """One tenant's customers and accounts never appear in another's answers."""
    alpha = Bank(target, "cu-a", "CU_A")
    bravo = Bank(target, "cu-b", "CU_B")
    a_customer, a_account = alpha.member()
    bravo.member()
    assert a_customer not in {row["customerId"] for row in all_customers(target, "cu-b")}
    assert a_account not in read_model_balances(target, "cu-b")
    assert target.accounts("cu-b", customer_id=a_customer)["total"] == 0
    foreign = bravo.card(a_account, 100)
    result = target.submit("cu-b", [foreign])[0]
    assert result.status == "REJECTED"
    assert read_model_balances(target, "cu-a")[a_account] == 10_000


def test_a_command_naming_another_tenant_is_refused(target) -> None:
    """The tenant comes from the caller, not the body: a cu-b envelope sent as cu-a is refused."""
    Bank(target, "cu-a", "CU_A")
    head = target.head("cu-a")
    stray = CommandIds(1, "cu-b").envelope(
        "CreateTenant", STAMP, CreateTenant("CU_B", "B", "AU", "AUD", "Australia/Sydney")
    )
    result = target.submit("cu-a", [stray])[0]
    assert (result.status, result.rule) == ("REJECTED", "TENANT_MISMATCH")
    assert target.head("cu-a") == head


def test_event_log_holds_what_was_published(tmp_path: Path) -> None:
    """With an event log, close() leaves every published (hash, bytes) pair in events.sqlite."""
    path = tmp_path / "events.sqlite"
    target = EmbeddedTarget(path)
    published: list[tuple[str, bytes]] = []
    target.subscribe(lambda tenant, events: published.extend((e.hash, e.canonical) for e in events))
    bank = Bank(target, "cu-a", "CU_A")
    _, account = bank.member()
    target.submit("cu-a", [bank.card(account, 999_999)])
    target.close()
    with EventLogReader(path) as reader:
        assert reader.tenants() == ["cu-a"]
        assert [(e.hash, e.canonical) for e in reader.events("cu-a")] == published
        assert [row[5] for row in reader.rejections("cu-a")] == ["OVERDRAFT_LIMIT"]
