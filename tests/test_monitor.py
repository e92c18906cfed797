"""The platform's transaction monitor (`turingcore.monitor`): rules, bounds, and the chain.

The rules are exercised through `TransactionMonitor.screen` on hand-made
PostEntry payloads, each at the edge where it must start (or stop) firing;
then on the embedded platform, where alerts and reports must be sealed into
the tenant's chain as events of the command that caused them, so every
streaming invariant and the replay still hold.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import msgspec
import numpy as np
import pytest

from analysis.invariants import InvariantSuite
from sim.target import EmbeddedTarget
from tests.platform_builders import Commands
from turingcore.contract import Envelope, Leg, PostEntry
from turingcore.domain import Pending, PlatformState, TenantState, evolve
from turingcore.events import verify_chain
from turingcore.monitor import (
    FRAUD_ALERT_RAISED,
    MONITOR_EVENT_TYPES,
    NEW_PAYEE_LARGE,
    STRUCTURING,
    THRESHOLD_TRANSACTION_REPORTED,
    VELOCITY,
    MonitorConfig,
    TransactionMonitor,
    epoch_seconds,
    iso_after,
    later_than,
    previous_hour,
    window_breached,
)

DAY = date(2025, 7, 1)
MEMBER = "0a1b2c3d-0000-4000-a000-000000000001"
OTHER = "0a1b2c3d-0000-4000-a000-000000000002"
PAYEE = "062-000 123456789"


def at(day: int, time: str, offset: str = "+10:00") -> str:
    """A command timestamp `day` days after 2025-07-01."""
    return f"{(DAY + timedelta(days=day)).isoformat()}T{time}{offset}"


def entry(legs: list[tuple[str, str, int]], tags: dict[str, str] | None) -> PostEntry:
    return PostEntry(DAY, DAY, "AUD", [Leg(*leg) for leg in legs], "test", tags)


def card(amount: int = 2_500, account: str = MEMBER) -> PostEntry:
    """A card spend: the member's account is credited (money leaves it)."""
    return entry(
        [(account, "CREDIT", amount), ("GL_CARD_CLEARING", "DEBIT", amount)], {"channel": "CARD"}
    )


def npp_out(amount: int, payee: str | None = PAYEE, account: str = MEMBER) -> PostEntry:
    tags = {"channel": "NPP", "category": "transfer"}
    if payee is not None:
        tags["counterparty"] = payee
    return entry([(account, "CREDIT", amount), ("GL_NPP_CLEARING", "DEBIT", amount)], tags)


def cash(amount: int, deposit: bool = True, account: str = MEMBER) -> PostEntry:
    member, gl = ("DEBIT", "CREDIT") if deposit else ("CREDIT", "DEBIT")
    return entry(
        [(account, member, amount), ("GL_DEPOSIT_FUNDING", gl, amount)], {"channel": "CASH"}
    )


class Feed:
    """Feeds entries to one monitor the way the shell does; returns what each one emitted."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.monitor = TransactionMonitor(lambda variant, n: f"{variant}-{n}", Pending, config)
        self.entries = 0

    def __call__(self, timestamp: str, payload: PostEntry) -> list[Any]:
        self.entries += 1
        decision = [Pending("EntryPosted", f"entry-{self.entries}", None)]
        self.monitor.screen(timestamp, payload, decision)
        return [pending.payload for pending in decision[1:]]

    def alerts(self, items: list[tuple[str, PostEntry]]) -> list[Any]:
        """Everything emitted for a sequence of (timestamp, entry)."""
        return [found for timestamp, payload in items for found in self(timestamp, payload)]


# --------------------------------------------------------------------------- velocity


def test_card_velocity_fires_on_the_sixth_card_payment() -> None:
    """Five card payments in an hour are tolerated; the sixth raises one VELOCITY alert."""
    feed = Feed()
    assert feed.alerts([(at(0, f"09:0{i}:00"), card()) for i in range(5)]) == []
    (alert,) = feed(at(0, "09:30:00"), card(7_700))
    assert (alert.rule, alert.channel, alert.account_id) == (VELOCITY, "CARD", MEMBER)
    assert (alert.observed, alert.amount_cents, alert.entry_id) == (6, 7_700, "entry-6")
    assert alert.alert_id == "c-1"


def test_card_velocity_counts_this_clock_hour_and_the_one_before_only() -> None:
    """Three payments at 09:5x and three at 10:0x alert; with an empty hour between, not."""
    adjacent = Feed()
    items = [(at(0, f"09:5{i}:00"), card()) for i in range(3)]
    items += [(at(0, f"10:0{i}:00"), card()) for i in range(3)]
    assert [a.rule for a in adjacent.alerts(items)] == [VELOCITY]
    apart = Feed()
    items = [(at(0, f"08:5{i}:00"), card()) for i in range(3)]
    items += [(at(0, f"10:0{i}:00"), card()) for i in range(3)]
    assert apart.alerts(items) == []


def test_card_velocity_is_per_account() -> None:
    """Six card payments shared by two accounts raise nothing."""
    feed = Feed()
    items = [(at(0, f"09:0{i}:00"), card(account=MEMBER if i % 2 else OTHER)) for i in range(6)]
    assert feed.alerts(items) == []


def test_card_velocity_is_quiet_for_the_cooldown_then_alerts_again() -> None:
    """After an alert the account is quiet for a day; a burst a day later alerts again."""
    feed = Feed()
    first = feed.alerts([(at(0, f"09:0{i}:00"), card()) for i in range(6)])
    assert len(first) == 1
    assert feed.alerts([(at(0, f"11:0{i}:00"), card()) for i in range(12)]) == []
    again = feed.alerts([(at(1, f"09:05:0{i}"), card()) for i in range(6)])
    assert [a.rule for a in again] == [VELOCITY]


def test_card_refunds_and_other_channels_are_not_counted() -> None:
    """Refunds (money into the member's account) and BPAY bills never raise card velocity."""
    feed = Feed()
    refund = entry(
        [(MEMBER, "DEBIT", 500), ("GL_CARD_CLEARING", "CREDIT", 500)], {"channel": "CARD"}
    )
    bpay = entry([(MEMBER, "CREDIT", 500), ("GL_BPAY_CLEARING", "DEBIT", 500)], {"channel": "BPAY"})
    untagged = entry([(MEMBER, "CREDIT", 500), ("GL_CARD_CLEARING", "DEBIT", 500)], None)
    items = [(at(0, f"09:0{i}:00"), kind) for i in range(8) for kind in (refund, bpay, untagged)]
    assert feed.alerts(items) == []
    assert feed.monitor.size() == 0


def test_npp_velocity_window_is_inclusive_at_its_edge() -> None:
    """A fourth NPP payment exactly 24 h after the first alerts; one second later it does not."""
    for last, expected in (("09:00:00", [VELOCITY]), ("09:00:01", [])):
        feed = Feed()
        items = [(at(0, f"{9 + i:02d}:00:00"), npp_out(1_000, f"payee-{i}")) for i in range(3)]
        items.append((at(1, last), npp_out(1_000, "payee-3")))
        assert [a.rule for a in feed.alerts(items)] == expected, last


# --------------------------------------------------------------------------- new payee


def test_new_payee_large_fires_at_the_threshold_for_new_payees_only() -> None:
    """AUD 5,000.00 to a new payee alerts, AUD 4,999.99 does not, a known payee does not."""
    feed = Feed()
    assert feed(at(0, "09:00:00"), npp_out(499_999, "payee-a")) == []
    (alert,) = feed(at(1, "09:00:00"), npp_out(500_000, "payee-b"))
    assert (alert.rule, alert.counterparty, alert.amount_cents) == (
        NEW_PAYEE_LARGE,
        "payee-b",
        500_000,
    )
    assert feed(at(2, "09:00:00"), npp_out(900_000, "payee-b")) == []
    assert feed(at(3, "09:00:00"), npp_out(900_000, "payee-a")) == []


def test_a_payee_paid_longer_ago_than_remembered_is_new_again() -> None:
    """With a memory of 3 payees, the fourth payee back counts as new."""
    feed = Feed(MonitorConfig(payees_remembered=3, npp_velocity_limit=50))
    for i, payee in enumerate(("old", "p1", "p2")):
        feed(at(i, "09:00:00"), npp_out(100, payee))
    assert feed(at(5, "09:00:00"), npp_out(600_000, "old")) == []  # still remembered
    feed(at(6, "09:00:00"), npp_out(100, "p3"))
    feed(at(7, "09:00:00"), npp_out(100, "p4"))
    feed(at(8, "09:00:00"), npp_out(100, "p5"))
    assert [a.rule for a in feed(at(9, "09:00:00"), npp_out(600_000, "old"))] == [NEW_PAYEE_LARGE]


def test_npp_without_counterparty_or_into_the_account_raises_nothing() -> None:
    """No counterparty: no payee rule; money in over NPP: no outgoing rule at all."""
    feed = Feed()
    assert feed(at(0, "09:00:00"), npp_out(5_000_000, payee=None)) == []
    money_in = entry(
        [(MEMBER, "DEBIT", 5_000_000), ("GL_NPP_CLEARING", "CREDIT", 5_000_000)],
        {"channel": "NPP", "counterparty": PAYEE},
    )
    assert feed.alerts([(at(0, f"10:0{i}:00"), money_in) for i in range(8)]) == []


# --------------------------------------------------------------------------- cash


def test_structuring_three_deposits_just_under_within_seven_days() -> None:
    """Deposits at the floor, just under AUD 10,000 and again 7 days on raise STRUCTURING."""
    for third, expected in (("09:00:00", [STRUCTURING]), ("09:00:01", [])):
        feed = Feed()
        items = [
            (at(0, "09:00:00"), cash(800_000)),
            (at(3, "09:00:00"), cash(999_999)),
            (at(7, third), cash(850_000)),
        ]
        found = feed.alerts(items)
        assert [a.rule for a in found] == expected, third
        assert all(a.observed == 3 and a.channel == "CASH" for a in found)


def test_cash_below_the_band_or_withdrawn_does_not_count_as_structuring() -> None:
    """AUD 7,999.99 deposits and just-under withdrawals never add up to structuring."""
    feed = Feed()
    items = [(at(0, f"1{i}:00:00"), cash(799_999)) for i in range(5)]
    items += [(at(1, f"1{i}:00:00"), cash(950_000, deposit=False)) for i in range(5)]
    assert feed.alerts(items) == []


def test_threshold_transaction_reports_cash_of_ten_thousand_or_more() -> None:
    """Cash of AUD 10,000.00 or more, in or out, is reported; AUD 9,999.99 and NPP are not."""
    feed = Feed()
    (deposit,) = feed(at(0, "10:00:00"), cash(1_000_000))
    (withdrawal,) = feed(at(0, "11:00:00"), cash(1_500_000, deposit=False))
    assert (deposit.direction, deposit.amount_cents, deposit.entry_id) == (
        "DEPOSIT",
        1_000_000,
        "entry-1",
    )
    assert (withdrawal.direction, withdrawal.threshold_cents) == ("WITHDRAWAL", 1_000_000)
    assert deposit.report_id == "d-1"
    assert feed(at(0, "12:00:00"), cash(999_999)) == []
    assert feed(at(0, "13:00:00"), npp_out(2_000_000, payee=None)) == []
    assert feed.monitor.alerts == 0
    assert feed.monitor.reports == 2


# --------------------------------------------------------------------------- determinism, bounds


def _traffic(seed: int, days: int, accounts: int) -> list[tuple[str, PostEntry]]:
    """A day-ordered random mix of card, NPP and cash entries over `accounts` accounts."""
    rng = np.random.default_rng(seed)
    ids = [f"0a1b2c3d-0000-4000-a000-{i:012x}" for i in range(accounts)]
    items = []
    for day in range(days):
        for second in sorted(rng.integers(0, 86400, accounts * 4).tolist()):
            account = ids[int(rng.integers(accounts))]
            stamp_ = at(day, f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}")
            kind = rng.random()
            if kind < 0.8:
                payload = card(int(rng.integers(100, 20_000)), account)
            elif kind < 0.97:
                payee = f"payee-{int(rng.integers(40))}"
                payload = npp_out(int(rng.integers(1_000, 900_000)), payee, account)
            else:
                payload = cash(int(rng.integers(500_000, 1_200_000)), account=account)
            items.append((stamp_, payload))
    return items


def test_the_monitor_is_deterministic() -> None:
    """The same entries in the same order give byte-identical findings, ids included."""
    items = _traffic(3, 10, 30)
    first, second = Feed().alerts(items), Feed().alerts(items)
    assert first, "the traffic should trip some rule"
    assert [json.dumps(str(a)) for a in first] == [json.dumps(str(a)) for a in second]


def test_monitor_memory_stays_flat_as_payments_accumulate() -> None:
    """State is bounded per account: once the payee memories fill, it stops growing."""
    accounts = 50
    items = _traffic(5, 60, accounts)
    feed = Feed()
    sizes = []
    for number, (timestamp, payload) in enumerate(items, 1):
        feed(timestamp, payload)
        if number in (len(items) * 2 // 3, len(items)):
            sizes.append(feed.monitor.size())
    config = feed.monitor.config
    per_account = 4 + config.npp_velocity_limit + config.payees_remembered + 3 + 3
    assert sizes[1] <= accounts * per_account
    assert sizes[1] <= sizes[0] * 1.1


def test_pure_helpers_at_their_edges() -> None:
    """Windows are inclusive; times compare across offsets; DST and junk are handled."""
    assert window_breached([0, 10, 20], 2, 20)
    assert not window_breached([0, 10, 21], 2, 20)
    assert window_breached([21, 0, 10, 20], 2, 20)  # any order
    assert later_than("2025-07-01T10:00:00+10:00", "2025-07-01T10:00:00+10:00")
    assert not later_than("2025-07-01T09:59:59+10:00", "2025-07-01T10:00:00+10:00")
    assert later_than("2025-10-05T03:00:00+11:00", "2025-10-05T01:30:00+10:00")
    assert iso_after("2025-07-01T09:00:00+10:00", 86400) == "2025-07-02T09:00:00+10:00"
    assert previous_hour("2025-07-01T00:10:00+10:00") == "2025-06-30T23"
    assert epoch_seconds("not a time") is None
    assert epoch_seconds("2025-07-01T00:00:00") == epoch_seconds("2025-07-01T10:00:00+10:00")


def test_config_refuses_nonsense() -> None:
    """A floor at or above the reporting threshold, or a zero limit, is refused."""
    with pytest.raises(ValueError, match="structuring_floor"):
        MonitorConfig(structuring_floor_cents=1_000_000)
    with pytest.raises(ValueError, match="velocity limits"):
        MonitorConfig(card_velocity_limit=0)


# --------------------------------------------------------------------------- on the platform


class Wired:
    """A tenant on the embedded platform, with the streaming invariant suite listening."""

    def __init__(self) -> None:
        self.target = EmbeddedTarget()
        self.suite = InvariantSuite(idempotency_probes_per_day=0)
        self.events: list[Any] = []
        self.target.subscribe(self.suite.on_events)
        self.target.subscribe(lambda tenant, events: self.events.extend(events))
        self.cmd = Commands("cu-m")
        self.send(self.cmd.create_tenant("CU_M"), self.cmd.product("SAVER"))
        self.send(self.cmd.customer(1))
        customer = self.target.customers("cu-m")["customers"][0]["customerId"]
        self.send(self.cmd.open_account(customer, "SAVER", 10**8))
        self.account = self.target.accounts("cu-m")["accounts"][0]["accountId"]

    def send(self, *envelopes: Envelope) -> list[Any]:
        results = self.target.submit("cu-m", list(envelopes))
        self.suite.on_results("cu-m", envelopes, results)
        assert all(result.accepted for result in results), results
        return results

    def post(self, timestamp: str, payload: PostEntry) -> Envelope:
        return self.cmd.envelope("PostEntry", payload, timestamp=timestamp)


def test_alerts_and_reports_are_events_of_the_command_that_caused_them() -> None:
    """Findings are sealed in the command's own seq range, and every invariant holds."""
    wired = Wired()
    burst = [wired.post(at(0, f"09:0{i}:00"), card(1_000, wired.account)) for i in range(6)]
    deposit = wired.post(at(0, "12:00:00"), cash(1_200_000, account=wired.account))
    results = wired.send(*burst, deposit)
    by_seq = {sealed.event.seq: sealed.event for sealed in wired.events}
    for envelope, result in zip([*burst, deposit], results, strict=True):
        caused = [by_seq[seq] for seq in range(result.first_seq, result.last_seq + 1)]
        assert {e.causation_id for e in caused} == {envelope.command_id}
    last_card = [by_seq[s] for s in range(results[5].first_seq, results[5].last_seq + 1)]
    assert [e.event_type for e in last_card][-1] == FRAUD_ALERT_RAISED
    alert = last_card[-1].payload
    assert alert.entry_id == last_card[0].payload.entry_id
    assert alert.account_id == wired.account
    cash_events = [by_seq[s] for s in range(results[6].first_seq, results[6].last_seq + 1)]
    assert cash_events[-1].event_type == THRESHOLD_TRANSACTION_REPORTED
    state = wired.target.platform.tenant("cu-m")
    assert state is not None
    shadow = {"cu-m": {account: s.balance for account, s in state.accounts.items()}}
    reports = wired.suite.finish(wired.target, shadow)
    assert {name: report.passed for name, report in reports.items()} == dict.fromkeys(reports, True)


def test_the_chain_with_findings_verifies_and_replays_to_the_same_balances() -> None:
    """A consumer re-derives every hash from JSON; the fold ignores findings and still matches."""
    wired = Wired()
    wired.send(*[wired.post(at(0, f"09:1{i}:00"), card(999, wired.account)) for i in range(7)])
    wired.send(wired.post(at(0, "13:00:00"), cash(1_000_000, account=wired.account)))
    kinds = {sealed.event.event_type for sealed in wired.events}
    assert kinds >= MONITOR_EVENT_TYPES
    assert list(verify_chain("cu-m", [s.to_json_bytes() for s in wired.events])) == []
    replayed = TenantState("cu-m")
    platform = PlatformState()
    for sealed in wired.events:
        body = sealed.to_builtins()
        event = msgspec.convert(body, type(sealed.event))
        evolve(replayed, event, sealed.hash, platform)
    live = wired.target.platform.tenant("cu-m")
    assert live is not None
    assert {a: s.balance for a, s in replayed.accounts.items()} == {
        a: s.balance for a, s in live.accounts.items()
    }
    assert replayed.head == live.head


def test_replayed_commands_raise_no_second_alert() -> None:
    """Re-sending the alerting command with its idempotency key writes nothing new."""
    wired = Wired()
    burst = [
        wired.cmd.envelope(
            "PostEntry", card(1_000, wired.account), timestamp=at(0, f"09:0{i}:00"), key=f"k{i}"
        )
        for i in range(6)
    ]
    wired.send(*burst)
    alerts = sum(1 for s in wired.events if s.event.event_type == FRAUD_ALERT_RAISED)
    seq = wired.target.head("cu-m")[0]
    wired.target.submit("cu-m", [burst[-1]])
    assert wired.target.head("cu-m")[0] == seq
    assert alerts == 1
