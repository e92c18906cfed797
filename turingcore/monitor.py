"""Transaction monitoring: rules run on every accepted PostEntry, alerts go into the chain.

A credit union must watch its payments for fraud and money laundering and
report large cash to AUSTRAC; the reference platform does it with a small
rules engine. `TransactionMonitor.screen` is called by the shell for every
*accepted* PostEntry, after `decide` and before sealing, and appends its
findings to that command's events. So alerts and reports are caused by the
same command (`causationId`), sit inside its `[firstSeq, lastSeq]` stretch
(audit completeness holds) and are hashed into the tenant's chain like any
other event. The monitor is deterministic: it reads only the accepted
commands, in order, and their timestamps (never a clock), so the same
commands give the same alerts. The read model's fold ignores its events.

The rules (thresholds in `MonitorConfig`):

- **VELOCITY**: more than `card_velocity_limit` card payments from one
  account in the current and the previous local clock hour (a stolen card is
  used in a burst), or more than `npp_velocity_limit` outgoing NPP payments
  within `npp_velocity_window_s` (a takeover drains an account in a few fast
  transfers).
- **NEW_PAYEE_LARGE**: an outgoing NPP payment of at least
  `new_payee_threshold_cents` to a counterparty (`tags.counterparty`) that is
  not among the account's last `payees_remembered` payees (scams and
  takeovers pay new accounts).
- **STRUCTURING**: `structuring_count` cash deposits (`tags.channel ==
  "CASH"`) each in [`structuring_floor_cents`, `report_threshold_cents`)
  into one account within `structuring_window_s` (splitting cash to stay
  under the reporting threshold is an offence in itself: AML/CTF Act s142).
- **Threshold transaction report**: every cash deposit or withdrawal of at
  least `report_threshold_cents` (AUD 10,000) gives a
  `ThresholdTransactionReported` event (AML/CTF Act s43); a report, not an
  alert.

VELOCITY and STRUCTURING alerts are raised once per account per
`cooldown_s` (an investigator works the case; repeating the alert for every
further payment would bury them). The monitor does not block anything: what
the credit union does about an alert happens outside the platform.

Cost and memory. Card spend is most of the traffic, so its path is a tag
lookup and two small-dict counter updates: card payments are counted per
account in clock-hour buckets (`"2025-07-01T09"`), of which only the last
few hours are kept, so the memory they touch is the accounts active in the
last hours (cache-friendly) and does not grow with time. NPP and cash keep a
few timestamps and a tuple of recent payees per account that uses them;
other channels (payroll, BPAY, internal) cost one tag lookup. All state is
per account and bounded, so it grows with accounts, never with payments.

Event payloads (money in integer cents, as everywhere):

- `FraudAlertRaised {alertId, accountId, rule, entryId, amountCents, channel,
  counterparty, observed, windowSeconds}`: `observed` is the number of
  payments in the window that broke the rule (1 for NEW_PAYEE_LARGE);
  `windowSeconds` is the rule's window (7200 for the two card hours, 0 for
  NEW_PAYEE_LARGE).
- `ThresholdTransactionReported {reportId, accountId, entryId, amountCents,
  direction (DEPOSIT|WITHDRAWAL), thresholdCents}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec import Struct

from turingcore.events import require_canonical_order

FRAUD_ALERT_RAISED = "FraudAlertRaised"
THRESHOLD_TRANSACTION_REPORTED = "ThresholdTransactionReported"
#: Event types the monitor writes; the read model's fold ignores them.
MONITOR_EVENT_TYPES = frozenset({FRAUD_ALERT_RAISED, THRESHOLD_TRANSACTION_REPORTED})

VELOCITY = "VELOCITY"
NEW_PAYEE_LARGE = "NEW_PAYEE_LARGE"
STRUCTURING = "STRUCTURING"
#: The alert rules, in the order the module docstring explains them.
RULES = (VELOCITY, NEW_PAYEE_LARGE, STRUCTURING)

#: id variants (the nibble after the tenant prefix) of alerts and reports.
ALERT_VARIANT = "c"
REPORT_VARIANT = "d"
#: The card window: the current and the previous local clock hour.
CARD_WINDOW_S = 7200
#: Card hour buckets kept: the current and previous hour and two for late commands.
CARD_HOURS_KEPT = 4

_GL = "GL_"
#: A card count that no burst of payments in two hours brings over the limit.
_SETTLED = -(1 << 40)


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Thresholds of the rules; the defaults are the reference platform's.

    Attributes:
        card_velocity_limit: card payments from one account tolerated in the
            current and previous clock hour; one more raises VELOCITY. A
            member averages about one card payment a day (RBA), so six in two
            hours is a burst.
        npp_velocity_limit: outgoing NPP payments tolerated within the NPP
            window (members average about four a month: NPPA / RBA).
        npp_velocity_window_s: the NPP window, seconds.
        new_payee_threshold_cents: smallest NPP payment to a new payee that
            raises NEW_PAYEE_LARGE (assumed: AUD 5,000).
        payees_remembered: payees remembered per account; a payee paid
            longer ago than that counts as new again.
        structuring_floor_cents: cash deposits from here up to the report
            threshold are "just under" it (assumed: AUD 8,000).
        structuring_count: such deposits within the window that raise
            STRUCTURING.
        structuring_window_s: the structuring window, seconds (7 days).
        report_threshold_cents: cash at or above this is reported (AUSTRAC
            threshold transaction report: AUD 10,000).
        cooldown_s: after a VELOCITY or STRUCTURING alert on an account, the
            same rule stays quiet on it for this long.
    """

    card_velocity_limit: int = 5
    npp_velocity_limit: int = 3
    npp_velocity_window_s: int = 86400
    new_payee_threshold_cents: int = 500_000
    payees_remembered: int = 16
    structuring_floor_cents: int = 800_000
    structuring_count: int = 3
    structuring_window_s: int = 7 * 86400
    report_threshold_cents: int = 1_000_000
    cooldown_s: int = 86400

    def __post_init__(self) -> None:
        if self.card_velocity_limit < 1 or self.npp_velocity_limit < 1:
            raise ValueError("velocity limits must be at least 1")
        if self.npp_velocity_window_s <= 0 or self.structuring_window_s <= 0:
            raise ValueError("windows must be positive")
        if self.structuring_count < 1 or self.payees_remembered < 1:
            raise ValueError("structuring_count and payees_remembered must be at least 1")
        if not 0 < self.structuring_floor_cents < self.report_threshold_cents:
            raise ValueError("0 < structuring_floor_cents < report_threshold_cents")
        if self.new_payee_threshold_cents <= 0 or self.cooldown_s < 0:
            raise ValueError("new_payee_threshold_cents > 0 and cooldown_s >= 0")


class FraudAlertPayload(Struct, rename="camel", gc=False, frozen=True):
    """Why an account's payment looks like fraud; money in integer cents."""

    account_id: str
    alert_id: str
    amount_cents: int
    channel: str
    counterparty: str | None
    entry_id: str
    observed: int
    rule: str
    window_seconds: int


class ThresholdReportPayload(Struct, rename="camel", gc=False, frozen=True):
    """A cash transaction at or above the AUSTRAC reporting threshold."""

    account_id: str
    amount_cents: int
    direction: str
    entry_id: str
    report_id: str
    threshold_cents: int


require_canonical_order(FraudAlertPayload, ThresholdReportPayload)


# --------------------------------------------------------------------------- pure rules


def epoch_seconds(timestamp: str) -> int | None:
    """Seconds since the Unix epoch of an ISO 8601 timestamp (no offset: UTC), or None.

    None for a timestamp that does not parse: the rules that need time then
    do not fire, rather than the platform failing on an entry it accepted.
    """
    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def previous_hour(timestamp: str) -> str | None:
    """The local clock-hour key ("YYYY-MM-DDTHH") of the hour before `timestamp`'s.

    Computed in the timestamp's own UTC offset, so across the start of
    daylight saving it names an hour that never occurs (the window is then
    one hour long, once a year); across its end the repeated hour shares
    one key (counted together: the rule errs towards alerting).
    """
    try:
        moment = datetime.fromisoformat(f"{timestamp[:13]}:00:00{timestamp[19:]}")
    except ValueError:
        return None
    return (moment - timedelta(hours=1)).isoformat()[:13]


def later_than(timestamp: str, until: str) -> bool:
    """Whether `timestamp` is at or after `until` (ISO 8601; unparsable: True)."""
    if len(timestamp) == len(until) and timestamp[19:] == until[19:]:
        return timestamp >= until  # same offset: ISO strings order like their moments
    now, end = epoch_seconds(timestamp), epoch_seconds(until)
    return now is None or end is None or now >= end


def iso_after(timestamp: str, seconds: int) -> str:
    """The ISO 8601 time `seconds` after `timestamp`, in the same UTC offset."""
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment + timedelta(seconds=seconds)).isoformat()


def window_breached(times: Iterable[int], limit: int, window_s: int) -> bool:
    """True when more than `limit` of `times` fall within `window_s` seconds.

    `times` need not be sorted (commands need not arrive in timestamp
    order); the check slides over them sorted.
    """
    values = sorted(times)
    return any(values[i + limit] - values[i] <= window_s for i in range(len(values) - limit))


def is_just_under(amount_cents: int, config: MonitorConfig) -> bool:
    """A cash amount in the structuring band: at least the floor, below the threshold."""
    return config.structuring_floor_cents <= amount_cents < config.report_threshold_cents


def is_reportable_cash(amount_cents: int, config: MonitorConfig) -> bool:
    """Cash at or above the AUSTRAC threshold (AUD 10,000 by default)."""
    return amount_cents >= config.report_threshold_cents


def is_new_payee_large(known_payee: bool, amount_cents: int, config: MonitorConfig) -> bool:
    """A payment to a payee not paid recently, of at least the threshold."""
    return not known_payee and amount_cents >= config.new_payee_threshold_cents


# --------------------------------------------------------------------------- the monitor

Emit = Callable[[str, str, Any], Any]


class TransactionMonitor:
    """One tenant's monitor: per-account windows, fed every accepted PostEntry in order.

    Args:
        ident: makes the tenant's ids, `ident(variant, number)` (the tenant
            state's `ident`, so alert ids look like every other id).
        emit: builds a decided event from (eventType, entityId, payload)
            (the domain's `Pending`), appended to the command's events.
        config: the thresholds.
    """

    __slots__ = (
        "config",
        "ident",
        "emit",
        "npp",
        "payees",
        "cash",
        "quiet",
        "alerts",
        "reports",
        "_limit",
        "_hours",
        "_hour",
        "_now",
        "_before",
        "_quiet_from",
        "_quiet_until",
    )

    def __init__(
        self, ident: Callable[[str, int], str], emit: Emit, config: MonitorConfig | None = None
    ) -> None:
        self.config = config or MonitorConfig()
        self.ident = ident
        self.emit = emit
        #: account -> epoch seconds of its last outgoing NPP payments (at most limit + 1).
        self.npp: dict[str, list[int]] = {}
        #: account -> its most recent payees, oldest first (a short tuple).
        self.payees: dict[str, tuple[str, ...]] = {}
        #: account -> epoch seconds of its recent just-under-threshold cash deposits.
        self.cash: dict[str, list[int]] = {}
        #: (account, rule) -> ISO time until which the rule is quiet on the account.
        self.quiet: dict[tuple[str, str], str] = {}
        self.alerts = 0
        self.reports = 0
        self._limit = self.config.card_velocity_limit
        #: hour key -> (account -> card payments in that hour, previous hour's key)
        self._hours: dict[str, tuple[dict[str, int], str | None]] = {}
        self._hour = ""
        self._now: dict[str, int] = {}
        self._before: dict[str, int] = {}
        self._quiet_from = ""
        self._quiet_until = ""

    # ------------------------------------------------------------------ entry point

    def screen(self, at: str, entry: Any, decision: list[Any]) -> None:
        """Run the rules on one accepted PostEntry; append any alert or report to `decision`.

        Args:
            at: the command's timestamp (its events' occurredAt).
            entry: the PostEntry payload (legs with accountId, direction, amount; tags).
            decision: the command's decided events; `decision[0]` is its EntryPosted.
        """
        tags = entry.tags
        if tags is None:
            return
        channel = tags.get("channel")
        if channel == "CARD":
            # The hot path: the member's account is the first CREDIT leg
            # (debits minus credits: money leaving it).
            for leg in entry.legs:
                if leg.direction == "CREDIT":
                    account = leg.account_id
                    if account[0] == "G" and account[:3] == _GL:
                        return  # a refund: nothing leaves a member's account
                    if at[:13] != self._hour and not self._switch_hour(at):
                        return
                    counts = self._now
                    count = counts.get(account, 0) + 1
                    counts[account] = count
                    if count + self._before.get(account, 0) > self._limit:
                        self._card_burst(account, at, leg.amount, decision)
                    return
        elif channel == "NPP":
            self._npp(at, entry, tags, decision)
        elif channel == "CASH":
            self._cash(at, entry, decision)

    # ------------------------------------------------------------------ card velocity

    def _switch_hour(self, at: str) -> bool:
        """Make `at`'s clock hour the current card bucket; False if it is too old to count."""
        key = at[:13]
        hours = self._hours
        found = hours.get(key)
        if found is None:
            if len(hours) >= CARD_HOURS_KEPT and key < min(hours):
                return False  # a late command from an hour already forgotten
            found = hours[key] = ({}, previous_hour(at))
            while len(hours) > CARD_HOURS_KEPT:
                del hours[min(hours)]
        counts, previous = found
        before = hours.get(previous) if previous is not None else None
        self._hour = key
        self._now = counts
        self._before = before[0] if before is not None else {}
        return True

    def _card_burst(self, account: str, at: str, amount: int, decision: list[Any]) -> None:
        """The rare card path: over the limit in two hours; alert unless quiet."""
        observed = self._now[account] + self._before.get(account, 0)
        # The burst is dealt with (alerted, or inside a quiet period): the
        # account is not counted again in this hour and the next (a large
        # negative count), so a burst that goes on costs nothing more.
        self._now[account] = _SETTLED
        if account in self._before:
            self._before[account] = 0
        if self._quieted(account, VELOCITY, at):
            return
        self._alert(decision, account, VELOCITY, amount, "CARD", None, observed, CARD_WINDOW_S)

    # ------------------------------------------------------------------ NPP and cash

    def _npp(self, at: str, entry: Any, tags: dict[str, str], decision: list[Any]) -> None:
        """Outgoing NPP: velocity over the NPP window, and new payee plus large amount."""
        payer = None
        amount = 0
        for leg in entry.legs:
            if leg.direction == "CREDIT" and leg.account_id[:3] != _GL:
                payer, amount = leg.account_id, leg.amount
                break
        if payer is None:
            return  # money in: no outgoing rule applies
        config = self.config
        counterparty = tags.get("counterparty")
        now = epoch_seconds(at)
        if now is not None:
            limit = config.npp_velocity_limit
            times = self.npp.get(payer)
            if times is None:
                times = self.npp[payer] = []
            times.append(now)
            if len(times) > limit:
                window = config.npp_velocity_window_s
                if window_breached(times, limit, window):
                    observed = len(times)
                    times.clear()
                    if not self._quieted(payer, VELOCITY, at):
                        self._alert(
                            decision, payer, VELOCITY, amount, "NPP", counterparty, observed, window
                        )
                else:
                    del times[0]
        if counterparty:
            payees = self.payees.get(payer, ())
            known = counterparty in payees
            if is_new_payee_large(known, amount, config):
                self._alert(decision, payer, NEW_PAYEE_LARGE, amount, "NPP", counterparty, 1, 0)
            if known:
                payees = tuple(p for p in payees if p != counterparty)
            self.payees[payer] = (*payees, counterparty)[-config.payees_remembered :]

    def _cash(self, at: str, entry: Any, decision: list[Any]) -> None:
        """Cash: report at or above the threshold, watch deposits just under it."""
        config = self.config
        for leg in entry.legs:
            account = leg.account_id
            if account[:3] == _GL:
                continue
            amount = leg.amount
            deposit = leg.direction == "DEBIT"  # debits minus credits: money into the account
            if is_reportable_cash(amount, config):
                self.reports += 1
                report_id = self.ident(REPORT_VARIANT, self.reports)
                payload = ThresholdReportPayload(
                    account_id=account,
                    amount_cents=amount,
                    direction="DEPOSIT" if deposit else "WITHDRAWAL",
                    entry_id=decision[0].entity_id,
                    report_id=report_id,
                    threshold_cents=config.report_threshold_cents,
                )
                decision.append(self.emit(THRESHOLD_TRANSACTION_REPORTED, report_id, payload))
            elif deposit and is_just_under(amount, config):
                now = epoch_seconds(at)
                if now is None:
                    continue
                count, window = config.structuring_count, config.structuring_window_s
                times = self.cash.get(account)
                if times is None:
                    times = self.cash[account] = []
                times.append(now)
                if len(times) < count:
                    continue
                if window_breached(times, count - 1, window):
                    observed = len(times)
                    times.clear()
                    if not self._quieted(account, STRUCTURING, at):
                        self._alert(
                            decision, account, STRUCTURING, amount, "CASH", None, observed, window
                        )
                else:
                    del times[0]

    # ------------------------------------------------------------------ helpers

    def _quieted(self, account: str, rule: str, at: str) -> bool:
        """True inside the rule's quiet period on the account; else start a new one."""
        key = (account, rule)
        until = self.quiet.get(key)
        if until is not None and not later_than(at, until):
            return True
        if at != self._quiet_from:  # alerts in one batch often share a timestamp
            self._quiet_from, self._quiet_until = at, iso_after(at, self.config.cooldown_s)
        self.quiet[key] = self._quiet_until
        return False

    def _alert(
        self,
        decision: list[Any],
        account: str,
        rule: str,
        amount: int,
        channel: str,
        counterparty: str | None,
        observed: int,
        window_s: int,
    ) -> None:
        self.alerts += 1
        alert_id = self.ident(ALERT_VARIANT, self.alerts)
        payload = FraudAlertPayload(
            account_id=account,
            alert_id=alert_id,
            amount_cents=amount,
            channel=channel,
            counterparty=counterparty,
            entry_id=decision[0].entity_id,
            observed=observed,
            rule=rule,
            window_seconds=window_s,
        )
        decision.append(self.emit(FRAUD_ALERT_RAISED, alert_id, payload))

    def size(self) -> int:
        """How many values the monitor holds (memory tests: flat in the number of payments)."""
        return (
            sum(len(counts) for counts, _previous in self._hours.values())
            + sum(len(times) for times in self.npp.values())
            + sum(len(payees) for payees in self.payees.values())
            + sum(len(times) for times in self.cash.values())
            + len(self.quiet)
        )


def alerts_in(events: Sequence[Any]) -> list[Any]:
    """The FraudAlertRaised payloads among decided or sealed events (for tests and tools)."""
    found = []
    for item in events:
        event = getattr(item, "event", item)
        if event.event_type == FRAUD_ALERT_RAISED:
            found.append(event.payload)
    return found
