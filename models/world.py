"""One credit union as the twin sees it: its members, accounts and books.

A `TenantWorld` is the state shared by the tenant's processes (onboarding,
payments, day close): the member attribute arrays, the platform ids of each
member's customer and accounts, the shadow book, the day's counters, and the
tenant's named random streams. It holds no platform state: balances come from
the platform's events, expectations from the shadow book.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.params import Behaviour
from models.transactions import MemberArrays
from scenarios.schema import Scenario, TenantSpec
from sim.bus import CommandBus
from sim.clock import BusinessCalendar, VirtualClock
from sim.contract import CommandIds
from sim.rng import RandomStreams
from sim.shadow import ShadowBook


@dataclass(slots=True)
class DayCounters:
    """What happened to one tenant today (reset at each day close)."""

    commands: int = 0
    entries: int = 0
    postings: int = 0
    events: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    predicted_rejections: int = 0
    prediction_misses: int = 0


@dataclass(slots=True)
class RunTotals:
    """What happened to one tenant over the whole run."""

    commands: int = 0
    entries: int = 0
    postings: int = 0
    events: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    predicted_rejections: int = 0
    prediction_misses: int = 0
    members_joined: int = 0
    members_left: int = 0
    onboarding_refused: int = 0
    member_days: int = 0
    card_spend_cents: int = 0
    card_member_days: int = 0
    card_expected_cents: float = 0.0
    card_expected_variance: float = 0.0


class TenantWorld:
    """Shared state of one tenant's processes."""

    def __init__(
        self,
        scenario: Scenario,
        spec: TenantSpec,
        streams: RandomStreams,
        clock: VirtualClock,
        bus: CommandBus,
    ) -> None:
        self.scenario = scenario
        self.spec = spec
        self.tenant_id = spec.id
        self.behaviour: Behaviour = scenario.tenant_behaviour(spec.id)
        self.streams = streams
        self.clock = clock
        self.bus = bus
        end = scenario.end
        self.calendar = BusinessCalendar(spec.state, scenario.start.year, end.year + 1)
        self.ids = CommandIds(streams.seed, spec.id)
        self.members = MemberArrays()
        self.customer_ids: list[str | None] = []
        self.transaction_accounts: list[str | None] = []
        self.savings_accounts: list[str | None] = []
        self.shadow = ShadowBook(spec.id)
        self.today = DayCounters()
        self.totals = RunTotals()
        self.deposits_cents = 0
        #: accounts that are not deposits (loans, cards), learned from AccountOpened
        self.not_deposits: set[str] = set()
        #: member -> (credit card account, limit in cents), for the card spend path
        self.card_of: dict[int, tuple[str, int]] = {}
        #: commandId -> what the twin is waiting to learn from the event stream
        self.awaiting: dict[str, tuple[str, int]] = {}
        self.metadata: dict[str, Any] = {"scenarioId": scenario.name}

    def rng(self, model: str) -> np.random.Generator:
        """The tenant's named stream for one model."""
        return self.streams.stream(self.tenant_id, model)

    def date_of(self, t: float) -> datetime.date:
        return self.clock.date_at(t)

    def active_members(self) -> int:
        return int(np.count_nonzero(self.members.active))
