"""Members joining: distinct adult identities, accounts with opening deposits, growth over time.

`onboard` is driven directly against the embedded platform (with the event
tap the twin uses to learn platform-assigned ids), and through whole runs.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from models.identity import account_number_is_valid, age_on, bsb_is_valid
from models.members import DEPOSIT_FUNDING, JOIN_HOUR, Onboarding, onboard, setup_tenant
from models.world import TenantWorld
from scenarios.loader import parse_scenario
from sim.bus import CommandBus
from sim.clock import VirtualClock
from sim.rng import RandomStreams
from sim.target import EmbeddedTarget, read_model_balances
from turingcore.events import SealedEvent

GROWTH_YAML = """\
name: growth
start: 2025-07-01
days: 60
seed: 11
tenants:
  - {id: cu-grow, code: CU_GROW, display_name: Growing CU, archetype: digital, state: NSW,
     members: 40, annual_growth: 1.0}
  - {id: cu-flat, code: CU_FLAT, display_name: Flat CU, archetype: small, state: QLD,
     members: 40, annual_growth: 0.0, behaviour: {lifecycle: {churn_annual: 0.0}}}
"""


class Onboarded:
    """A tenant world on an embedded platform, learning ids from the event stream."""

    def __init__(self, scenario: Any, seed: int = 7) -> None:
        self.target = EmbeddedTarget()
        self.clock = VirtualClock(scenario.start)
        spec = scenario.tenants[0]
        self.world = TenantWorld(
            scenario, spec, RandomStreams(seed), self.clock, CommandBus(self.target)
        )
        self.events: list[dict[str, Any]] = []
        self.target.subscribe(self.tap)
        setup_tenant(self.world, 0.0)
        self.onboarding = Onboarding(self.world)
        self.joined: list[int] = []

    def tap(self, tenant: str, events: list[SealedEvent]) -> None:
        """What the twin does with the stream: record assigned ids of awaited commands."""
        world = self.world
        for sealed in events:
            event = sealed.event
            self.events.append(
                {"type": event.event_type, "at": event.occurred_at, "payload": event.payload}
            )
            awaited = world.awaiting.get(event.causation_id)
            if awaited is None:
                continue
            kind, index = awaited
            if event.event_type == "CustomerCreated":
                world.customer_ids[index] = event.entity_id
            elif event.event_type == "AccountOpened":
                accounts = (
                    world.transaction_accounts if kind == "transaction" else world.savings_accounts
                )
                accounts[index] = event.entity_id

    def join(self, day: date, count: int) -> int:
        """`count` people join at JOIN_HOUR on `day`."""
        return onboard(
            self.world, self.onboarding, self.clock.day_start(day) + JOIN_HOUR * 3600, count
        )


@pytest.fixture(scope="module")
def cohorts(small_yaml: str) -> Iterator[Onboarded]:
    """150 members joining on day one, then 60 on day 40, 30 on day 200."""
    bank = Onboarded(parse_scenario(small_yaml))
    start = bank.world.scenario.start
    bank.joined = [
        bank.join(start, 150),
        bank.join(start + timedelta(days=40), 60),
        bank.join(start + timedelta(days=200), 30),
    ]
    yield bank
    bank.target.close()


def customers_created(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "CustomerCreated"]


def test_every_person_joins_with_a_transaction_account(cohorts) -> None:
    """All 240 join (none refused); each has an everyday account, savers a savings account."""
    world = cohorts.world
    assert cohorts.joined == [150, 60, 30]
    assert world.totals.members_joined == 240
    assert world.totals.onboarding_refused == 0
    assert cohorts.target.customers(world.tenant_id, limit=1)["total"] == 240
    assert all(world.transaction_accounts)
    savers = world.members.has_savings.tolist()
    assert [account is not None for account in world.savings_accounts] == savers
    assert 0 < sum(savers) < 240


def test_emails_and_mobiles_are_unique(cohorts) -> None:
    """No two members share an email (case-insensitive) or a mobile, across cohorts."""
    people = [e["payload"]["person"] for e in customers_created(cohorts.events)]
    assert len(people) == 240
    emails = Counter(p["email"].lower() for p in people)
    mobiles = Counter(p["mobile"] for p in people)
    assert emails.most_common(1)[0][1] == 1
    assert mobiles.most_common(1)[0][1] == 1
    assert all(mobile.startswith("+614") and len(mobile) == 12 for mobile in mobiles)


def test_members_are_adults_on_the_day_they_join(cohorts) -> None:
    """Every date of birth makes the member at least 18 on the simulated date of joining."""
    for event in customers_created(cohorts.events):
        joined = datetime.fromisoformat(event["at"]).date()
        born = date.fromisoformat(event["payload"]["person"]["dateOfBirth"])
        assert 18 <= age_on(born, joined) <= 100, (born, joined)
    days = sorted(
        {datetime.fromisoformat(e["at"]).date() for e in customers_created(cohorts.events)}
    )
    start = cohorts.world.scenario.start
    assert days == [start, start + timedelta(days=40), start + timedelta(days=200)]


def test_opening_deposits_are_in_shadow_and_read_model(cohorts) -> None:
    """Each account's opening deposit: the same cents in the shadow book and the read model."""
    world = cohorts.world
    shadow = world.shadow.balances
    platform = read_model_balances(cohorts.target, world.tenant_id)
    members = {account: cents for account, cents in shadow.items() if not account.startswith("GL_")}
    opened = [a for a in world.transaction_accounts + world.savings_accounts if a is not None]
    assert sorted(members) == sorted(opened) == sorted(platform)
    assert members == platform
    assert all(cents > 0 for cents in members.values())
    assert shadow[DEPOSIT_FUNDING] == -sum(members.values())
    assert world.shadow.total() == 0
    deposits = [e["payload"]["amountCents"] for e in cohorts.events if e["type"] == "FundsPosted"]
    assert sorted(deposits) == sorted(members.values())


def test_account_aliases_are_valid_and_unique(cohorts) -> None:
    """Each account is opened as 'BSB number': a valid BSB of the tenant, unique valid numbers."""
    aliases = [e["payload"]["accountAlias"] for e in cohorts.events if e["type"] == "AccountOpened"]
    bsbs = {alias.split()[0] for alias in aliases}
    numbers = [alias.split()[1] for alias in aliases]
    assert len(bsbs) == 1
    assert bsb_is_valid(bsbs.pop())
    assert len(set(numbers)) == len(numbers)
    assert all(account_number_is_valid(number) for number in numbers)


def test_nobody_joining_sends_nothing(cohorts) -> None:
    """onboard(..., 0) joins nobody and sends no command."""
    before = cohorts.world.ids.count
    assert cohorts.join(cohorts.world.scenario.start + timedelta(days=300), 0) == 0
    assert cohorts.world.ids.count == before


def test_run_members_are_distinct_adults_with_funded_accounts(small_events) -> None:
    """In a whole run: unique emails, mobiles and external refs; adults; funded accounts."""
    for tenant, events in small_events.items():
        people = [e for e in events if e["eventType"] == "CustomerCreated"]
        assert len(people) == {"cu-a": 40, "cu-b": 60}[tenant]
        for field in ("email", "mobile"):
            values = [p["payload"]["person"][field].lower() for p in people]
            assert len(set(values)) == len(values), (tenant, field)
        refs = [p["payload"]["externalRef"] for p in people]
        assert len(set(refs)) == len(refs)
        for person in people:
            born = date.fromisoformat(person["payload"]["person"]["dateOfBirth"])
            assert age_on(born, datetime.fromisoformat(person["occurredAt"]).date()) >= 18
        opened = {  # loans and credit cards (models.lending, credit_cards) start at zero
            e["entityId"]
            for e in events
            if e["eventType"] == "AccountOpened"
            and e["payload"]["productType"] not in ("LOAN", "CREDIT_CARD")
        }
        funded = {
            e["payload"]["accountId"]
            for e in events
            if e["eventType"] == "FundsPosted" and e["payload"]["amountCents"] > 0
        }
        assert opened == funded


# --------------------------------------------------------------------------- growth


@pytest.fixture(scope="module")
def growth_run(run_scenario, tmp_path_factory):  # noqa: ANN201
    """60 days of a growing (annual_growth 1.0) and a flat (0.0) credit union."""
    scenario = parse_scenario(GROWTH_YAML, "growth.yaml")
    return run_scenario(scenario, tmp_path_factory.mktemp("growth") / "run")


def members_by_day(run_dir, tenant: str) -> list[int]:  # noqa: ANN001
    """The tenant's end-of-day member counts from kpis.csv, in date order."""
    with (run_dir / "kpis.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["tenant_id"] == tenant]
    return [int(row["members"]) for row in sorted(rows, key=lambda row: row["date"])]


def test_growth_adds_members_over_the_days(growth_run) -> None:
    """With annual_growth 1.0 the member count rises over 60 days and never falls."""
    counts = members_by_day(growth_run.dir, "cu-grow")
    assert len(counts) == 60
    assert counts[0] == 40
    assert counts == sorted(counts)
    assert counts[-1] > 40
    assert growth_run.summary["tenants"]["cu-grow"]["members"] == counts[-1]


def test_no_growth_keeps_the_members(growth_run) -> None:
    """With no growth and no churn the member count stays where it started, every day."""
    assert members_by_day(growth_run.dir, "cu-flat") == [40] * 60


def test_growth_members_join_at_ten_as_adults(growth_run, events_in) -> None:
    """Later joiners arrive at 10:00 local time, adults on that day, and are all counted."""
    events = events_in(growth_run.dir, "cu-grow")
    later = [
        e
        for e in events
        if e["eventType"] == "CustomerCreated" and not e["occurredAt"].startswith("2025-07-01T00")
    ]
    assert len(later) == growth_run.summary["tenants"]["cu-grow"]["members"] - 40
    for event in later:
        moment = datetime.fromisoformat(event["occurredAt"])
        assert (moment.hour, moment.minute) == (JOIN_HOUR, 0)
        born = date.fromisoformat(event["payload"]["person"]["dateOfBirth"])
        assert age_on(born, moment.date()) >= 18
    onboarded = [
        item for item in growth_run.summary["expectations"] if item["name"] == "members onboarded"
    ]
    assert [item["passed"] for item in onboarded] == [True, True]
    assert growth_run.outcome.passed


def test_growth_run_events_stay_in_time_order(growth_run, events_in) -> None:
    """New members' events slot into the chain in time order (replay windows rely on it)."""
    for tenant in ("cu-grow", "cu-flat"):
        moments = [
            datetime.fromisoformat(e["occurredAt"]) for e in events_in(growth_run.dir, tenant)
        ]
        assert moments == sorted(moments), tenant
