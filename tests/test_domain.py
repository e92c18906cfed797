"""The functional core: every rule in RULES refused and its valid neighbour accepted.

Commands go through the embedded shell (`EmbeddedPlatform.submit`), as a
client's would; each refusal must name its rule and write nothing (head,
read model and published events unchanged). The three "not active" rules
cannot be reached through the contract (nothing deactivates a customer,
product or account yet), so they are checked on the pure `decide` with a
copy of the live state.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from platform_builders import TIMESTAMP, Bank, Commands, Recorder, new_bank, stamp

from turingcore.contract import Constraints, Interest
from turingcore.domain import (
    GL_ACCOUNTS,
    RULES,
    Pending,
    PlatformState,
    Rejected,
    TenantState,
    _any_entry,
    _two_leg_entry,
    decide,
    evolve,
)
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import Event, canonical_from_json
from turingcore.money import format_cents

# --------------------------------------------------------------------------- helpers


def empty_tenant(tenant_id: str = "cu-x", platform: EmbeddedPlatform | None = None) -> Bank:
    """A Bank handle for a tenant that has not been created (yet)."""
    platform = platform if platform is not None else EmbeddedPlatform()
    recorder = Recorder()
    platform.subscribe(recorder)
    return Bank(platform, recorder, tenant_id, "CU_X", Commands(tenant_id))


def types_of(events: list[Any]) -> list[str]:
    return [sealed.event.event_type for sealed in events]


def payloads(events: list[Any], event_type: str) -> list[dict[str, Any]]:
    """Payloads of the given type as the JSON a consumer sees."""
    return [
        sealed.to_builtins()["payload"]
        for sealed in events
        if sealed.event.event_type == event_type
    ]


def decide_on_copy(bank: Bank, envelope: Any, change: Callable[[TenantState], None]) -> Any:
    """decide() on a changed deep copy of the live state; checks decide mutated nothing."""
    live = bank.platform.tenant(bank.tenant_id)
    assert live is not None
    state = copy.deepcopy(live)
    change(state)
    before = copy.deepcopy(state)
    decision = decide(PlatformState(), state, envelope)
    assert state == before, "decide must be pure"
    return decision


# --------------------------------------------------------------------------- tenants


@pytest.mark.parametrize("kind", ["UpsertProduct", "CreateCustomer", "OpenAccount", "PostEntry"])
def test_commands_need_an_existing_tenant(kind: str) -> None:
    """TENANT_NOT_FOUND for any command but CreateTenant before the tenant exists."""
    bank = empty_tenant()
    cmd = bank.cmd
    make = {
        "UpsertProduct": lambda: cmd.product("SAVER"),
        "CreateCustomer": lambda: cmd.customer(1),
        "OpenAccount": lambda: cmd.open_account("nobody", "SAVER"),
        "PostEntry": lambda: cmd.post(
            [("GL_SALARY_CLEARING", "DEBIT", 5), ("GL_CARD_CLEARING", "CREDIT", 5)]
        ),
    }[kind]
    bank.refuse(make(), "TENANT_NOT_FOUND")
    assert bank.platform.tenant(bank.tenant_id) is None
    bank.accept(cmd.create_tenant("CU_X"))
    if kind in ("UpsertProduct", "CreateCustomer", "PostEntry"):
        bank.accept(make())


def test_create_tenant_provisions_the_gl_accounts() -> None:
    """TenantCreated carries the GL accounts, which exist at zero in the tenant's currency."""
    bank = empty_tenant()
    events = bank.accept(
        bank.cmd.create_tenant("CU_X", currency="NZD", time_zone="Pacific/Auckland")
    )
    assert types_of(events) == ["TenantCreated"]
    assert events[0].event.seq == 1
    payload = payloads(events, "TenantCreated")[0]
    assert payload["tenantCode"] == "CU_X"
    assert payload["glAccounts"] == list(GL_ACCOUNTS)
    state = bank.platform.tenant(bank.tenant_id)
    assert state is not None
    assert state.currency == "NZD"
    assert bank.balances() == dict.fromkeys(GL_ACCOUNTS, 0)
    assert bank.platform.accounts(bank.tenant_id)["total"] == 0  # GLs are not member accounts


def test_a_tenant_is_created_once() -> None:
    """TENANT_EXISTS for a second CreateTenant of the same tenant, even with a new code."""
    bank = empty_tenant()
    bank.accept(bank.cmd.create_tenant("CU_X"))
    bank.refuse(bank.cmd.create_tenant("CU_X_AGAIN"), "TENANT_EXISTS")


def test_tenant_code_is_unique_across_the_platform() -> None:
    """TENANT_CODE_TAKEN when tenant B asks for A's code; B with its own code is fine."""
    a = empty_tenant("cu-a")
    b = empty_tenant("cu-b", a.platform)
    a.accept(a.cmd.create_tenant("SHARED_CODE"))
    b.refuse(b.cmd.create_tenant("SHARED_CODE"), "TENANT_CODE_TAKEN")
    assert b.platform.tenant("cu-b") is None
    b.accept(b.cmd.create_tenant("OWN_CODE"))
    c = empty_tenant("cu-c", a.platform)
    c.refuse(c.cmd.create_tenant("OWN_CODE"), "TENANT_CODE_TAKEN")


@pytest.mark.parametrize("currency", ["USD", "EUR", "XXX"])
def test_base_currency_must_be_supported(currency: str) -> None:
    """UNSUPPORTED_CURRENCY for currencies outside AUD/NZD; NZD itself is accepted."""
    bank = empty_tenant()
    bank.refuse(bank.cmd.create_tenant("CU_X", currency=currency), "UNSUPPORTED_CURRENCY")
    bank.accept(bank.cmd.create_tenant("CU_X", currency="NZD"))


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Australia/Sydneyy", "../etc/passwd"])
def test_time_zone_must_be_an_iana_zone(zone: str) -> None:
    """INVALID_TIME_ZONE for names that are not IANA zones; Australia/Perth is accepted."""
    bank = empty_tenant()
    bank.refuse(bank.cmd.create_tenant("CU_X", time_zone=zone), "INVALID_TIME_ZONE")
    bank.accept(bank.cmd.create_tenant("CU_X", time_zone="Australia/Perth"))


@pytest.mark.parametrize("region", ["au", "A1", "AUS", "Á"])
def test_region_must_be_alpha_2(region: str) -> None:
    """INVALID_REGION for anything but two upper-case letters (built in Python, unvalidated)."""
    bank = empty_tenant()
    bank.refuse(bank.cmd.create_tenant("CU_X", region=region), "INVALID_REGION")
    bank.accept(bank.cmd.create_tenant("CU_X", region="NZ"))


def test_unknown_command_type_is_refused() -> None:
    """UNKNOWN_COMMAND for a command type outside the contract's five (no wire validation)."""
    bank = new_bank(customers=0)
    bank.refuse(bank.cmd.envelope("CloseAccount", {"accountId": "x"}), "UNKNOWN_COMMAND")


# --------------------------------------------------------------------------- products


def test_product_is_created_then_updated_by_code() -> None:
    """A new code → ProductCreated; the same code and type again → ProductUpdated."""
    bank = new_bank(customers=0)
    created = bank.accept(bank.cmd.product("BONUS_SAVER", interest=Interest(rate=Decimal("0"))))
    assert types_of(created) == ["ProductCreated"]
    assert created[0].event.entity_id == "BONUS_SAVER"
    updated = bank.accept(
        bank.cmd.product("BONUS_SAVER", constraints=Constraints(min_balance=2_000), name="New")
    )
    assert types_of(updated) == ["ProductUpdated"]
    body = payloads(updated, "ProductUpdated")[0]
    assert body["name"] == "New"
    assert body["constraints"]["minBalanceCents"] == 2_000
    bank.accept(bank.cmd.customer(9))  # the updated minimum applies to the next opening
    (cid,) = [row["customerId"] for row in bank.platform.customers(bank.tenant_id)["customers"]]
    bank.refuse(bank.cmd.open_account(cid, "BONUS_SAVER", 1_999), "BELOW_MINIMUM_DEPOSIT")
    bank.accept(bank.cmd.open_account(cid, "BONUS_SAVER", 2_000))


def test_product_type_is_immutable() -> None:
    """PRODUCT_TYPE_CHANGED when an upsert gives an existing code another type."""
    bank = new_bank(customers=0)
    bank.refuse(bank.cmd.product("SAVER", "LOAN"), "PRODUCT_TYPE_CHANGED")
    bank.accept(bank.cmd.product("SAVER", "DEPOSIT"))
    bank.accept(bank.cmd.product("SAVER_LOAN", "LOAN"))


@pytest.mark.parametrize("name", ["rate", "base_rate", "bonus_rate"])
@pytest.mark.parametrize("value", [Decimal("-0.0001"), Decimal("-5"), Decimal("NaN")])
def test_rates_must_not_be_negative(name: str, value: Decimal) -> None:
    """NEGATIVE_RATE for any rate below zero (or not a number); 0 is the accepted boundary."""
    bank = new_bank(customers=0)
    bank.refuse(bank.cmd.product("P", interest=Interest(**{name: value})), "NEGATIVE_RATE")
    bank.accept(bank.cmd.product("P", interest=Interest(**{name: Decimal("0")})))


@pytest.mark.parametrize(
    ("low", "high"),
    [("min_balance", "max_balance"), ("min_amount", "max_amount")],
)
def test_minimum_must_be_below_maximum(low: str, high: str) -> None:
    """MIN_NOT_BELOW_MAX for min == max and min > max; min one cent below max is accepted."""
    bank = new_bank(customers=0)
    for lo, hi in ((5_000, 5_000), (5_001, 5_000)):
        limits = Constraints(**{low: lo, high: hi})
        bank.refuse(bank.cmd.product("P", constraints=limits), "MIN_NOT_BELOW_MAX")
    bank.accept(bank.cmd.product("P", constraints=Constraints(**{low: 4_999, high: 5_000})))


def test_product_event_names_money_fields_in_cents() -> None:
    """ProductCreated renames money fields to ...Cents (fees included) and keeps the rest."""
    bank = new_bank(customers=0)
    envelope = bank.cmd.product(
        "FEE_SAVER",
        constraints=Constraints(min_balance=100, allow_overdraft=True, overdraft_limit=5_000),
    )
    envelope.payload.fees = {"monthlyFee": 500}
    (body,) = payloads(bank.accept(envelope), "ProductCreated")
    assert body["fees"] == {"monthlyFeeCents": 500}
    assert body["constraints"] == {
        "minBalanceCents": 100,
        "allowOverdraft": True,
        "overdraftLimitCents": 5_000,
    }
    assert body["interest"] == {"rate": "0.015"}


# --------------------------------------------------------------------------- customers


def test_customer_is_created_with_an_id_and_listed() -> None:
    """CustomerCreated carries the new customerId, and the tenant's listing shows the customer."""
    bank = new_bank(customers=0)
    events = bank.accept(bank.cmd.customer(1, external_ref="EXT-1"))
    assert types_of(events) == ["CustomerCreated"]
    (body,) = payloads(events, "CustomerCreated")
    listing = bank.platform.customers(bank.tenant_id)
    assert listing["total"] == 1
    row = listing["customers"][0]
    assert row["customerId"] == body["customerId"] == events[0].event.entity_id
    assert (row["externalRef"], row["fullName"]) == ("EXT-1", "Ada Member1")
    assert row["createdAt"] == TIMESTAMP


@pytest.mark.parametrize(
    ("field", "rule"),
    [("email", "EMAIL_TAKEN"), ("mobile", "MOBILE_TAKEN"), ("external_ref", "EXTERNAL_REF_TAKEN")],
)
def test_contact_details_are_unique_in_the_tenant(field: str, rule: str) -> None:
    """A second customer with the same email/mobile/externalRef is refused by its rule."""
    bank = new_bank(customers=0)
    taken = {"email": "ada@example.com", "mobile": "+61400000001", "external_ref": "EXT-1"}
    bank.accept(bank.cmd.customer(1, **taken))
    fresh = {"email": "bob@example.com", "mobile": "+61400000002", "external_ref": "EXT-2"}
    clash = {**fresh, field: taken[field]}
    bank.refuse(bank.cmd.customer(2, **clash), rule)
    bank.accept(bank.cmd.customer(2, **fresh))


def test_email_uniqueness_ignores_case() -> None:
    """EMAIL_TAKEN also for the same address in another letter case."""
    bank = new_bank(customers=0)
    bank.accept(bank.cmd.customer(1, email="Ada@Example.com"))
    bank.refuse(bank.cmd.customer(2, email="ada@EXAMPLE.COM"), "EMAIL_TAKEN")


def test_the_same_contact_details_in_another_tenant_are_fine() -> None:
    """Uniqueness is per tenant: B may have a customer with A's email, mobile and externalRef."""
    a = new_bank(customers=0)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=0, recorder=a.recorder)
    details = {"email": "ada@example.com", "mobile": "+61400000001", "external_ref": "EXT-1"}
    a.accept(a.cmd.customer(1, **details))
    b.accept(b.cmd.customer(1, **details))
    a.refuse(a.cmd.customer(2, **details), "EMAIL_TAKEN")


@pytest.mark.parametrize(
    ("born", "when", "accepted"),
    [
        (date(2007, 7, 1), stamp(date(2025, 7, 1), "00:00:00"), True),  # the 18th birthday
        (date(2007, 7, 2), stamp(date(2025, 7, 1), "23:59:59"), False),  # the day before it
        (date(2007, 7, 2), stamp(date(2025, 7, 2), "00:00:00"), True),
        (date(1925, 1, 1), stamp(date(2025, 7, 1)), True),
        (date(2015, 1, 1), stamp(date(2033, 1, 1)), True),  # command time, not the wall clock
        (date(2015, 1, 1), stamp(date(2032, 12, 31)), False),
        (date(2008, 2, 29), stamp(date(2026, 2, 28)), False),
        (date(2008, 2, 29), stamp(date(2026, 3, 1)), True),
    ],
)
def test_customers_are_adults_on_the_command_date(born: date, when: str, accepted: bool) -> None:
    """UNDERAGE below 18 on the command's own date; the 18th birthday itself is accepted."""
    bank = new_bank(customers=0)
    envelope = bank.cmd.customer(1, born=born, timestamp=when)
    if accepted:
        bank.accept(envelope)
    else:
        bank.refuse(envelope, "UNDERAGE")


# --------------------------------------------------------------------------- accounts


def test_open_account_with_deposit_posts_funds_and_two_balance_updates() -> None:
    """A deposit opens with AccountOpened, FundsPosted and both accounts' new balances."""
    bank = new_bank(customers=1, deposit=0)
    (customer,) = bank.customers
    events = bank.accept(bank.cmd.open_account(customer, "SAVER", 12_345, alias="Bills"))
    assert types_of(events) == [
        "AccountOpened",
        "FundsPosted",
        "AccountBalanceUpdated",
        "AccountBalanceUpdated",
    ]
    opened = payloads(events, "AccountOpened")[0]
    account = opened["accountId"]
    assert (opened["customerId"], opened["productType"], opened["accountAlias"]) == (
        customer,
        "DEPOSIT",
        "Bills",
    )
    funds = payloads(events, "FundsPosted")[0]
    assert funds["amountCents"] == 12_345
    assert sorted((leg["accountId"], leg["direction"]) for leg in funds["legs"]) == sorted(
        [(account, "DEBIT"), ("GL_DEPOSIT_FUNDING", "CREDIT")]
    )
    updates = {p["accountId"]: p for p in payloads(events, "AccountBalanceUpdated")}
    assert updates[account]["balanceCents"] == updates[account]["deltaCents"] == 12_345
    assert updates["GL_DEPOSIT_FUNDING"]["deltaCents"] == -12_345
    assert bank.balances()["GL_DEPOSIT_FUNDING"] == updates["GL_DEPOSIT_FUNDING"]["balanceCents"]
    row = next(
        r for r in bank.platform.accounts(bank.tenant_id)["accounts"] if r["accountId"] == account
    )
    assert row["balance"] == Decimal("123.45")
    assert row["openedAt"] == TIMESTAMP


@pytest.mark.parametrize("deposit", [None, 0])
def test_open_account_without_deposit_posts_nothing(deposit: int | None) -> None:
    """No deposit (or 0) opens the account at zero with AccountOpened alone."""
    bank = new_bank(customers=1, deposit=0)
    events = bank.accept(bank.cmd.open_account(bank.customers[0], "SAVER", deposit))
    assert types_of(events) == ["AccountOpened"]


def test_loan_product_opens_a_facility() -> None:
    """A LOAN product opens with AccountOpened and LoanFacilityCreated; a deposit is refused."""
    bank = new_bank(customers=1, deposit=0)
    bank.accept(bank.cmd.product("HOME_LOAN", "LOAN"))
    customer = bank.customers[0]
    bank.refuse(bank.cmd.open_account(customer, "HOME_LOAN", 1), "DEPOSIT_NOT_ALLOWED")
    events = bank.accept(bank.cmd.open_account(customer, "HOME_LOAN"))
    assert types_of(events) == ["AccountOpened", "LoanFacilityCreated"]
    assert payloads(events, "LoanFacilityCreated")[0]["accountId"] == events[0].event.entity_id


def test_open_account_needs_an_existing_customer() -> None:
    """CUSTOMER_NOT_FOUND for an unknown id and for another tenant's customer."""
    a = new_bank(customers=1)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=1, recorder=a.recorder)
    a.refuse(a.cmd.open_account("no-such-customer", "SAVER"), "CUSTOMER_NOT_FOUND")
    a.refuse(a.cmd.open_account(b.customers[0], "SAVER"), "CUSTOMER_NOT_FOUND")
    a.accept(a.cmd.open_account(a.customers[0], "SAVER"))


def test_open_account_needs_an_existing_product() -> None:
    """PRODUCT_NOT_FOUND for a code never upserted in this tenant."""
    a = new_bank(customers=1)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=0, recorder=a.recorder)
    b.accept(b.cmd.product("B_ONLY"))
    a.refuse(a.cmd.open_account(a.customers[0], "B_ONLY"), "PRODUCT_NOT_FOUND")
    a.refuse(a.cmd.open_account(a.customers[0], "NO_SUCH"), "PRODUCT_NOT_FOUND")
    a.accept(a.cmd.open_account(a.customers[0], "SAVER"))


def test_open_account_currency_must_be_the_tenants() -> None:
    """CURRENCY_MISMATCH for an NZD account in an AUD tenant."""
    bank = new_bank(customers=1)
    bank.refuse(bank.cmd.open_account(bank.customers[0], currency="NZD"), "CURRENCY_MISMATCH")
    bank.accept(bank.cmd.open_account(bank.customers[0], currency="AUD"))


def test_initial_deposit_must_reach_the_product_minimum() -> None:
    """BELOW_MINIMUM_DEPOSIT one cent under minBalance (and with no deposit); exactly it is fine."""
    bank = new_bank(customers=1)
    bank.accept(bank.cmd.product("MIN_SAVER", constraints=Constraints(min_balance=1_000)))
    customer = bank.customers[0]
    bank.refuse(bank.cmd.open_account(customer, "MIN_SAVER", 999), "BELOW_MINIMUM_DEPOSIT")
    bank.refuse(bank.cmd.open_account(customer, "MIN_SAVER"), "BELOW_MINIMUM_DEPOSIT")
    bank.accept(bank.cmd.open_account(customer, "MIN_SAVER", 1_000))


def test_initial_deposit_must_not_exceed_the_product_maximum() -> None:
    """ABOVE_MAXIMUM_BALANCE one cent over maxBalance at opening; exactly it is fine."""
    bank = new_bank(customers=1)
    bank.accept(bank.cmd.product("CAPPED", constraints=Constraints(max_balance=10_000)))
    customer = bank.customers[0]
    bank.refuse(bank.cmd.open_account(customer, "CAPPED", 10_001), "ABOVE_MAXIMUM_BALANCE")
    bank.accept(bank.cmd.open_account(customer, "CAPPED", 10_000))


def test_negative_initial_deposit_is_refused() -> None:
    """NON_POSITIVE_AMOUNT for a negative deposit built in Python (the wire refuses it too)."""
    bank = new_bank(customers=1)
    bank.refuse(bank.cmd.open_account(bank.customers[0], "SAVER", -1), "NON_POSITIVE_AMOUNT")


def test_inactive_customer_or_product_is_refused_by_decide() -> None:
    """CUSTOMER_NOT_ACTIVE / PRODUCT_NOT_ACTIVE when the state says so; active → events."""
    bank = new_bank(customers=1)
    envelope = bank.cmd.open_account(bank.customers[0], "SAVER", 100)
    customer = bank.customers[0]

    def close_customer(state: TenantState) -> None:
        state.customers[customer].status = "CLOSED"

    def retire_product(state: TenantState) -> None:
        state.products["SAVER"].active = False

    assert decide_on_copy(bank, envelope, close_customer).rule == "CUSTOMER_NOT_ACTIVE"
    assert decide_on_copy(bank, envelope, retire_product).rule == "PRODUCT_NOT_ACTIVE"
    fine = decide_on_copy(bank, envelope, lambda state: None)
    assert [p.event_type for p in fine][:2] == ["AccountOpened", "FundsPosted"]


# --------------------------------------------------------------------------- entries


def test_entry_posts_entry_and_one_balance_update_per_account() -> None:
    """An accepted entry is EntryPosted plus one AccountBalanceUpdated per account touched."""
    bank = new_bank(customers=2, deposit=10_000)
    a, b = bank.accounts
    events = bank.accept(
        bank.cmd.post(
            [(a, "CREDIT", 300), (b, "DEBIT", 200), ("GL_FEE_INCOME", "DEBIT", 100)],
            narrative="split",
        )
    )
    assert types_of(events) == ["EntryPosted"] + ["AccountBalanceUpdated"] * 3
    (entry,) = payloads(events, "EntryPosted")
    assert entry["narrative"] == "split"
    assert [(leg["accountId"], leg["direction"], leg["amountCents"]) for leg in entry["legs"]] == [
        (a, "CREDIT", 300),
        (b, "DEBIT", 200),
        ("GL_FEE_INCOME", "DEBIT", 100),
    ]
    updates = {p["accountId"]: p for p in payloads(events, "AccountBalanceUpdated")}
    assert {k: (v["deltaCents"], v["balanceCents"]) for k, v in updates.items()} == {
        a: (-300, 9_700),
        b: (200, 10_200),
        "GL_FEE_INCOME": (100, 100),
    }
    assert all(u["entryId"] == entry["entryId"] for u in updates.values())


@pytest.mark.parametrize("legs", [0, 1])
def test_entry_needs_two_legs(legs: int) -> None:
    """TOO_FEW_LEGS for 0 or 1 leg (built in Python, so the wire check is bypassed)."""
    bank = new_bank(customers=1)
    all_legs = [(bank.accounts[0], "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]
    bank.refuse(bank.cmd.post(all_legs[:legs]), "TOO_FEW_LEGS")
    bank.accept(bank.cmd.post(all_legs))


@pytest.mark.parametrize("amount", [0, -5, 1.5, True, Decimal("5")])
def test_leg_amounts_must_be_positive_integer_cents(amount: Any) -> None:
    """NON_POSITIVE_AMOUNT for zero, negative, float, bool or Decimal leg amounts."""
    bank = new_bank(customers=1)
    account = bank.accounts[0]
    legs = [(account, "DEBIT", amount), ("GL_SALARY_CLEARING", "CREDIT", amount)]
    bank.refuse(bank.cmd.post(legs), "NON_POSITIVE_AMOUNT")
    bank.accept(bank.cmd.post([(account, "DEBIT", 1), ("GL_SALARY_CLEARING", "CREDIT", 1)]))


def test_leg_direction_must_be_debit_or_credit() -> None:
    """INVALID_DIRECTION for a direction that is neither DEBIT nor CREDIT."""
    bank = new_bank(customers=1)
    legs = [(bank.accounts[0], "SIDEWAYS", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]
    bank.refuse(bank.cmd.post(legs), "INVALID_DIRECTION")


def test_entry_currency_must_be_the_tenants() -> None:
    """CURRENCY_MISMATCH for an NZD entry in an AUD tenant; AUD is accepted."""
    bank = new_bank(customers=1)
    legs = [(bank.accounts[0], "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]
    bank.refuse(bank.cmd.post(legs, currency="NZD"), "CURRENCY_MISMATCH")
    bank.accept(bank.cmd.post(legs, currency="AUD"))


def test_value_date_may_not_precede_booking_date() -> None:
    """VALUE_DATE_BEFORE_BOOKING a day early; the same day and later are accepted."""
    bank = new_bank(customers=1)
    legs = [(bank.accounts[0], "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]
    booking = date(2025, 7, 10)
    early = booking - timedelta(days=1)
    bank.refuse(bank.cmd.post(legs, booking=booking, value=early), "VALUE_DATE_BEFORE_BOOKING")
    bank.accept(bank.cmd.post(legs, booking=booking, value=booking))
    bank.accept(bank.cmd.post(legs, booking=booking, value=booking + timedelta(days=3)))


def test_every_leg_account_must_exist_in_the_tenant() -> None:
    """ACCOUNT_NOT_FOUND for an unknown account and for another tenant's member account."""
    a = new_bank(customers=1)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=1, recorder=a.recorder)
    for foreign in ("no-such-account", b.accounts[0]):
        legs = [(foreign, "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]
        a.refuse(a.cmd.post(legs), "ACCOUNT_NOT_FOUND")
    a.accept(a.cmd.post([(a.accounts[0], "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]))


def test_inactive_account_is_refused_by_decide() -> None:
    """ACCOUNT_NOT_ACTIVE when a leg's account is not active; active → an entry."""
    bank = new_bank(customers=1)
    account = bank.accounts[0]
    envelope = bank.cmd.post([(account, "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)])

    def freeze(state: TenantState) -> None:
        state.accounts[account].status = "FROZEN"

    decision = decide_on_copy(bank, envelope, freeze)
    assert isinstance(decision, Rejected)
    assert decision.rule == "ACCOUNT_NOT_ACTIVE"
    fine = decide_on_copy(bank, envelope, lambda state: None)
    assert isinstance(fine, list)
    assert all(isinstance(p, Pending) for p in fine)


@pytest.mark.parametrize(("debit", "credit"), [(100, 99), (99, 100)])
def test_debits_must_equal_credits(debit: int, credit: int) -> None:
    """UNBALANCED_ENTRY when debits and credits differ by a cent either way."""
    bank = new_bank(customers=1)
    account = bank.accounts[0]
    legs = [(account, "DEBIT", debit), ("GL_SALARY_CLEARING", "CREDIT", credit)]
    bank.refuse(bank.cmd.post(legs), "UNBALANCED_ENTRY")
    bank.accept(bank.cmd.post([(account, "DEBIT", 100), ("GL_SALARY_CLEARING", "CREDIT", 100)]))


def test_deposit_account_may_reach_zero_but_not_below() -> None:
    """OVERDRAFT_LIMIT one cent below a zero floor; spending the balance exactly is fine."""
    bank = new_bank(customers=1, deposit=5_000)
    account = bank.accounts[0]

    def spend(cents: int) -> Any:
        return bank.cmd.post([(account, "CREDIT", cents), ("GL_CARD_CLEARING", "DEBIT", cents)])

    bank.refuse(spend(5_001), "OVERDRAFT_LIMIT")
    bank.accept(spend(5_000))
    assert bank.balances()[account] == 0
    bank.refuse(spend(1), "OVERDRAFT_LIMIT")


def test_overdraft_product_may_reach_its_limit_but_not_beyond() -> None:
    """With allowOverdraft and a 1,000-cent limit, -1,000 is accepted and -1,001 refused."""
    bank = new_bank(customers=1, deposit=0)
    limits = Constraints(allow_overdraft=True, overdraft_limit=1_000)
    bank.accept(bank.cmd.product("EVERYDAY", constraints=limits))
    opened = bank.accept(bank.cmd.open_account(bank.customers[0], "EVERYDAY", 500))
    account = opened[0].event.entity_id

    def spend(cents: int) -> Any:
        return bank.cmd.post([(account, "CREDIT", cents), ("GL_CARD_CLEARING", "DEBIT", cents)])

    bank.refuse(spend(1_501), "OVERDRAFT_LIMIT")
    bank.accept(spend(1_500))
    assert bank.balances()[account] == -1_000
    bank.refuse(spend(1), "OVERDRAFT_LIMIT")
    bank.accept(bank.cmd.post([(account, "DEBIT", 1), ("GL_SALARY_CLEARING", "CREDIT", 1)]))


def test_balance_may_reach_the_product_maximum_but_not_exceed_it() -> None:
    """ABOVE_MAXIMUM_BALANCE a cent over maxBalance through an entry; exactly it is fine."""
    bank = new_bank(customers=1, deposit=0)
    bank.accept(bank.cmd.product("CAPPED", constraints=Constraints(max_balance=10_000)))
    account = bank.accept(bank.cmd.open_account(bank.customers[0], "CAPPED", 4_000))[
        0
    ].event.entity_id

    def salary(cents: int) -> Any:
        return bank.cmd.post([(account, "DEBIT", cents), ("GL_SALARY_CLEARING", "CREDIT", cents)])

    bank.refuse(salary(6_001), "ABOVE_MAXIMUM_BALANCE")
    bank.accept(salary(6_000))
    assert bank.balances()[account] == 10_000


def test_loan_balance_cannot_be_overpaid() -> None:
    """A loan drawn to -100,000 may be repaid to 0 but not above (ABOVE_MAXIMUM_BALANCE)."""
    bank = new_bank(customers=1, deposit=200_000)
    bank.accept(bank.cmd.product("HOME_LOAN", "LOAN"))
    loan = bank.accept(bank.cmd.open_account(bank.customers[0], "HOME_LOAN"))[0].event.entity_id
    saver = bank.accounts[0]
    bank.accept(bank.cmd.post([(loan, "CREDIT", 100_000), (saver, "DEBIT", 100_000)]))
    assert bank.balances()[loan] == -100_000
    bank.refuse(
        bank.cmd.post([(loan, "DEBIT", 100_001), (saver, "CREDIT", 100_001)]),
        "ABOVE_MAXIMUM_BALANCE",
    )
    bank.accept(bank.cmd.post([(loan, "DEBIT", 100_000), (saver, "CREDIT", 100_000)]))
    assert bank.balances()[loan] == 0


def test_an_account_twice_in_one_entry_is_judged_on_its_net_change() -> None:
    """Legs on the same account net out: one balance update, the floor checked on the sum."""
    bank = new_bank(customers=1, deposit=200)
    account = bank.accounts[0]
    legs = [(account, "DEBIT", 300), (account, "CREDIT", 500), ("GL_FEE_INCOME", "DEBIT", 200)]
    events = bank.accept(bank.cmd.post(legs))
    updates = payloads(events, "AccountBalanceUpdated")
    assert [u["accountId"] for u in updates] == [account, "GL_FEE_INCOME"]
    assert (updates[0]["deltaCents"], updates[0]["balanceCents"]) == (-200, 0)
    assert len(payloads(events, "EntryPosted")[0]["legs"]) == 3
    legs = [(account, "DEBIT", 300), (account, "CREDIT", 301), ("GL_FEE_INCOME", "DEBIT", 1)]
    bank.refuse(bank.cmd.post(legs), "OVERDRAFT_LIMIT")
    wash = bank.accept(bank.cmd.post([(account, "CREDIT", 700), (account, "DEBIT", 700)]))
    assert [
        (u["deltaCents"], u["balanceCents"]) for u in payloads(wash, "AccountBalanceUpdated")
    ] == [(0, 0)]


def test_refused_entry_in_a_batch_leaves_its_neighbours_alone() -> None:
    """In one batch, accepted entries around a refused one all land; the refused writes nothing."""
    bank = new_bank(customers=1, deposit=1_000)
    account = bank.accounts[0]
    seq_before, _ = bank.platform.head(bank.tenant_id)
    results = bank.submit(
        bank.cmd.post([(account, "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]),
        bank.cmd.post([(account, "CREDIT", 10**6), ("GL_CARD_CLEARING", "DEBIT", 10**6)]),
        bank.cmd.post([(account, "CREDIT", 5), ("GL_CARD_CLEARING", "DEBIT", 5)]),
    )
    assert [r.status for r in results] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert results[1].rule == "OVERDRAFT_LIMIT"
    assert (results[0].first_seq, results[0].last_seq) == (seq_before + 1, seq_before + 3)
    assert (results[2].first_seq, results[2].last_seq) == (seq_before + 4, seq_before + 6)
    assert bank.balances()[account] == 1_005


# --------------------------------------------------------------------------- coverage of RULES

COVERED: dict[str, str] = {
    "TENANT_NOT_FOUND": "test_commands_need_an_existing_tenant",
    "TENANT_EXISTS": "test_a_tenant_is_created_once",
    "TENANT_CODE_TAKEN": "test_tenant_code_is_unique_across_the_platform",
    "UNSUPPORTED_CURRENCY": "test_base_currency_must_be_supported",
    "INVALID_TIME_ZONE": "test_time_zone_must_be_an_iana_zone",
    "INVALID_REGION": "test_region_must_be_alpha_2",
    "NEGATIVE_RATE": "test_rates_must_not_be_negative",
    "MIN_NOT_BELOW_MAX": "test_minimum_must_be_below_maximum",
    "PRODUCT_TYPE_CHANGED": "test_product_type_is_immutable",
    "EMAIL_TAKEN": "test_contact_details_are_unique_in_the_tenant",
    "MOBILE_TAKEN": "test_contact_details_are_unique_in_the_tenant",
    "EXTERNAL_REF_TAKEN": "test_contact_details_are_unique_in_the_tenant",
    "UNDERAGE": "test_customers_are_adults_on_the_command_date",
    "CUSTOMER_NOT_FOUND": "test_open_account_needs_an_existing_customer",
    "CUSTOMER_NOT_ACTIVE": "test_inactive_customer_or_product_is_refused_by_decide",
    "PRODUCT_NOT_FOUND": "test_open_account_needs_an_existing_product",
    "PRODUCT_NOT_ACTIVE": "test_inactive_customer_or_product_is_refused_by_decide",
    "CURRENCY_MISMATCH": "test_entry_currency_must_be_the_tenants",
    "BELOW_MINIMUM_DEPOSIT": "test_initial_deposit_must_reach_the_product_minimum",
    "ABOVE_MAXIMUM_BALANCE": "test_balance_may_reach_the_product_maximum_but_not_exceed_it",
    "DEPOSIT_NOT_ALLOWED": "test_loan_product_opens_a_facility",
    "TOO_FEW_LEGS": "test_entry_needs_two_legs",
    "NON_POSITIVE_AMOUNT": "test_leg_amounts_must_be_positive_integer_cents",
    "INVALID_DIRECTION": "test_leg_direction_must_be_debit_or_credit",
    "VALUE_DATE_BEFORE_BOOKING": "test_value_date_may_not_precede_booking_date",
    "ACCOUNT_NOT_FOUND": "test_every_leg_account_must_exist_in_the_tenant",
    "ACCOUNT_NOT_ACTIVE": "test_inactive_account_is_refused_by_decide",
    "UNBALANCED_ENTRY": "test_debits_must_equal_credits",
    "OVERDRAFT_LIMIT": "test_deposit_account_may_reach_zero_but_not_below",
    "UNKNOWN_COMMAND": "test_unknown_command_type_is_refused",
}


def test_every_rule_has_a_test() -> None:
    """Each rule in RULES is mapped to a test here that exists; a new rule needs one."""
    assert set(COVERED) == set(RULES)
    for rule, name in COVERED.items():
        assert callable(globals().get(name)), (rule, name)
    assert all(text for text in RULES.values())


# --------------------------------------------------------------------------- balances


def test_balances_are_debits_minus_credits() -> None:
    """A salary DEBITs the member (balance up), a card spend CREDITs it (balance down)."""
    bank = new_bank(customers=1, deposit=0)
    account = bank.accounts[0]
    bank.accept(
        bank.cmd.post([(account, "DEBIT", 250_000), ("GL_SALARY_CLEARING", "CREDIT", 250_000)])
    )
    bank.accept(bank.cmd.post([(account, "CREDIT", 7_525), ("GL_CARD_CLEARING", "DEBIT", 7_525)]))
    balances = bank.balances()
    assert balances[account] == 250_000 - 7_525
    assert balances["GL_SALARY_CLEARING"] == -250_000
    assert balances["GL_CARD_CLEARING"] == 7_525
    (row,) = bank.platform.accounts(bank.tenant_id)["accounts"]
    assert row["balance"] == format_cents(250_000 - 7_525) == Decimal("2424.75")


def _trade(bank: Bank, rounds: int) -> None:
    """A deterministic mix of salaries, spends, transfers, refusals and new accounts."""
    accounts = bank.accounts
    for n in range(rounds):
        a = accounts[n % len(accounts)]
        b = accounts[(n + 1) % len(accounts)]
        amount = 1_000 + 37 * n
        bank.submit(
            bank.cmd.post([(a, "DEBIT", amount), ("GL_SALARY_CLEARING", "CREDIT", amount)]),
            bank.cmd.post([(a, "CREDIT", amount // 3), ("GL_CARD_CLEARING", "DEBIT", amount // 3)]),
            bank.cmd.post([(a, "CREDIT", amount // 2), (b, "DEBIT", amount // 2)]),
            bank.cmd.post([(b, "CREDIT", 10**9), ("GL_CARD_CLEARING", "DEBIT", 10**9)]),
            bank.cmd.post([(a, "DEBIT", 5), ("GL_FEE_INCOME", "CREDIT", 4)]),
        )


def test_tenant_balances_sum_to_zero_after_a_mix_of_commands() -> None:
    """Whatever is accepted or refused, each tenant's balances (GLs included) sum to zero."""
    a = new_bank(customers=3, deposit=7_777)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=2, deposit=123, recorder=a.recorder)
    _trade(a, 15)
    _trade(b, 10)
    a.accept(a.cmd.product("HOME_LOAN", "LOAN"))
    loan = a.accept(a.cmd.open_account(a.customers[0], "HOME_LOAN"))[0].event.entity_id
    a.accept(a.cmd.post([(loan, "CREDIT", 50_000), (a.accounts[1], "DEBIT", 50_000)]))
    for bank in (a, b):
        balances = bank.balances()
        assert sum(balances.values()) == 0
        assert any(balance != 0 for balance in balances.values())
        assert all(v >= 0 for k, v in balances.items() if k in bank.accounts)


# --------------------------------------------------------------------------- replay


def project(state: TenantState) -> dict[str, Any]:
    """The read model a replay must reproduce: balances, customers, accounts, products, head."""
    return {
        "exists": state.exists,
        "code": state.code,
        "currency": state.currency,
        "seq": state.seq,
        "head": state.head,
        "accounts": {k: dataclasses.asdict(v) for k, v in state.accounts.items()},
        "customers": {k: dataclasses.asdict(v) for k, v in state.customers.items()},
        "products": {k: dataclasses.asdict(v) for k, v in state.products.items()},
        "emails": sorted(state.emails),
        "mobiles": sorted(state.mobiles),
        "external_refs": sorted(state.external_refs),
    }


def test_folding_the_published_events_rebuilds_the_read_model() -> None:
    """Replaying every event (decoded from its JSON bytes) through evolve equals the live state."""
    a = new_bank(customers=3, deposit=50_000)
    b = new_bank(a.platform, "cu-b", "CU_B", customers=2, deposit=9_000, recorder=a.recorder)
    a.accept(a.cmd.product("HOME_LOAN", "LOAN"))
    a.accept(a.cmd.product("SAVER", constraints=Constraints(max_balance=10**8)))
    a.accept(a.cmd.customer(77, external_ref="EXT-77"))
    loan = a.accept(a.cmd.open_account(a.customers[0], "HOME_LOAN"))[0].event.entity_id
    a.accept(a.cmd.post([(loan, "CREDIT", 30_000), (a.accounts[0], "DEBIT", 30_000)]))
    _trade(a, 6)
    _trade(b, 4)
    platform = PlatformState()
    for bank in (a, b):
        replayed = TenantState(bank.tenant_id)
        for sealed in bank.recorder.events(bank.tenant_id):
            body, _canonical, claimed = canonical_from_json(sealed.to_json_bytes())
            assert isinstance(body["payload"], dict)
            evolve(replayed, msgspec.convert(body, Event), claimed, platform)
        live = bank.platform.tenant(bank.tenant_id)
        assert live is not None
        assert project(replayed) == project(live)
        assert (replayed.seq, replayed.head) == bank.platform.head(bank.tenant_id)
    assert platform.tenant_codes == {"CU_A": "cu-a", "CU_B": "cu-b"}


def test_evolve_refuses_an_event_out_of_sequence() -> None:
    """evolve raises on a seq that does not follow the state's, naming tenant and seqs."""
    bank = new_bank(customers=1)
    events = bank.recorder.events(bank.tenant_id)
    state = TenantState(bank.tenant_id)
    evolve(state, events[0].event, events[0].hash)
    with pytest.raises(ValueError, match=r"cu-a: event seq 3 does not follow 1"):
        evolve(state, events[2].event, events[2].hash)
    assert state.seq == 1


def test_evolve_refuses_an_unknown_event_type() -> None:
    """An event type the fold does not know is an error naming the type and seq."""
    bank = new_bank(customers=0)
    state = copy.deepcopy(bank.platform.tenant(bank.tenant_id))
    assert state is not None
    stranger = Event(
        event_id="e",
        event_type="AccountTeleported",
        tenant_id="cu-a",
        entity_id="x",
        payload={},
        occurred_at=TIMESTAMP,
        causation_id="c",
        seq=state.seq + 1,
        prev_hash=state.head,
    )
    with pytest.raises(ValueError, match="AccountTeleported"):
        evolve(state, stranger, "0" * 64)


def test_decide_is_pure_for_accepted_and_refused_commands() -> None:
    """decide() returns events or a rejection without touching the state it reads."""
    bank = new_bank(customers=2, deposit=1_000)
    a, b = bank.accounts
    cmd = bank.cmd
    for envelope in (
        cmd.post([(a, "CREDIT", 400), (b, "DEBIT", 400)]),
        cmd.post([(a, "CREDIT", 4_000), (b, "DEBIT", 4_000)]),
        cmd.open_account(bank.customers[0], "SAVER", 10),
        cmd.customer(5),
        cmd.product("SAVER", "LOAN"),
    ):
        decide_on_copy(bank, envelope, lambda state: None)


def test_two_leg_fast_path_decides_exactly_what_the_general_path_does() -> None:
    """Over random two-leg entries (good, unbalanced, same account, bad direction, over a
    floor or cap, closed GL, missing account) the fast path either declines or yields the
    general path's events; and it does take every plain valid entry."""
    import numpy as np

    bank = new_bank(customers=3, deposit=5_000)
    bank.accept(bank.cmd.product("CAPPED", constraints=Constraints(max_balance=10_000)))
    capped = bank.accept(bank.cmd.open_account(bank.customers[0], "CAPPED", 9_000))[0]
    state = bank.platform.tenant(bank.tenant_id)
    assert state is not None
    names = [*bank.accounts, capped.event.entity_id, "GL_CARD_CLEARING", "NOPE"]
    directions = ["DEBIT", "CREDIT", "SIDEWAYS"]
    rng = np.random.default_rng(7)
    taken = 0
    for _ in range(3_000):
        one, other = rng.choice(names, 2).tolist()
        amount = int(rng.choice([0, 1, 999, 5_000, 5_001, 20_000]))
        second = amount if rng.random() < 0.8 else amount + 1
        first_dir, second_dir = rng.choice(directions, 2, p=[0.45, 0.45, 0.1]).tolist()
        payload = bank.cmd.post([(one, first_dir, amount), (other, second_dir, second)]).payload
        fast = _two_leg_entry(state, payload, state.accounts)
        general = _any_entry(state, payload, state.accounts)
        if fast is not None:
            taken += 1
            assert fast == general
        plain = (
            one != other
            and "NOPE" not in (one, other)
            and amount == second
            and amount > 0
            and {first_dir, second_dir} == {"DEBIT", "CREDIT"}
        )
        if plain and not isinstance(general, Rejected):
            assert fast is not None, (one, other, amount, first_dir)
    assert taken > 300
