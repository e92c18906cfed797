"""Members joining a credit union: CreateCustomer, then OpenAccount.

A member joins with a realistic Australian identity (see `models.identity`),
an everyday transaction account, and (for most) a savings account, each
opened with an initial deposit. Ids the platform assigns are learned from the
platform's event stream (`CustomerCreated`, `AccountOpened`), never guessed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from faker import Faker

from models.distributions import LogNormalAmount
from models.identity import AustralianBankingProvider, IdentityFactory, damm_check_digit
from models.lifecycle import churn
from models.products import EVERYDAY, SAVER, skeleton_products
from models.world import TenantWorld
from turingcore.contract import (
    Address,
    CreateCustomer,
    CreateTenant,
    Employment,
    Leg,
    OpenAccount,
    Person,
    PostEntry,
    RiskProfile,
)

#: Platform GL account that funds opening deposits (money from outside the CU).
DEPOSIT_FUNDING = "GL_DEPOSIT_FUNDING"
#: Local time members join on a day of growth.
JOIN_HOUR = 10


class Onboarding:
    """Makes people and numbers for one tenant's new members."""

    def __init__(self, world: TenantWorld) -> None:
        self.world = world
        streams, tenant = world.streams, world.tenant_id
        self.identities = IdentityFactory(
            world.rng("identity"), streams.child_seed(tenant, "identity"), world.spec.state
        )
        faker = Faker("en_AU")
        faker.seed_instance(streams.child_seed(tenant, "bsb"))
        faker.add_provider(AustralianBankingProvider)
        self.bsb: str = faker.bsb(state=world.spec.state, institution="80")
        rng = world.rng("account-numbers")
        self._multiplier = int(rng.integers(1, 10**7)) * 10 + 1  # odd, not a multiple of 5
        while self._multiplier % 5 == 0:
            self._multiplier += 2
        self._offset = int(rng.integers(0, 10**8))
        self._accounts_numbered = 0

    def account_number(self) -> str:
        """A unique 9-digit account number (8 digits + Damm check digit) in this tenant."""
        self._accounts_numbered += 1
        body = f"{(self._multiplier * self._accounts_numbered + self._offset) % 10**8:08d}"
        return f"{body}{damm_check_digit(body)}"


def setup_tenant(world: TenantWorld, t: float) -> None:
    """CreateTenant and the products, before anyone joins. Refusal is fatal."""
    spec = world.spec
    timestamp = world.clock.iso_at(t)
    commands = [
        world.ids.envelope(
            "CreateTenant",
            timestamp,
            CreateTenant(
                tenant_code=spec.code,
                display_name=spec.display_name,
                region="AU",
                base_currency=world.scenario.currency,
                time_zone="Australia/Sydney",
                regulatory_jurisdiction="APRA",
                business_type="CREDIT_UNION",
            ),
        )
    ]
    commands += [
        world.ids.envelope("UpsertProduct", timestamp, product) for product in skeleton_products()
    ]
    results = world.bus.submit(world.tenant_id, commands)
    refused = [r for r in results if not r.accepted]
    if refused:
        raise RuntimeError(
            f"tenant {world.tenant_id}: the platform refused set-up: "
            + "; ".join(f"{r.rule}: {r.message}" for r in refused)
        )


def onboard(world: TenantWorld, onboarding: Onboarding, t: float, count: int) -> int:
    """`count` new members join at time `t`; returns how many got their accounts."""
    if count <= 0:
        return 0
    behaviour = world.behaviour
    day = world.clock.date_at(t)
    timestamp = world.clock.iso_at(t)
    rng = world.rng("members")
    indices = world.members.add(rng, behaviour, count).tolist()
    people = onboarding.identities.people(count, as_of=day)
    incomes = world.members.income_cents[indices].tolist()
    employed = world.members.employed[indices].tolist()
    for _ in indices:
        world.customer_ids.append(None)
        world.transaction_accounts.append(None)
        world.savings_accounts.append(None)
    scores = np.clip(np.rint(rng.normal(720, 90, count)), 300, 1000).astype(int).tolist()

    customers = []
    for index, person, income, works, score in zip(
        indices, people, incomes, employed, scores, strict=True
    ):
        envelope = world.ids.envelope(
            "CreateCustomer",
            timestamp,
            CreateCustomer(
                person=Person(
                    person.first_name,
                    person.last_name,
                    person.date_of_birth,
                    person.email,
                    person.mobile,
                ),
                address=Address(
                    person.line1,
                    person.suburb,
                    person.state,
                    person.postcode,
                    person.country,
                    person.line2,
                ),
                external_ref=f"{world.spec.code}-M{index + 1:07d}",
                employment=Employment(
                    status="EMPLOYED" if works else "NOT_IN_LABOUR_FORCE",
                    annual_income=income if works else 0,
                ),
                risk_profile=RiskProfile(
                    segment="RETAIL", kyc_status="VERIFIED", credit_score=score
                ),
            ),
        )
        world.awaiting[envelope.command_id] = ("customer", index)
        customers.append(envelope)
    world.bus.submit(world.tenant_id, customers)

    opening = behaviour.opening
    open_rng = world.rng("opening")
    everyday_deposits = (
        LogNormalAmount.from_dollars(opening.transaction_mean, opening.cv)
        .sample(open_rng, count)
        .tolist()
    )
    saver_deposits = (
        LogNormalAmount.from_dollars(opening.savings_mean, opening.cv)
        .sample(open_rng, count)
        .tolist()
    )
    has_savings = world.members.has_savings[indices].tolist()
    accounts: list[Any] = []
    for position, index in enumerate(indices):
        customer_id = world.customer_ids[index]
        if customer_id is None:
            world.members.active[index] = False
            world.totals.onboarding_refused += 1
            continue
        wanted = [("transaction", EVERYDAY, everyday_deposits[position])]
        if has_savings[position]:
            wanted.append(("savings", SAVER, saver_deposits[position]))
        for kind, product, deposit in wanted:
            envelope = world.ids.envelope(
                "OpenAccount",
                timestamp,
                OpenAccount(
                    customer_id=customer_id,
                    product_code=product,
                    currency=world.scenario.currency,
                    account_alias=f"{onboarding.bsb} {onboarding.account_number()}",
                    initial_deposit=deposit,
                    account_purpose="EVERYDAY" if kind == "transaction" else "SAVINGS",
                ),
            )
            world.awaiting[envelope.command_id] = (kind, index)
            accounts.append((envelope, kind, index, deposit))
    results = world.bus.submit(world.tenant_id, [item[0] for item in accounts])
    joined = 0
    for (_envelope, kind, index, deposit), result in zip(accounts, results, strict=True):
        if not result.accepted:
            continue
        account_id = (
            world.transaction_accounts[index]
            if kind == "transaction"
            else world.savings_accounts[index]
        )
        if account_id is None:
            raise RuntimeError(f"no AccountOpened event seen for {result.command_id}")
        world.shadow.apply(
            [Leg(account_id, "DEBIT", deposit), Leg(DEPOSIT_FUNDING, "CREDIT", deposit)]
        )
        if kind == "transaction":
            joined += 1
    for index in indices:
        if world.transaction_accounts[index] is None:
            world.members.active[index] = False
    world.totals.members_joined += joined
    world.awaiting.clear()
    return joined


def member_growth(
    env: Any, world: TenantWorld, onboarding: Onboarding
) -> Generator[Any, Any, None]:
    """Members join and leave each day; the net rate is the tenant's annual growth.

    Leaving is a hazard (`lifecycle.churn_annual`); joining is Poisson at the
    growth rate plus the churn rate, so membership grows by `annual_growth` a
    year on average. If growth is more negative than churn, extra members
    leave. Leavers stop transacting (the contract has no account closure).
    """
    growth = world.spec.annual_growth
    behaviour = world.behaviour
    rng = world.rng("growth")
    clock = world.clock
    day = clock.date_at(env.now)
    while True:
        join_at = clock.day_start(day) + JOIN_HOUR * 3600
        if join_at > env.now:
            yield env.timeout(join_at - env.now)
        leavers = churn(world.members, behaviour, rng)
        world.totals.members_left += len(leavers)
        withdraw_balances(world, leavers.tolist(), env.now)
        gross = growth + behaviour.lifecycle.churn_annual
        expected = world.active_members() * abs(gross) / 365.25
        if gross > 0:
            onboard(world, onboarding, env.now, int(rng.poisson(expected)))
        elif gross < 0:
            leave(world, rng, int(rng.poisson(expected)), env.now)
        day = clock.date_at(clock.day_start(day) + clock.day_length(day) + 1)


def leave(world: TenantWorld, rng: np.random.Generator, count: int, t: float) -> int:
    """`count` active members, chosen uniformly, leave at time `t`, taking their money."""
    active = np.flatnonzero(world.members.active)
    count = min(count, len(active))
    if count <= 0:
        return 0
    leaving = rng.choice(active, size=count, replace=False)
    world.members.active[leaving] = False
    world.totals.members_left += count
    withdraw_balances(world, leaving.tolist(), t)
    return count


#: Where a leaving member's money goes: another institution, over NPP.
CLOSING_CLEARING = "GL_NPP_CLEARING"


def withdraw_balances(world: TenantWorld, leavers: list[int], t: float) -> int:
    """Leavers move every positive balance out to another institution (NPP).

    Returns the number of transfers the platform accepted. The shadow book
    follows the accepted ones only, like every other payment.
    """
    if not leavers:
        return 0
    timestamp = world.clock.iso_at(t)
    day = world.clock.date_at(t)
    moves = []
    for index in leavers:
        for account in (world.transaction_accounts[index], world.savings_accounts[index]):
            if account is None:
                continue
            balance = world.shadow.balance(account)
            if balance <= 0:
                continue
            envelope = world.ids.envelope(
                "PostEntry",
                timestamp,
                PostEntry(
                    day,
                    day,
                    world.scenario.currency,
                    [Leg(account, "CREDIT", balance), Leg(CLOSING_CLEARING, "DEBIT", balance)],
                    "Closing transfer to another institution",
                    {"channel": "NPP", "category": "closure"},
                    world.metadata,
                ),
            )
            moves.append((envelope, account, balance))
    if not moves:
        return 0
    results = world.bus.submit(world.tenant_id, [move[0] for move in moves])
    accepted = 0
    for (_envelope, account, balance), result in zip(moves, results, strict=True):
        if result.accepted:
            world.shadow.transfer(CLOSING_CLEARING, account, balance)
            accepted += 1
    return accepted
