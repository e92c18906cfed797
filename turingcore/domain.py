"""The platform's functional core: `decide` and `evolve` for the five commands.

`decide(platform, tenant, envelope)` reads state and returns either the events
the command causes (`Accepted`) or the rule it breaks (`Rejected`); it never
mutates anything. `evolve(tenant, event)` applies one sealed event to the
tenant's state; the read model (customers, accounts, balances) is nothing but
the fold of `evolve` over the tenant's events, so replaying the event log
rebuilds it exactly.

Balance convention, used everywhere: every account's balance is its debits
minus its credits (the member's-eye view of CONTRACT.md's examples: a salary
DEBITs the member's account). A tenant's balances therefore sum to zero.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from turingcore.contract import (
    CreateCustomer,
    CreateTenant,
    Envelope,
    OpenAccount,
    PostEntry,
    UpsertProduct,
)
from turingcore.events import (
    GENESIS_HASH,
    GENESIS_RAW,
    BalanceUpdatedPayload,
    EntryPostedPayload,
    Event,
    LegPosted,
)
from turingcore.monitor import MONITOR_EVENT_TYPES

#: Currencies the reference platform books in.
SUPPORTED_CURRENCIES = frozenset({"AUD", "NZD"})

#: GL accounts every tenant is provisioned with; their id is their code. They
#: stand for the world outside the credit union (employers, card schemes,
#: NPP/BPAY settlement) and for the credit union's own income and expense.
GL_ACCOUNTS = (
    "GL_SALARY_CLEARING",
    "GL_CARD_CLEARING",
    "GL_BPAY_CLEARING",
    "GL_NPP_CLEARING",
    "GL_DEPOSIT_FUNDING",
    "GL_INTEREST_EXPENSE",
    "GL_INTEREST_INCOME",
    "GL_FEE_INCOME",
    "GL_LOAN_FUNDING",
)

ADULT_AGE = 18

# --------------------------------------------------------------------------- rules

#: Every rule a command can break, with the contract sentence it enforces.
RULES: dict[str, str] = {
    "TENANT_NOT_FOUND": "commands other than CreateTenant need an existing tenant",
    "TENANT_EXISTS": "a tenant is created once",
    "TENANT_CODE_TAKEN": "tenantCode is unique on the platform",
    "UNSUPPORTED_CURRENCY": "baseCurrency must be one the platform supports",
    "INVALID_TIME_ZONE": "timeZone must be a valid IANA zone",
    "INVALID_REGION": "region must be an ISO 3166-1 alpha-2 code",
    "NEGATIVE_RATE": "interest rates (and ratios) are finite and >= 0",
    "MIN_NOT_BELOW_MAX": "a product's minimum must be below its maximum",
    "PRODUCT_TYPE_CHANGED": "an upsert cannot change a product's type",
    "EMAIL_TAKEN": "email is unique in the tenant",
    "MOBILE_TAKEN": "mobile is unique in the tenant",
    "EXTERNAL_REF_TAKEN": "externalRef is unique in the tenant",
    "UNDERAGE": "customers are at least 18 years old",
    "CUSTOMER_NOT_FOUND": "the customer exists",
    "CUSTOMER_NOT_ACTIVE": "the customer is active",
    "PRODUCT_NOT_FOUND": "the product exists",
    "PRODUCT_NOT_ACTIVE": "the product is active",
    "CURRENCY_MISMATCH": "currency equals the tenant's currency",
    "BELOW_MINIMUM_DEPOSIT": "initial deposit >= the product's minimum balance",
    "ABOVE_MAXIMUM_BALANCE": "no balance above the product's maximum",
    "DEPOSIT_NOT_ALLOWED": "a loan is not opened with a deposit",
    "TOO_FEW_LEGS": "an entry has at least two legs",
    "NON_POSITIVE_AMOUNT": "every leg amount is > 0",
    "INVALID_DIRECTION": "a leg is DEBIT or CREDIT",
    "VALUE_DATE_BEFORE_BOOKING": "valueDate >= bookingDate",
    "ACCOUNT_NOT_FOUND": "every account exists",
    "ACCOUNT_NOT_ACTIVE": "every account is active",
    "UNBALANCED_ENTRY": "debits equal credits",
    "OVERDRAFT_LIMIT": "no account below its overdraft limit (insufficient funds)",
    "UNKNOWN_COMMAND": "the command type is one of the contract's five",
}


class Rejected(msgspec.Struct, frozen=True):
    """A command refused by a business rule (the API's 422)."""

    rule: str
    message: str


class Pending(msgspec.Struct, frozen=True, gc=False):
    """An event decided but not yet sealed into the chain."""

    event_type: str
    entity_id: str
    payload: Any


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class ProductState:
    code: str
    product_type: str
    active: bool
    min_balance: int | None
    max_balance: int | None
    allow_overdraft: bool
    overdraft_limit: int
    definition: dict[str, Any]


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    external_ref: str | None
    full_name: str
    email: str
    mobile: str
    segment: str | None
    kyc_status: str | None
    created_at: str
    status: str = "ACTIVE"
    last_seq: int = 0


@dataclass(slots=True)
class AccountState:
    account_id: str
    customer_id: str | None
    product_code: str
    kind: str
    currency: str
    alias: str | None
    opened_at: str
    floor: int | None
    ceiling: int | None
    status: str = "ACTIVE"
    balance: int = 0
    last_seq: int = 0


@dataclass(slots=True)
class TenantState:
    """One tenant's state: its chain head and its read model."""

    tenant_id: str
    exists: bool = False
    code: str = ""
    display_name: str = ""
    currency: str = ""
    time_zone: str = ""
    id_prefix: str = ""
    seq: int = 0
    head: str = GENESIS_HASH
    head_raw: bytes = GENESIS_RAW
    products: dict[str, ProductState] = field(default_factory=dict)
    customers: dict[str, CustomerState] = field(default_factory=dict)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    emails: set[str] = field(default_factory=set)
    mobiles: set[str] = field(default_factory=set)
    external_refs: set[str] = field(default_factory=set)
    entries: int = 0

    def ident(self, variant: str, number: int) -> str:
        """A deterministic UUID-shaped id: tenant prefix, kind variant, counter."""
        return f"{self.id_prefix}{variant}000-{number:012x}"

    def event_id(self, seq: int) -> str:
        return f"{self.id_prefix}8000-{seq:012x}"


@dataclass(slots=True)
class PlatformState:
    """What the platform knows across tenants: only which codes are taken."""

    tenant_codes: dict[str, str] = field(default_factory=dict)


def id_prefix(tenant_id: str, creating_command_id: str) -> str:
    """UUID-shaped prefix for a tenant's ids, fixed by the command that created it."""
    digest = hashlib.sha256(f"{tenant_id}\x00{creating_command_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[12:15]}-"


# --------------------------------------------------------------------------- decide


def decide(
    platform: PlatformState, tenant: TenantState, envelope: Envelope
) -> list[Pending] | Rejected:
    """The events a command causes, or the rule it breaks. Pure: mutates nothing."""
    command_type = envelope.command_type
    if command_type == "PostEntry":
        if not tenant.exists:
            return Rejected("TENANT_NOT_FOUND", f"tenant {tenant.tenant_id} does not exist")
        return _decide_post_entry(tenant, envelope.payload)
    if command_type == "CreateTenant":
        return _decide_create_tenant(platform, tenant, envelope.payload)
    if not tenant.exists:
        return Rejected("TENANT_NOT_FOUND", f"tenant {tenant.tenant_id} does not exist")
    if command_type == "CreateCustomer":
        return _decide_create_customer(tenant, envelope.payload, envelope.timestamp)
    if command_type == "OpenAccount":
        return _decide_open_account(tenant, envelope.payload)
    if command_type == "UpsertProduct":
        return _decide_upsert_product(tenant, envelope.payload)
    return Rejected("UNKNOWN_COMMAND", f"{command_type!r} is not a command of the contract")


def _decide_create_tenant(
    platform: PlatformState, tenant: TenantState, command: CreateTenant
) -> list[Pending] | Rejected:
    if tenant.exists:
        return Rejected("TENANT_EXISTS", f"tenant {tenant.tenant_id} already exists")
    owner = platform.tenant_codes.get(command.tenant_code)
    if owner is not None:
        return Rejected("TENANT_CODE_TAKEN", f"tenantCode {command.tenant_code} is taken")
    if command.base_currency not in SUPPORTED_CURRENCIES:
        supported = ", ".join(sorted(SUPPORTED_CURRENCIES))
        return Rejected(
            "UNSUPPORTED_CURRENCY", f"{command.base_currency} is not supported ({supported})"
        )
    if not (len(command.region) == 2 and command.region.isalpha() and command.region.isupper()):
        return Rejected("INVALID_REGION", f"{command.region!r} is not an ISO 3166-1 alpha-2 code")
    try:
        ZoneInfo(command.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return Rejected("INVALID_TIME_ZONE", f"{command.time_zone!r} is not an IANA time zone")
    payload = msgspec.to_builtins(command)
    payload["glAccounts"] = list(GL_ACCOUNTS)
    return [Pending("TenantCreated", tenant.tenant_id, payload)]


def _decide_upsert_product(tenant: TenantState, command: UpsertProduct) -> list[Pending] | Rejected:
    interest = command.interest
    for name in ("rate", "base_rate", "bonus_rate"):
        value = getattr(interest, name)
        if value is not None and (not value.is_finite() or value < 0):
            return Rejected("NEGATIVE_RATE", f"interest.{name} must be >= 0, got {value}")
    criteria = command.credit_criteria
    if criteria is not None and criteria.max_dti_ratio is not None:
        ratio = criteria.max_dti_ratio
        if not ratio.is_finite() or ratio < 0:
            return Rejected(
                "NEGATIVE_RATE", f"creditCriteria.maxDtiRatio must be >= 0, got {ratio}"
            )
    limits = command.constraints
    if limits is not None:
        pairs = (
            ("minBalance", limits.min_balance, "maxBalance", limits.max_balance),
            ("minAmount", limits.min_amount, "maxAmount", limits.max_amount),
        )
        for low_name, low, high_name, high in pairs:
            if low is not None and high is not None and low >= high:
                return Rejected(
                    "MIN_NOT_BELOW_MAX", f"constraints.{low_name} must be below {high_name}"
                )
    existing = tenant.products.get(command.product_code)
    if existing is not None and existing.product_type != command.product_type:
        return Rejected(
            "PRODUCT_TYPE_CHANGED",
            f"{command.product_code} is a {existing.product_type}, not {command.product_type}",
        )
    payload = _money_to_cents_names(msgspec.to_builtins(command))
    event_type = "ProductCreated" if existing is None else "ProductUpdated"
    return [Pending(event_type, command.product_code, payload)]


_MONEY_KEYS = {
    "minBalance",
    "maxBalance",
    "overdraftLimit",
    "minAmount",
    "maxAmount",
    "minIncome",
    "annualIncome",
}


def _money_to_cents_names(node: Any, in_fees: bool = False) -> Any:
    """Rename money fields of a payload to their `...Cents` names for events."""
    if isinstance(node, dict):
        renamed: dict[str, Any] = {}
        for key, value in node.items():
            if in_fees or key in _MONEY_KEYS:
                renamed[f"{key}Cents"] = value
            else:
                renamed[key] = _money_to_cents_names(value, in_fees=key == "fees")
        return renamed
    return node


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _decide_create_customer(
    tenant: TenantState, command: CreateCustomer, timestamp: str
) -> list[Pending] | Rejected:
    person = command.person
    email = person.email.lower()
    if email in tenant.emails:
        return Rejected("EMAIL_TAKEN", f"email {person.email} is already a customer's")
    if person.mobile in tenant.mobiles:
        return Rejected("MOBILE_TAKEN", f"mobile {person.mobile} is already a customer's")
    if command.external_ref is not None and command.external_ref in tenant.external_refs:
        return Rejected("EXTERNAL_REF_TAKEN", f"externalRef {command.external_ref} is taken")
    today = datetime.fromisoformat(timestamp).date()
    age = _age_on(person.date_of_birth, today)
    if age < ADULT_AGE:
        return Rejected("UNDERAGE", f"customer is {age} on {today}, under {ADULT_AGE}")
    customer_id = tenant.ident("9", len(tenant.customers) + 1)
    payload = _money_to_cents_names(msgspec.to_builtins(command))
    payload["customerId"] = customer_id
    return [Pending("CustomerCreated", customer_id, payload)]


def _decide_open_account(tenant: TenantState, command: OpenAccount) -> list[Pending] | Rejected:
    customer = tenant.customers.get(command.customer_id)
    if customer is None:
        return Rejected("CUSTOMER_NOT_FOUND", f"customer {command.customer_id} does not exist")
    if customer.status != "ACTIVE":
        return Rejected("CUSTOMER_NOT_ACTIVE", f"customer {command.customer_id} is not active")
    product = tenant.products.get(command.product_code)
    if product is None:
        return Rejected("PRODUCT_NOT_FOUND", f"product {command.product_code} does not exist")
    if not product.active:
        return Rejected("PRODUCT_NOT_ACTIVE", f"product {command.product_code} is not active")
    if command.currency != tenant.currency:
        return Rejected(
            "CURRENCY_MISMATCH", f"{command.currency} is not the tenant's {tenant.currency}"
        )
    deposit = command.initial_deposit or 0
    if deposit < 0:
        return Rejected("NON_POSITIVE_AMOUNT", "initialDeposit must not be negative")
    if product.product_type == "LOAN" and deposit:
        return Rejected("DEPOSIT_NOT_ALLOWED", "a loan account is not opened with a deposit")
    if product.min_balance is not None and deposit < product.min_balance:
        return Rejected(
            "BELOW_MINIMUM_DEPOSIT",
            f"initial deposit {deposit} cents is below the minimum {product.min_balance}",
        )
    if product.max_balance is not None and deposit > product.max_balance:
        return Rejected(
            "ABOVE_MAXIMUM_BALANCE",
            f"initial deposit {deposit} cents is above the maximum {product.max_balance}",
        )
    account_id = tenant.ident("a", len(tenant.accounts) + 1)
    opened = {
        "accountId": account_id,
        "customerId": command.customer_id,
        "productCode": command.product_code,
        "productType": product.product_type,
        "accountAlias": command.account_alias,
        "currency": command.currency,
        "accountPurpose": command.account_purpose,
    }
    events = [Pending("AccountOpened", account_id, opened)]
    if product.product_type == "LOAN":
        facility = {"accountId": account_id, "productCode": command.product_code}
        events.append(Pending("LoanFacilityCreated", account_id, facility))
    if deposit > 0:
        entry_id = tenant.ident("b", tenant.entries + 1)
        funding = tenant.accounts["GL_DEPOSIT_FUNDING"]
        funds = {
            "entryId": entry_id,
            "accountId": account_id,
            "amountCents": deposit,
            "legs": [
                {"accountId": account_id, "direction": "DEBIT", "amountCents": deposit},
                {"accountId": funding.account_id, "direction": "CREDIT", "amountCents": deposit},
            ],
        }
        events.append(Pending("FundsPosted", account_id, funds))
        events.append(
            Pending(
                "AccountBalanceUpdated",
                account_id,
                BalanceUpdatedPayload(account_id, deposit, deposit, entry_id),
            )
        )
        events.append(
            Pending(
                "AccountBalanceUpdated",
                funding.account_id,
                BalanceUpdatedPayload(
                    funding.account_id, funding.balance - deposit, -deposit, entry_id
                ),
            )
        )
    return events


def _decide_post_entry(tenant: TenantState, command: PostEntry) -> list[Pending] | Rejected:
    legs = command.legs
    if len(legs) < 2:
        return Rejected("TOO_FEW_LEGS", f"an entry needs at least two legs, got {len(legs)}")
    if command.currency != tenant.currency:
        return Rejected(
            "CURRENCY_MISMATCH", f"{command.currency} is not the tenant's {tenant.currency}"
        )
    if command.value_date < command.booking_date:
        return Rejected(
            "VALUE_DATE_BEFORE_BOOKING",
            f"valueDate {command.value_date} is before bookingDate {command.booking_date}",
        )
    accounts = tenant.accounts
    if len(legs) == 2:
        fast = _two_leg_entry(tenant, command, accounts)
        if fast is not None:
            return fast
    return _any_entry(tenant, command, accounts)


def _any_entry(
    tenant: TenantState, command: PostEntry, accounts: dict[str, AccountState]
) -> list[Pending] | Rejected:
    """The events of any entry, or the rule it breaks (legs checked in order)."""
    legs = command.legs
    deltas: dict[str, int] = {}
    touched: list[AccountState] = []
    posted: list[LegPosted] = []
    debits = credits = 0
    for index, leg in enumerate(legs):
        amount = leg.amount
        if type(amount) is not int or amount <= 0:
            return Rejected("NON_POSITIVE_AMOUNT", f"legs[{index}].amount must be > 0")
        account = accounts.get(leg.account_id)
        if account is None:
            return Rejected("ACCOUNT_NOT_FOUND", f"account {leg.account_id} does not exist")
        if account.status != "ACTIVE":
            return Rejected("ACCOUNT_NOT_ACTIVE", f"account {leg.account_id} is not active")
        account_id = account.account_id
        if account_id not in deltas:
            deltas[account_id] = 0
            touched.append(account)
        if leg.direction == "DEBIT":
            debits += amount
            deltas[account_id] += amount
        elif leg.direction == "CREDIT":
            credits += amount
            deltas[account_id] -= amount
        else:
            return Rejected("INVALID_DIRECTION", f"legs[{index}].direction {leg.direction!r}")
        posted.append(LegPosted(account_id, amount, leg.direction))
    if debits != credits:
        return Rejected("UNBALANCED_ENTRY", f"debits {debits} != credits {credits} (cents)")
    entry_id = tenant.ident("b", tenant.entries + 1)
    events = [_entry_posted(command, entry_id, tuple(posted))]
    for account in touched:
        delta = deltas[account.account_id]
        balance = account.balance + delta
        if delta < 0 and account.floor is not None and balance < account.floor:
            return Rejected(
                "OVERDRAFT_LIMIT",
                f"account {account.account_id} would go to {balance} cents, "
                f"below its limit of {account.floor}",
            )
        if delta > 0 and account.ceiling is not None and balance > account.ceiling:
            return Rejected(
                "ABOVE_MAXIMUM_BALANCE",
                f"account {account.account_id} would reach {balance} cents, "
                f"above its maximum of {account.ceiling}",
            )
        events.append(
            Pending(
                "AccountBalanceUpdated",
                account.account_id,
                BalanceUpdatedPayload(account.account_id, balance, delta, entry_id),
            )
        )
    return events


def _two_leg_entry(
    tenant: TenantState, command: PostEntry, accounts: dict[str, AccountState]
) -> list[Pending] | None:
    """The events of a valid two-leg entry between two accounts, or None.

    Nearly every entry is one debit and one credit of the same amount: this
    decides that case without the general loop's bookkeeping. It returns None
    for anything else, refusals included, so the general path alone words
    every rejection (tests pin both paths to the same events).
    """
    first, second = command.legs
    amount = first.amount
    if type(amount) is not int or type(second.amount) is not int:
        return None
    if amount <= 0 or second.amount != amount:
        return None
    one = accounts.get(first.account_id)
    other = accounts.get(second.account_id)
    if one is None or other is None or one is other:
        return None
    if one.status != "ACTIVE" or other.status != "ACTIVE":
        return None
    direction = first.direction
    if direction == "DEBIT" and second.direction == "CREDIT":
        delta = amount
    elif direction == "CREDIT" and second.direction == "DEBIT":
        delta = -amount
    else:
        return None
    gaining, losing = (one, other) if delta > 0 else (other, one)
    if losing.floor is not None and losing.balance - amount < losing.floor:
        return None
    if gaining.ceiling is not None and gaining.balance + amount > gaining.ceiling:
        return None
    balance_one = one.balance + delta
    balance_other = other.balance - delta
    one_id, other_id = one.account_id, other.account_id
    entry_id = tenant.ident("b", tenant.entries + 1)
    legs = (LegPosted(one_id, amount, direction), LegPosted(other_id, amount, second.direction))
    return [
        _entry_posted(command, entry_id, legs),
        Pending(
            "AccountBalanceUpdated",
            one_id,
            BalanceUpdatedPayload(one_id, balance_one, delta, entry_id),
        ),
        Pending(
            "AccountBalanceUpdated",
            other_id,
            BalanceUpdatedPayload(other_id, balance_other, -delta, entry_id),
        ),
    ]


def _entry_posted(command: PostEntry, entry_id: str, legs: tuple[LegPosted, ...]) -> Pending:
    """The EntryPosted event of an accepted entry (both deciding paths build it here)."""
    return Pending(
        "EntryPosted",
        entry_id,
        EntryPostedPayload(
            command.booking_date,
            command.currency,
            entry_id,
            legs,
            command.metadata,
            command.narrative,
            command.tags,
            command.value_date,
        ),
    )


# --------------------------------------------------------------------------- evolve


def _field(payload: Any, name: str) -> Any:
    """Read a payload field whether it is a Struct (live) or a dict (replayed)."""
    if isinstance(payload, dict):
        return payload.get(name)
    return getattr(payload, _SNAKE.get(name, name))


_SNAKE = {"accountId": "account_id", "balanceCents": "balance_cents", "entryId": "entry_id"}


def evolve(
    tenant: TenantState, event: Event, event_hash: str, platform: PlatformState | None = None
) -> None:
    """Apply one sealed event to the tenant's state (the fold that is the read model)."""
    event_type = event.event_type
    if event.seq != tenant.seq + 1:
        raise ValueError(
            f"tenant {tenant.tenant_id}: event seq {event.seq} does not follow {tenant.seq}"
        )
    if event_type == "AccountBalanceUpdated":
        payload = event.payload
        account = tenant.accounts[_field(payload, "accountId")]
        account.balance = _field(payload, "balanceCents")
        account.last_seq = event.seq
    elif event_type == "EntryPosted" or event_type == "FundsPosted":
        tenant.entries += 1
    else:
        _evolve_rare(tenant, event, platform)
    tenant.seq = event.seq
    tenant.head = event_hash
    tenant.head_raw = bytes.fromhex(event_hash)


def _evolve_rare(tenant: TenantState, event: Event, platform: PlatformState | None) -> None:
    payload: dict[str, Any] = event.payload
    event_type = event.event_type
    if event_type == "TenantCreated":
        tenant.exists = True
        tenant.code = payload["tenantCode"]
        tenant.display_name = payload["displayName"]
        tenant.currency = payload["baseCurrency"]
        tenant.time_zone = payload["timeZone"]
        tenant.id_prefix = id_prefix(tenant.tenant_id, event.causation_id)
        for code in payload["glAccounts"]:
            tenant.accounts[code] = AccountState(
                account_id=code,
                customer_id=None,
                product_code=code,
                kind="GL",
                currency=tenant.currency,
                alias=None,
                opened_at=event.occurred_at,
                floor=None,
                ceiling=None,
                last_seq=event.seq,
            )
        if platform is not None:
            platform.tenant_codes[tenant.code] = tenant.tenant_id
    elif event_type in ("ProductCreated", "ProductUpdated"):
        limits = payload.get("constraints") or {}
        tenant.products[payload["productCode"]] = ProductState(
            code=payload["productCode"],
            product_type=payload["productType"],
            active=True,
            min_balance=limits.get("minBalanceCents"),
            max_balance=limits.get("maxBalanceCents"),
            allow_overdraft=bool(limits.get("allowOverdraft", False)),
            overdraft_limit=limits.get("overdraftLimitCents") or 0,
            definition=payload,
        )
    elif event_type == "CustomerCreated":
        person = payload["person"]
        risk = payload.get("riskProfile") or {}
        customer = CustomerState(
            customer_id=payload["customerId"],
            external_ref=payload.get("externalRef"),
            full_name=f"{person['firstName']} {person['lastName']}",
            email=person["email"].lower(),
            mobile=person["mobile"],
            segment=risk.get("segment"),
            kyc_status=risk.get("kycStatus"),
            created_at=event.occurred_at,
            last_seq=event.seq,
        )
        tenant.customers[customer.customer_id] = customer
        tenant.emails.add(customer.email)
        tenant.mobiles.add(customer.mobile)
        if customer.external_ref is not None:
            tenant.external_refs.add(customer.external_ref)
    elif event_type == "AccountOpened":
        product = tenant.products[payload["productCode"]]
        floor: int | None
        ceiling = product.max_balance
        if product.product_type == "LOAN":
            floor, ceiling = None, 0
        elif product.allow_overdraft:
            floor = -product.overdraft_limit
        else:
            floor = 0
        account = AccountState(
            account_id=payload["accountId"],
            customer_id=payload["customerId"],
            product_code=product.code,
            kind=product.product_type,
            currency=payload["currency"],
            alias=payload.get("accountAlias"),
            opened_at=event.occurred_at,
            floor=floor,
            ceiling=ceiling,
            last_seq=event.seq,
        )
        tenant.accounts[account.account_id] = account
    elif event_type == "LoanFacilityCreated":
        tenant.accounts[payload["accountId"]].last_seq = event.seq
    elif event_type in MONITOR_EVENT_TYPES:
        pass  # alerts and reports change no balance, customer or account
    else:
        raise ValueError(f"unknown event type {event_type!r} at seq {event.seq}")
