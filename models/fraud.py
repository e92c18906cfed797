"""Fraud against a credit union's members: campaigns, ground truth, and the monitor's score.

Campaigns are SimPy processes per tenant, started each day at Poisson rates
(`models.params.FraudParams`, per active member per year, times any scripted
surge). They move real money by PostEntry, built like every other payment
(same tags, narratives and metadata shapes) and reconciled with the shadow
book exactly as `models.payments` does, so the five invariants and the
shadow-equals-read-model checks cover fraud like any other traffic:

- **card-not-present**: a compromised card is used in a burst of online
  purchases (`GL_CARD_CLEARING`); it ends when the card is declined twice.
- **account takeover**: the attacker sweeps the victim's savings into the
  transaction account and drains it over NPP in a few fast transfers to new
  payees (mule accounts elsewhere).
- **authorised push payment scam**: the victim pays one new payee one to a
  few large amounts, days apart, topping up from savings when short.
- **mule network**: victims (members of this credit union, or people at other
  banks paying in over NPP) pay a member recruited as a mule, who forwards
  most of each receipt out over NPP within hours (fan-in, fan-out).
- **cash structuring**: a member deposits cash just under AUD 10,000 a few
  times over days, then sends it out (laundering, no member loss).

Members also make ordinary cash deposits (some of AUD 10,000 or more, which
the platform must report to AUSTRAC).

**Ground truth stays in the twin.** Which commands were fraudulent, and in
which campaign, is kept here only; nothing of it goes into tags, narratives
or metadata, and `tests/test_fraud.py` scans the stored events for it.

**Scoring.** The twin subscribes to the platform's event stream and reads
`FraudAlertRaised` and `ThresholdTransactionReported` events:

- *confusion matrix per payment*: every accepted entry is a payment;
  fraudulent ones an alert names (`causationId`) are true positives, the rest
  false negatives; legitimate entries an alert names are false positives,
  the others true negatives. Precision and recall follow.
- *campaigns*: a campaign is detected at the first alert on one of its
  payments or on an account it uses (victim or mule). The monitor does not
  block, so the credit union's response is modelled: at the first alert the
  account is frozen and the campaign stops. *Time to detect* is the alert's
  occurredAt minus the campaign's first fraudulent payment's.
- *money*: **lost** is fraudulent money that left the credit union (card
  spend, NPP out); **detected** is the amount of fraudulent payments an
  alert named; **prevented** is what a stopped campaign still meant to take
  out (its remaining planned outgoing payments); **refused** is fraud the
  platform refused (insufficient funds).

Outputs: `fraud.csv` (per tenant per day, with the day's account takeovers
and scams started, so a scripted wave shows per month), `fraud_summary.json`
(the confusion matrix, alerts by rule and those on legitimate payments,
campaigns by kind, time to detect; the shape `summary["fraud"]` takes in the
report), KPI series for declared expectations, and expected vs
actual items: campaign recall against `recall_floor`, every cash transaction
of AUD 10,000 or more reported, and the confusion matrix adding up.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from faker import Faker

from models.identity import AustralianBankingProvider
from models.params import FraudParams
from models.payments import CARD_MERCHANTS
from models.world import TenantWorld
from sim.context import RunContext
from turingcore.contract import Leg, PostEntry
from turingcore.events import SealedEvent

CNP = "card_not_present"
ATO = "account_takeover"
APP = "app_scam"
MULE = "mule_network"
STRUCTURING = "cash_structuring"
#: Campaign kinds, with the FraudParams prefix of their rate and surge multiplier.
KINDS: dict[str, str] = {
    CNP: "cnp",
    ATO: "ato",
    APP: "app",
    MULE: "mule",
    STRUCTURING: "structuring",
}

FRAUD_FILE = "fraud.csv"
SUMMARY_FILE = "fraud_summary.json"
FRAUD_ALERT = "FraudAlertRaised"
THRESHOLD_REPORT = "ThresholdTransactionReported"
#: Cash over the counter is booked against the funding GL (the platform has no
#: vault account; opening deposits use the same outside-world account).
CASH_CLEARING = "GL_DEPOSIT_FUNDING"
CARD_CLEARING = "GL_CARD_CLEARING"
NPP_CLEARING = "GL_NPP_CLEARING"
#: AUSTRAC threshold transaction report: cash of AUD 10,000 or more (cents).
REPORT_THRESHOLD_CENTS = 1_000_000
#: Structuring deposits are drawn just under the threshold: AUD 8,500 to 9,900.
STRUCTURING_AMOUNTS_CENTS = (850_000, 990_000)
#: z of a one-sided 99.9% bound: the recall check fails by chance once in a thousand runs.
Z_999_ONE_SIDED = 3.0902
#: Tags as ordinary traffic carries them (`models.payments`): fraud looks the same.
CARD_TAGS = tuple(
    {"channel": "CARD", "category": category, "merchantMcc": mcc}
    for mcc, category in CARD_MERCHANTS
)
SWEEP_TAGS = {"channel": "INTERNAL", "category": "savings"}
NPP_IN_TAGS = {"channel": "NPP", "category": "transfer_in"}
CASH_TAGS = {"channel": "CASH", "category": "cash_deposit"}


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Campaign:
    """One fraud campaign's ground truth and outcome (kept by the twin only)."""

    campaign_id: str
    kind: str
    tenant: str
    started: float
    watch: tuple[str, ...] = ()
    planned: list[int] = field(default_factory=list)
    stopped: bool = False
    first_at: str | None = None
    detected_at: str | None = None
    detect_seconds: int | None = None
    payments: int = 0
    refused: int = 0
    alerted: int = 0
    moved_cents: int = 0
    lost_cents: int = 0
    prevented_cents: int = 0
    refused_cents: int = 0

    def stop(self) -> None:
        """Stopped by the credit union: whatever outgoing money is still planned is prevented."""
        if not self.stopped:
            self.stopped = True
            self.prevented_cents += sum(self.planned)
            self.planned.clear()


@dataclass(frozen=True, slots=True)
class MulePlan:
    """A mule network drawn up front: who pays the mule, how much, when it is forwarded."""

    mule: int
    receipts: list[float]
    delays: list[float]
    amounts: list[int]
    sources: list[int | None]
    onward: list[str]
    mule_ref: str


@dataclass(slots=True)
class FraudDay:
    """One tenant's fraud figures for one day (a row of fraud.csv)."""

    fraud_losses_cents: int = 0
    detected_cents: int = 0
    prevented_cents: int = 0
    refused_cents: int = 0
    alerts: int = 0
    reports: int = 0
    entries: int = 0
    fraud_payments: int = 0
    fraud_alerted: int = 0
    legit_alerted: int = 0
    campaigns_started: int = 0
    campaigns_detected: int = 0
    cash_reportable: int = 0
    takeovers_started: int = 0
    scams_started: int = 0


CSV_COLUMNS = (
    "date",
    "tenant_id",
    *(f.name for f in fields(FraudDay)),
    "true_positives",
    "false_negatives",
    "false_positives",
    "true_negatives",
)


# --------------------------------------------------------------------------- one tenant


class TenantFraud:
    """One tenant's campaigns, labels and score."""

    def __init__(self, world: TenantWorld, env: Any) -> None:
        self.world = world
        self.env = env
        self.params: FraudParams = world.behaviour.fraud
        self.rng = world.rng("fraud")
        self.cash_rng = world.rng("fraud-cash")
        faker = Faker("en_AU")
        faker.seed_instance(world.streams.child_seed(world.tenant_id, "fraud-counterparties"))
        faker.add_provider(AustralianBankingProvider)
        self.faker = faker
        #: commandId -> campaign, for the commands in flight (labels; never sent)
        self.labels: dict[str, Campaign] = {}
        #: labelled commands an alert named while in flight
        self.alerted: set[str] = set()
        #: account -> campaigns running on it (an alert there stops them)
        self.watching: dict[str, list[Campaign]] = {}
        self.campaigns: list[Campaign] = []
        self.today = FraudDay()
        self.rows: list[dict[str, Any]] = []
        self.totals = FraudDay()
        self.alerts_by_rule: Counter[str] = Counter()
        #: alerts on legitimate payments, by rule (what to tune when precision is low)
        self.false_alerts_by_rule: Counter[str] = Counter()
        self._last_fp_cause = ""
        #: occurredAt of the tenant's latest event (the chain is in time order)
        self.latest = ""
        self._entries_seen = 0
        self._numbers: Counter[str] = Counter()

    # ------------------------------------------------------------------ arrivals

    def multiplier(self, kind: str, day: date) -> float:
        """The product of every scripted surge's multiplier for `kind` on `day`."""
        prefix = KINDS[kind]
        factor = 1.0
        for surge in self.params.surges:
            if surge.start <= day <= surge.end:
                factor *= getattr(surge, f"{prefix}_multiplier")
        return factor

    def arrivals(self) -> Generator[Any, Any, None]:
        """Each day at midnight: draw the day's new campaigns and cash deposits, start them.

        Every random draw of a campaign (victims, amounts, gaps, payees) is
        made here, in a fixed order, so the run does not depend on how the
        campaigns' processes interleave.
        """
        env, world = self.env, self.world
        clock, scenario = world.clock, world.scenario
        day = clock.date_at(env.now)
        while day < scenario.end:
            start = clock.day_start(day)
            if start > env.now:
                yield env.timeout(start - env.now)
            length = clock.day_length(day)
            active = world.active_members()
            for kind, prefix in KINDS.items():
                rate = getattr(self.params, f"{prefix}_rate") * self.multiplier(kind, day)
                for _ in range(int(self.rng.poisson(rate * active / 365.25))):
                    self._start(kind, start, length)
            expected_cash = self.params.cash_deposit_rate * active / 365.25
            for _ in range(int(self.cash_rng.poisson(expected_cash))):
                self._start_cash(start)
            day += timedelta(days=1)

    def _member(self, exclude: Sequence[int] = ()) -> int | None:
        """A random active member with a transaction account (None if there is none)."""
        members = self.world.members
        active = np.flatnonzero(members.active)
        if len(active) == 0:
            return None
        accounts = self.world.transaction_accounts
        for _ in range(20):
            index = int(active[int(self.rng.integers(len(active)))])
            if accounts[index] is not None and index not in exclude:
                return index
        return None

    def _payee(self) -> str:
        """A fresh outside account (BSB and number), shaped like any counterparty."""
        return f"{self.faker.bsb()} {self.faker.account_number()}"

    def _lognormal_cents(self, mean: Any, cv: float, size: int) -> list[int]:
        sigma2 = math.log1p(cv * cv)
        mu = math.log(float(mean) * 100) - sigma2 / 2
        draws = self.rng.lognormal(mu, math.sqrt(sigma2), size)
        return [max(100, int(x)) for x in draws]

    def _start(self, kind: str, day_start: float, day_length: float) -> None:
        rng, params = self.rng, self.params
        # Card fraud happens around the clock; people are scammed while awake.
        if kind == CNP:
            offset = float(rng.uniform(0, day_length))
        elif kind == STRUCTURING:
            offset = float(rng.uniform(9, 16)) * 3600  # branch hours
        else:
            offset = float(rng.uniform(8, 22)) * 3600
        victim = self._member()
        if victim is None:
            return
        self._numbers[kind] += 1
        campaign = Campaign(
            f"{self.world.tenant_id}:{kind}:{self._numbers[kind]}", kind, self.world.tenant_id, 0.0
        )
        if kind == CNP:
            count = 1 + int(rng.poisson(params.cnp_extra_payments))
            gaps = rng.exponential(params.cnp_gap_minutes * 60, count).tolist()
            amounts = self._lognormal_cents(params.cnp_mean_amount, params.cnp_cv, count)
            tags = [CARD_TAGS[int(i)] for i in rng.integers(0, len(CARD_TAGS), count)]
            process = self._card_burst(campaign, victim, gaps, amounts, tags)
        elif kind == ATO:
            count = 1 + int(rng.poisson(params.ato_extra_payments))
            gaps = rng.exponential(params.ato_gap_minutes * 60, count).tolist()
            payees = [self._payee() for _ in range(count)]
            process = self._takeover(campaign, victim, gaps, payees)
        elif kind == APP:
            count = int(rng.integers(1, params.app_max_payments + 1))
            gaps = rng.exponential(params.app_gap_hours * 3600, count).tolist()
            gaps[0] = 0.0
            amounts = self._lognormal_cents(params.app_mean_amount, params.app_cv, count)
            process = self._push_payments(campaign, victim, gaps, amounts, self._payee())
        elif kind == MULE:
            process = self._mule(campaign, self._mule_plan(victim))
        else:
            count = 3 + int(rng.poisson(params.structuring_extra_deposits))
            low, high = STRUCTURING_AMOUNTS_CENTS
            amounts = (rng.integers(low // 10_000, high // 10_000 + 1, count) * 10_000).tolist()
            days = (1 + rng.integers(0, 3, count)).tolist()
            days[0] = 0
            process = self._structuring(campaign, victim, days, amounts, self._payee())
        self.env.process(self._after(day_start + offset, campaign, process))

    def _after(
        self, at: float, campaign: Campaign, process: Generator[Any, Any, None]
    ) -> Generator[Any, Any, None]:
        """Start `process` at simulated second `at`, registering its campaign then."""
        if at > self.env.now:
            yield self.env.timeout(at - self.env.now)
        campaign.started = self.env.now
        self.campaigns.append(campaign)
        self.today.campaigns_started += 1
        if campaign.kind == ATO:
            self.today.takeovers_started += 1
        elif campaign.kind == APP:
            self.today.scams_started += 1
        try:
            yield from process
        finally:
            for account in campaign.watch:
                running = self.watching.get(account)
                if running is not None and campaign in running:
                    running.remove(campaign)
                    if not running:
                        del self.watching[account]

    def _watch(self, campaign: Campaign, *accounts: str | None) -> None:
        known = [a for a in accounts if a is not None]
        campaign.watch = (*campaign.watch, *known)
        for account in known:
            self.watching.setdefault(account, []).append(campaign)

    # ------------------------------------------------------------------ campaigns

    def _card_burst(
        self,
        campaign: Campaign,
        victim: int,
        gaps: list[float],
        amounts: list[int],
        tags: list[dict[str, str]],
    ) -> Generator[Any, Any, None]:
        account = self.world.transaction_accounts[victim]
        assert account is not None
        self._watch(campaign, account)
        campaign.planned = list(amounts)
        declined = 0
        for gap, amount, tag in zip(gaps, amounts, tags, strict=True):
            if campaign.stopped or declined >= 2:
                return
            campaign.planned.pop(0)
            if self._pay(campaign, account, CARD_CLEARING, amount, tag, "Card purchase", True):
                declined = 0
            else:
                declined += 1
            yield self.env.timeout(gap)

    def _takeover(
        self, campaign: Campaign, victim: int, gaps: list[float], payees: list[str]
    ) -> Generator[Any, Any, None]:
        world, params = self.world, self.params
        account = world.transaction_accounts[victim]
        savings = world.savings_accounts[victim]
        assert account is not None
        self._watch(campaign, account, savings)
        shadow = world.shadow
        held = shadow.balance(account) + (shadow.balance(savings) if savings else 0)
        total = int(max(held, 0) * params.ato_drain_share)
        cap = int(params.ato_payment_cap * 100)
        each = min(cap, total // len(payees))
        if each <= 0:
            return
        campaign.planned = [each] * len(payees)
        if savings is not None and shadow.balance(savings) > 0:
            moved = shadow.balance(savings)
            self._pay(campaign, savings, account, moved, SWEEP_TAGS, "Transfer from savings", False)
            yield self.env.timeout(float(gaps[0]) / 2)
        for gap, payee in zip(gaps, payees, strict=True):
            if campaign.stopped:
                return
            amount = min(campaign.planned.pop(0), shadow.balance(account))
            if amount <= 0:
                return
            tags = {"channel": "NPP", "category": "transfer", "counterparty": payee}
            self._pay(campaign, account, NPP_CLEARING, amount, tags, "NPP payment", True)
            yield self.env.timeout(gap)

    def _push_payments(
        self, campaign: Campaign, victim: int, gaps: list[float], amounts: list[int], payee: str
    ) -> Generator[Any, Any, None]:
        world = self.world
        account = world.transaction_accounts[victim]
        savings = world.savings_accounts[victim]
        assert account is not None
        self._watch(campaign, account, savings)
        shadow = world.shadow
        campaign.planned = list(amounts)
        tags = {"channel": "NPP", "category": "transfer", "counterparty": payee}
        for gap, amount in zip(gaps, amounts, strict=True):
            if gap > 0:
                yield self.env.timeout(gap)
            if campaign.stopped:
                return
            campaign.planned.pop(0)
            short = amount - shadow.balance(account)
            if short > 0 and savings is not None and shadow.balance(savings) > 0:
                top_up = min(short, shadow.balance(savings))
                narrative = "Transfer from savings"
                self._pay(campaign, savings, account, top_up, SWEEP_TAGS, narrative, False)
            paid = min(amount, shadow.balance(account))
            if paid <= 0:
                return
            self._pay(campaign, account, NPP_CLEARING, paid, tags, "NPP payment", True)

    def _mule_plan(self, mule: int) -> MulePlan:
        """Draw a mule network: victims (members or not), amounts, receipt and forward times."""
        rng, params = self.rng, self.params
        victims = 1 + int(rng.poisson(params.mule_extra_victims))
        members = [bool(rng.random() < params.mule_member_victim_share) for _ in range(victims)]
        return MulePlan(
            mule=mule,
            receipts=sorted(rng.uniform(0, 48 * 3600, victims).tolist()),
            delays=rng.exponential(params.mule_forward_hours * 3600, victims).tolist(),
            amounts=self._lognormal_cents(params.mule_victim_mean_amount, 1.0, victims),
            sources=[self._member(exclude=(mule,)) if inside else None for inside in members],
            onward=[self._payee() for _ in range(victims)],
            mule_ref=self._payee(),
        )

    def _mule(self, campaign: Campaign, plan: MulePlan) -> Generator[Any, Any, None]:
        params, world = self.params, self.world
        mule_account = world.transaction_accounts[plan.mule]
        assert mule_account is not None
        receipts, delays, amounts = plan.receipts, plan.delays, plan.amounts
        sources, onward, mule_ref = plan.sources, plan.onward, plan.mule_ref
        victims = len(amounts)
        self._watch(campaign, mule_account)
        share = params.mule_forward_share
        campaign.planned = [int(a * share) for a in amounts]
        # (time, order, step): receipts first at equal times; forwards follow their receipt
        steps = sorted(
            [(receipts[i], 0, i) for i in range(victims)]
            + [(receipts[i] + delays[i], 1, i) for i in range(victims)]
        )
        received = [0] * victims
        started = self.env.now
        for at, kind, i in steps:
            if started + at > self.env.now:
                yield self.env.timeout(started + at - self.env.now)
            if campaign.stopped:
                return
            if kind == 0:
                source = world.transaction_accounts[sources[i]] if sources[i] is not None else None
                if source is not None:
                    self._watch(campaign, source)
                    amount = min(amounts[i], world.shadow.balance(source))
                    tags = {"channel": "NPP", "category": "transfer", "counterparty": mule_ref}
                    if amount > 0 and self._pay(
                        campaign, source, mule_account, amount, tags, "NPP payment", False
                    ):
                        received[i] = amount
                elif self._pay(
                    campaign,
                    NPP_CLEARING,
                    mule_account,
                    amounts[i],
                    NPP_IN_TAGS,
                    "NPP payment received",
                    False,
                ):
                    received[i] = amounts[i]
            else:
                planned = campaign.planned
                planned_forward = int(amounts[i] * share)
                if planned_forward in planned:
                    planned.remove(planned_forward)
                forward = min(int(received[i] * share), world.shadow.balance(mule_account))
                if forward > 0:
                    tags = {"channel": "NPP", "category": "transfer", "counterparty": onward[i]}
                    narrative = "NPP payment"
                    self._pay(campaign, mule_account, NPP_CLEARING, forward, tags, narrative, True)

    def _structuring(
        self, campaign: Campaign, member: int, days: list[int], amounts: list[int], payee: str
    ) -> Generator[Any, Any, None]:
        world = self.world
        account = world.transaction_accounts[member]
        assert account is not None
        self._watch(campaign, account)
        for gap_days, amount in zip(days, amounts, strict=True):
            if gap_days:
                yield self.env.timeout(gap_days * 86400)
            if campaign.stopped:
                return
            self._cash_in(campaign, account, amount)
        yield self.env.timeout(6 * 3600)
        if campaign.stopped:
            return
        out = min(sum(amounts), world.shadow.balance(account))
        if out > 0:
            tags = {"channel": "NPP", "category": "transfer", "counterparty": payee}
            self._pay(campaign, account, NPP_CLEARING, out, tags, "NPP payment", False)

    def _start_cash(self, day_start: float) -> None:
        """An ordinary member's cash deposit at a branch (not fraud)."""
        rng, params = self.cash_rng, self.params
        offset = float(rng.uniform(9, 16)) * 3600
        sigma2 = math.log1p(params.cash_cv**2)
        mu = math.log(float(params.cash_mean_amount)) - sigma2 / 2
        dollars = max(5, int(rng.lognormal(mu, math.sqrt(sigma2))))
        members = self.world.members
        active = np.flatnonzero(members.active)
        if len(active) == 0:
            return
        member = int(active[int(rng.integers(len(active)))])
        self.env.process(self._cash_later(day_start + offset, member, dollars * 100))

    def _cash_later(self, at: float, member: int, amount: int) -> Generator[Any, Any, None]:
        if at > self.env.now:
            yield self.env.timeout(at - self.env.now)
        account = self.world.transaction_accounts[member]
        if account is not None and self.world.members.active[member]:
            self._cash_in(None, account, amount)

    def _cash_in(self, campaign: Campaign | None, account: str, amount: int) -> None:
        narrative = "Cash deposit"
        accepted = self._pay(campaign, CASH_CLEARING, account, amount, CASH_TAGS, narrative, False)
        if accepted and amount >= REPORT_THRESHOLD_CENTS:
            self.today.cash_reportable += 1

    # ------------------------------------------------------------------ one payment

    def _pay(
        self,
        campaign: Campaign | None,
        source: str,
        sink: str,
        amount: int,
        tags: dict[str, str],
        narrative: str,
        loss: bool,
    ) -> bool:
        """Move `amount` from `source` to `sink` by one PostEntry; True if accepted.

        The shadow book follows the platform's answer, and the refusal the
        shadow book predicts is counted like `models.payments` counts it.
        """
        world, env = self.world, self.env
        timestamp = world.clock.iso_at(env.now)
        if self.latest and _before(timestamp, self.latest):
            # The hour's ordinary payments were submitted (and stamped) when the
            # hour began; the chain stays in time order, so a fraudulent payment
            # made during the hour is stamped no earlier than the latest event.
            timestamp = self.latest
        day = date.fromisoformat(timestamp[:10])
        legs = [Leg(source, "CREDIT", amount), Leg(sink, "DEBIT", amount)]
        envelope = world.ids.envelope(
            "PostEntry",
            timestamp,
            PostEntry(day, day, world.scenario.currency, legs, narrative, tags, world.metadata),
        )
        shadow = world.shadow
        expected = source.startswith("GL_") or shadow.balance(source) >= amount
        command_id = envelope.command_id
        if campaign is not None:
            self.labels[command_id] = campaign
        try:
            result = world.bus.submit(world.tenant_id, [envelope])[0]
        finally:
            self.labels.pop(command_id, None)
        accepted = result.accepted
        totals = world.totals
        if accepted:
            shadow.transfer(sink, source, amount)
        if accepted != expected:
            totals.prediction_misses += 1
        elif not accepted:
            totals.predicted_rejections += 1
        if campaign is None:
            return accepted
        today = self.today
        if not accepted:
            campaign.refused += 1
            campaign.refused_cents += amount
            today.refused_cents += amount
            return False
        campaign.payments += 1
        campaign.moved_cents += amount
        today.fraud_payments += 1
        if campaign.first_at is None:
            campaign.first_at = timestamp
        if loss:
            campaign.lost_cents += amount
            today.fraud_losses_cents += amount
        if command_id in self.alerted:
            self.alerted.discard(command_id)
            campaign.alerted += 1
            today.fraud_alerted += 1
            today.detected_cents += amount
        return True

    # ------------------------------------------------------------------ the event stream

    def on_alert(self, event: Any) -> None:
        """A FraudAlertRaised: score it against the labels; stop the campaigns it exposes."""
        payload = event.payload
        cause = event.causation_id
        self.today.alerts += 1
        rule = str(_field(payload, "rule", "rule"))
        self.alerts_by_rule[rule] += 1
        labelled = self.labels.get(cause)
        if labelled is not None:
            self.alerted.add(cause)
        else:
            self.false_alerts_by_rule[rule] += 1
        if labelled is None and cause != self._last_fp_cause:
            self._last_fp_cause = cause  # an entry's alerts arrive together: count it once
            self.today.legit_alerted += 1
        exposed = list(self.watching.get(_field(payload, "accountId", "account_id"), ()))
        if labelled is not None and labelled not in exposed:
            exposed.append(labelled)
        for campaign in exposed:
            if campaign.detected_at is not None:
                continue
            campaign.detected_at = event.occurred_at
            first = campaign.first_at or (event.occurred_at if campaign is labelled else None)
            if first is not None:
                campaign.detect_seconds = max(0, _seconds_between(first, event.occurred_at))
            before = campaign.prevented_cents
            campaign.stop()
            self.today.prevented_cents += campaign.prevented_cents - before
            self.today.campaigns_detected += 1

    def on_report(self) -> None:
        """A ThresholdTransactionReported (counted; checked against the cash sent)."""
        self.today.reports += 1

    # ------------------------------------------------------------------ day close and finish

    def close_day(self, day: date) -> FraudDay:
        """Turn today's counters into a fraud.csv row and start a new day."""
        world = self.world
        seen = world.totals.entries + world.today.entries
        today = self.today
        today.entries = seen - self._entries_seen
        self._entries_seen = seen
        row: dict[str, Any] = {"date": day.isoformat(), "tenant_id": world.tenant_id}
        totals = self.totals
        for item in fields(FraudDay):
            value = getattr(today, item.name)
            row[item.name] = value
            setattr(totals, item.name, getattr(totals, item.name) + value)
        tp = today.fraud_alerted
        row["true_positives"] = tp
        row["false_negatives"] = today.fraud_payments - tp
        row["false_positives"] = today.legit_alerted
        row["true_negatives"] = today.entries - today.fraud_payments - today.legit_alerted
        self.rows.append(row)
        self.today = FraudDay()
        return today

    def summary(self) -> dict[str, Any]:
        """This tenant's totals in the `fraud_summary.json` block shape."""
        return summary_block([self])


# --------------------------------------------------------------------------- scoring


def confusion(totals: FraudDay) -> dict[str, int]:
    """The per-payment confusion matrix of some totals: tp, fn, fp, tn."""
    tp = totals.fraud_alerted
    return {
        "tp": tp,
        "fn": totals.fraud_payments - tp,
        "fp": totals.legit_alerted,
        "tn": totals.entries - totals.fraud_payments - totals.legit_alerted,
    }


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 6 places, or None when undefined."""
    return round(numerator / denominator, 6) if denominator else None


def wilson_upper(successes: int, trials: int, z: float = Z_999_ONE_SIDED) -> float:
    """Upper Wilson score bound of a proportion (1.0 with no trials)."""
    if trials == 0:
        return 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return min(1.0, (centre + spread) / denominator)


def summary_block(books: Sequence[TenantFraud]) -> dict[str, Any]:
    """Totals, confusion matrix, campaigns by kind and time to detect over some tenants."""
    totals = FraudDay()
    rules: Counter[str] = Counter()
    false_rules: Counter[str] = Counter()
    campaigns: list[Campaign] = []
    for book in books:
        for item in fields(FraudDay):
            setattr(totals, item.name, getattr(totals, item.name) + getattr(book.totals, item.name))
        rules.update(book.alerts_by_rule)
        false_rules.update(book.false_alerts_by_rule)
        campaigns += book.campaigns
    matrix = confusion(totals)
    detected = [c for c in campaigns if c.detected_at is not None]
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        mine = [c for c in campaigns if c.kind == kind]
        found = [c for c in mine if c.detected_at is not None]
        by_kind[kind] = {
            "started": len(mine),
            "detected": len(found),
            "recall": ratio(len(found), len(mine)),
            "lost_cents": sum(c.lost_cents for c in mine),
            "prevented_cents": sum(c.prevented_cents for c in mine),
            "median_detect_s": _median([c.detect_seconds for c in found]),
        }
    delays = [c.detect_seconds for c in detected if c.detect_seconds is not None]
    return {
        "payments": totals.entries,
        "confusion": matrix,
        "precision": ratio(matrix["tp"], matrix["tp"] + matrix["fp"]),
        "recall": ratio(matrix["tp"], matrix["tp"] + matrix["fn"]),
        "campaigns": {
            "started": len(campaigns),
            "detected": len(detected),
            "recall": ratio(len(detected), len(campaigns)),
            "by_kind": by_kind,
        },
        "time_to_detect_s": {
            "count": len(delays),
            "median": _median(delays),
            "mean": round(statistics.fmean(delays), 1) if delays else None,
            "max": max(delays) if delays else None,
        },
        "fraud_losses_cents": totals.fraud_losses_cents,
        "detected_cents": totals.detected_cents,
        "prevented_cents": totals.prevented_cents,
        "refused_cents": totals.refused_cents,
        "alerts": totals.alerts,
        "alerts_by_rule": dict(sorted(rules.items())),
        "false_alerts_by_rule": dict(sorted(false_rules.items())),
        "reports": totals.reports,
        "cash_reportable": totals.cash_reportable,
    }


def _field(payload: Any, camel: str, snake: str) -> Any:
    """A payload field from a live Struct or a dict read back from JSON."""
    if isinstance(payload, dict):
        return payload.get(camel)
    return getattr(payload, snake, None)


def _median(values: Sequence[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def _before(timestamp: str, other: str) -> bool:
    """Whether ISO 8601 `timestamp` is strictly earlier than `other`."""
    if timestamp[19:] == other[19:] and len(timestamp) == len(other):
        return timestamp < other  # same offset: the strings order like the moments
    return datetime.fromisoformat(timestamp) < datetime.fromisoformat(other)


def _seconds_between(first: str, then: str) -> int:
    return int((datetime.fromisoformat(then) - datetime.fromisoformat(first)).total_seconds())


DEFINITIONS = {
    "payments": "accepted entries (every PostEntry the platform booked)",
    "confusion": "per payment: tp = fraudulent and named by an alert; fn = fraudulent, "
    "not named; fp = legitimate, named; tn = legitimate, not named",
    "campaigns": "detected = an alert named one of its payments or accounts while it ran; "
    "the credit union then freezes the account and the campaign stops",
    "time_to_detect_s": "first alert's occurredAt minus the campaign's first fraudulent payment",
    "fraud_losses_cents": "fraudulent money that left the credit union (card spend, NPP out)",
    "detected_cents": "amounts of fraudulent payments an alert named",
    "prevented_cents": "outgoing payments a stopped campaign still planned",
    "refused_cents": "fraudulent payments the platform refused (insufficient funds)",
    "false_alerts_by_rule": "alerts that named a legitimate payment, by rule",
    "reports": "ThresholdTransactionReported events (AUSTRAC TTR, cash >= AUD 10,000)",
    "cash_reportable": "accepted cash transactions of AUD 10,000 or more the twin sent",
}


# --------------------------------------------------------------------------- the seam


class FraudModel:
    """Every tenant's fraud, the stream listener and the run's outputs."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.books = {tenant: TenantFraud(world, ctx.env) for tenant, world in ctx.worlds.items()}

    def on_events(self, tenant_id: str, events: list[SealedEvent]) -> None:
        """Subscribed to the platform's stream: picks out alerts and reports."""
        book = self.books.get(tenant_id)
        if book is None or not events:
            return
        book.latest = events[-1].event.occurred_at
        for sealed in events:
            event = sealed.event
            event_type = event.event_type
            if event_type == FRAUD_ALERT:
                book.on_alert(event)
            elif event_type == THRESHOLD_REPORT:
                book.on_report()

    def day_close(self, day: date) -> None:
        for tenant, book in self.books.items():
            row = book.close_day(day)
            record = self.ctx.record
            record("fraud_losses_cents", tenant, day, row.fraud_losses_cents)
            record("fraud_detected_cents", tenant, day, row.detected_cents)
            record("fraud_prevented_cents", tenant, day, row.prevented_cents)
            record("fraud_alerts", tenant, day, row.alerts)
            record("fraud_true_positives", tenant, day, row.fraud_alerted)
            record("fraud_false_negatives", tenant, day, row.fraud_payments - row.fraud_alerted)
            record("fraud_false_positives", tenant, day, row.legit_alerted)
            record("fraud_campaigns", tenant, day, row.campaigns_started)
            record("fraud_campaigns_detected", tenant, day, row.campaigns_detected)
            # so that detected / (detected + undetected) over a span is detected / started
            undetected = row.campaigns_started - row.campaigns_detected
            record("fraud_campaigns_undetected", tenant, day, undetected)
            record("fraud_takeovers", tenant, day, row.takeovers_started)
            record("fraud_scams", tenant, day, row.scams_started)

    def summary(self) -> dict[str, Any]:
        """The `fraud_summary.json` content (and the report's `summary["fraud"]`)."""
        return {
            "definitions": DEFINITIONS,
            "recall_floor": {t: b.params.recall_floor for t, b in self.books.items()},
            "all": summary_block(list(self.books.values())),
            "tenants": {tenant: book.summary() for tenant, book in sorted(self.books.items())},
        }

    def finish(self, out: Path) -> list[dict[str, Any]]:
        """Write fraud.csv and fraud_summary.json; return expected-vs-actual items."""
        rows = sorted(
            (row for book in self.books.values() for row in book.rows),
            key=lambda row: (row["date"], row["tenant_id"]),
        )
        with (out / FRAUD_FILE).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        summary = self.summary()
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return self.expectations(summary)

    def expectations(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        everything = summary["all"]
        campaigns = everything["campaigns"]
        floor = min((b.params.recall_floor for b in self.books.values()), default=0.0)
        started, detected = campaigns["started"], campaigns["detected"]
        upper = wilson_upper(detected, started)
        items.append(
            {
                "name": "fraud campaigns detected by the platform's monitor (share)",
                "tenant": "all",
                "expected": f">= {floor}",
                "actual": campaigns["recall"],
                "passed": upper >= floor,
                "detail": f"{detected} of {started} campaigns detected; 99.9% upper bound "
                f"{upper:.3f} against the floor {floor}"
                if started
                else "no fraud campaign started: nothing to detect",
            }
        )
        for tenant, block in summary["tenants"].items():
            items.append(
                {
                    "name": "cash of AUD 10,000 or more reported to AUSTRAC (TTR events)",
                    "tenant": tenant,
                    "expected": block["cash_reportable"],
                    "actual": block["reports"],
                    "passed": block["cash_reportable"] == block["reports"],
                    "detail": "accepted cash transactions >= AUD 10,000 the twin sent vs "
                    "ThresholdTransactionReported events",
                }
            )
        matrix = everything["confusion"]
        cells = sum(matrix.values())
        items.append(
            {
                "name": "fraud confusion matrix covers every accepted payment once",
                "tenant": "all",
                "expected": everything["payments"],
                "actual": cells,
                "passed": cells == everything["payments"] and min(matrix.values()) >= 0,
                "detail": "tp {tp}, fn {fn}, fp {fp}, tn {tn}".format(**matrix),
            }
        )
        return items


def attach(ctx: RunContext) -> None:
    """Start every tenant's fraud campaigns and cash, and score the platform's monitor.

    The model is reachable afterwards as the owner of its finish hook
    (`FraudModel.finish`), which is how tests read the ground truth.
    """
    model = FraudModel(ctx)
    ctx.bus.target.subscribe(model.on_events)
    for book in model.books.values():
        ctx.env.process(book.arrivals())
    ctx.at_day_close(model.day_close)
    ctx.at_finish(model.finish)
