"""The five invariants, checked while the twin runs, in bounded memory.

`InvariantSuite` is subscribed to the target's event stream (`on_events`) and
told every batch's answers (`on_results`); at the end of each simulated day it
re-sends a sample of acknowledged commands (`probe_idempotency`), and at the
end of the run it compares what the stream implies with what the platform's
read API says and with the twin's shadow book (`finish`).

Memory grows with accounts and customers (one folded balance per account, one
id per customer) and with the batch in flight, never with the number of
events: each event is checked and forgotten. The per-event work is kept to
re-encoding, re-hashing, folding the legs and remembering the current
command's seq range (~1-2 microseconds an event); everything unusual (a
broken link, a foreign account, a payload read from JSON) leaves the fast path
for a slow one that explains itself.

`TenantChecker` is the per-tenant half and is shared with `analysis.verify`,
which runs the same checks offline from a run folder's stored bytes, so the
live and the offline verdicts cannot drift apart.

Each invariant reports pass/fail, how much it examined and, Jepsen-style,
the first, worst and last counterexample.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from sim.target import Target, all_accounts, all_customers, read_model_balances
from turingcore.contract import CommandResult, Envelope
from turingcore.events import (
    GENESIS_RAW,
    BalanceUpdatedPayload,
    ChainVerifier,
    EntryPostedPayload,
    Event,
    SealedEvent,
)

BALANCE_DERIVABILITY = "balance_derivability"
EVENT_INTEGRITY = "event_integrity"
TENANT_ISOLATION = "tenant_isolation"
IDEMPOTENCY = "idempotency"
AUDIT_COMPLETENESS = "audit_completeness"

#: The five invariants, in the order every report lists them (DESIGN.md).
INVARIANT_NAMES = (
    BALANCE_DERIVABILITY,
    EVENT_INTEGRITY,
    TENANT_ISOLATION,
    IDEMPOTENCY,
    AUDIT_COMPLETENESS,
)

_ENCODE = msgspec.json.Encoder(order="sorted").encode
_DECODE = msgspec.json.Decoder().decode
_SNAKE_CACHE: dict[str, str] = {}
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


# --------------------------------------------------------------------------- reporting


class Counterexamples:
    """Count, first, worst and last counterexample, Jepsen bank-checker style.

    Keeping three examples and a count (not a list) is what lets a check run
    for a simulated decade in flat memory while still showing where trouble
    started, how bad it got and whether it was still happening at the end.
    """

    __slots__ = ("count", "first", "worst", "last", "_worst_severity")

    def __init__(self) -> None:
        self.count = 0
        self.first: dict[str, Any] | None = None
        self.worst: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self._worst_severity = -math.inf

    def add(self, example: dict[str, Any], severity: float = 1.0) -> None:
        """Record one counterexample; the worst is the first with the highest severity."""
        self.count += 1
        if self.first is None:
            self.first = example
        if severity > self._worst_severity:
            self.worst = example
            self._worst_severity = severity
        self.last = example

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready {count, first, worst, last} (the examples are None when count is 0)."""
        return {"count": self.count, "first": self.first, "worst": self.worst, "last": self.last}


@dataclass
class InvariantReport:
    """One invariant's verdict: passed, how much was examined, and counterexamples."""

    name: str
    passed: bool
    examined: int
    counterexamples: Counterexamples

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for summary.json (the name is the key it is stored under)."""
        return {
            "passed": self.passed,
            "examined": self.examined,
            "counterexamples": self.counterexamples.to_dict(),
        }


class Check:
    """An invariant being checked: a running `examined` count and its counterexamples."""

    __slots__ = ("name", "examined", "examples")

    def __init__(self, name: str) -> None:
        self.name = name
        self.examined = 0
        self.examples = Counterexamples()

    def fail(self, example: dict[str, Any], severity: float = 1.0) -> None:
        """Record a counterexample (the check has failed)."""
        self.examples.add(example, severity)

    def report(self) -> InvariantReport:
        """The verdict so far: passed means no counterexample was found."""
        return InvariantReport(self.name, self.examples.count == 0, self.examined, self.examples)


class CheckSet:
    """The five checks of one run, shared by every tenant's checker."""

    __slots__ = ("balance", "integrity", "isolation", "idempotency", "audit")

    def __init__(self) -> None:
        self.balance = Check(BALANCE_DERIVABILITY)
        self.integrity = Check(EVENT_INTEGRITY)
        self.isolation = Check(TENANT_ISOLATION)
        self.idempotency = Check(IDEMPOTENCY)
        self.audit = Check(AUDIT_COMPLETENESS)

    def reports(self) -> dict[str, InvariantReport]:
        """name -> report, in `INVARIANT_NAMES` order."""
        checks = (self.balance, self.integrity, self.isolation, self.idempotency, self.audit)
        return {check.name: check.report() for check in checks}


# --------------------------------------------------------------------------- payload access


def _snake(camel: str) -> str:
    name = _SNAKE_CACHE.get(camel)
    if name is None:
        name = _SNAKE_CACHE[camel] = _CAMEL_HUMP.sub("_", camel).lower()
    return name


def payload_field(payload: Any, key: str) -> Any:
    """A payload field by its camelCase JSON name, from a dict or a msgspec Struct.

    Live events carry Structs for the two hot event types and dicts for the
    rest; events read back from storage are all dicts. This one accessor
    reads both, so the checks are written once. Missing fields give None.
    """
    if type(payload) is dict:
        return payload.get(key)
    return getattr(payload, _snake(key), None)


def leg_fields(leg: Any) -> tuple[Any, Any, Any]:
    """(accountId, amountCents, direction) of an entry leg, dict or Struct."""
    if type(leg) is dict:
        return leg.get("accountId"), leg.get("amountCents"), leg.get("direction")
    return (
        getattr(leg, "account_id", None),
        getattr(leg, "amount_cents", None),
        getattr(leg, "direction", None),
    )


def _is_int(value: Any) -> bool:
    return type(value) is int


def _plain_int(value: Any) -> Any:
    """numpy integers (a shadow book may hold them) as ints, so examples stay JSON-ready."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _raw_hash(text: Any) -> bytes:
    """A chain hash as raw bytes; anything unparsable maps to genesis (it fails anyway)."""
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        return GENESIS_RAW
    return raw if len(raw) == 32 else GENESIS_RAW


def result_fields(result: CommandResult | None) -> dict[str, Any] | None:
    """The parts of a command's answer a replay must repeat exactly."""
    if result is None:
        return None
    return {
        "status": result.status,
        "rule": result.rule,
        "firstSeq": result.first_seq,
        "lastSeq": result.last_seq,
    }


# --------------------------------------------------------------------------- per tenant

StretchSink = Callable[[str, int, int], None]


class TenantChecker:
    """Checks one tenant's event stream, one event at a time, in per-account memory.

    It verifies the chain (`event_integrity`), folds every entry's legs and
    compares each `AccountBalanceUpdated` with the fold
    (`balance_derivability`), checks that every event and every account an
    event references belongs to this tenant (`tenant_isolation`), and cuts
    the stream into *stretches*: maximal runs of consecutive events with the
    same causationId, handed to `sink(causation_id, first_seq, last_seq)` for
    `audit_completeness` (the live suite matches them with the commands'
    answers, the offline verifier with the stored rejections).

    Example `seq`s name the event's position in the chain (the seq it should
    have), so a changed byte in a seq field still points at the right event.
    """

    __slots__ = (
        "tenant_id",
        "checks",
        "sink",
        "verifier",
        "head_raw",
        "fold",
        "foreign",
        "gl",
        "opened",
        "customers",
        "events",
        "_cid",
        "_first",
        "_last",
        "_resync",
    )

    def __init__(self, tenant_id: str, checks: CheckSet, sink: StretchSink) -> None:
        self.tenant_id = tenant_id
        self.checks = checks
        self.sink = sink
        self.verifier = ChainVerifier(tenant_id)
        self.head_raw = GENESIS_RAW
        #: account id -> folded balance (debits - credits) of every account the
        #: stream opened (GL accounts from TenantCreated, member accounts).
        self.fold: dict[str, int] = {}
        #: folded balances of accounts referenced but never opened here.
        self.foreign: dict[str, int] = {}
        self.gl: set[str] = set()
        #: member account id -> the customerId its AccountOpened named.
        self.opened: dict[str, Any] = {}
        self.customers: set[str] = set()
        self.events = 0
        self._cid: str | None = None
        self._first = 0
        self._last = 0
        self._resync = False

    # ------------------------------------------------------------------ live

    def live(self, events: Sequence[SealedEvent]) -> None:
        """Check a batch of live sealed events (the hot path: Struct payloads).

        Keeps the chain state in locals and only leaves the loop when
        something is off; the stretch still open at the end is handed to the
        sink (the embedded platform never splits a command across batches;
        the live sink re-joins a stretch if some other platform does).
        """
        tenant_id = self.tenant_id
        verifier = self.verifier
        expected = verifier.expected_seq
        head = verifier.head
        head_raw = self.head_raw
        fold = self.fold
        sink = self.sink
        encode = _ENCODE
        sha256 = hashlib.sha256
        balance_type = BalanceUpdatedPayload
        entry_type = EntryPostedPayload
        cid_now = self._cid
        first = self._first
        last = self._last
        balances = 0
        for sealed in events:
            event = sealed.event
            canonical = sealed.canonical
            claimed = sealed.hash
            seq = event.seq
            digest = sha256(head_raw + canonical).digest()
            if (
                seq != expected
                or event.prev_hash != head
                or event.tenant_id != tenant_id
                or digest.hex() != claimed
                or encode(event) != canonical
            ):
                verifier.expected_seq = expected
                verifier.head = head
                self._chain_problems(
                    event, canonical, claimed, expected, encode(event) == canonical, event.tenant_id
                )
                expected = verifier.expected_seq
                head = verifier.head
                head_raw = self.head_raw
            else:
                expected = seq + 1
                head = claimed
                head_raw = digest
            payload = event.payload
            kind = type(payload)
            if kind is balance_type:
                balances += 1
                account = payload.account_id
                folded = fold.get(account)
                if folded != payload.balance_cents:
                    self._balance_problem(seq, account, folded, payload.balance_cents)
            elif kind is entry_type:
                for leg in payload.legs:
                    direction = leg.direction
                    if direction == "DEBIT":
                        delta = leg.amount_cents
                    elif direction == "CREDIT":
                        delta = -leg.amount_cents
                    else:
                        self._unfoldable(seq, f"leg direction {direction!r} is not DEBIT or CREDIT")
                        continue
                    try:
                        fold[leg.account_id] += delta
                    except KeyError:
                        self._foreign_leg(seq, leg.account_id, delta)
            else:
                self.apply(event.event_type, payload, seq)
            cid = event.causation_id
            if cid != cid_now:
                if cid_now is not None:
                    sink(cid_now, first, last)
                cid_now = cid
                first = seq
            last = seq
        verifier.expected_seq = expected
        verifier.head = head
        self.head_raw = head_raw
        if cid_now is not None:
            sink(cid_now, first, last)
        self._cid = None
        count = len(events)
        self.events += count
        checks = self.checks
        checks.integrity.examined += count
        checks.isolation.examined += count
        checks.balance.examined += balances

    # ------------------------------------------------------------------ stored

    def stored(self, claimed: str, canonical: bytes, position: int) -> None:
        """Check one event read back from storage: its claimed hash and its bytes.

        Everything is re-derived from the bytes: the body is parsed, re-encoded
        (it must be exactly the canonical form) and re-hashed. `position` is
        the seq the storage says this line holds.
        """
        checks = self.checks
        checks.integrity.examined += 1
        checks.isolation.examined += 1
        self.events += 1
        try:
            body = _DECODE(canonical)
        except msgspec.DecodeError as exc:
            body = exc
        if not isinstance(body, dict):
            why = f"not JSON ({body})" if isinstance(body, Exception) else "not a JSON object"
            self._fail_integrity(position, f"stored event is {why}")
            self._skip(claimed)
            return
        if self._resync:
            self._resync = False
            seq, prev = body.get("seq"), body.get("prevHash")
            if _is_int(seq) and isinstance(prev, str):
                self.verifier.expected_seq = seq
                self.verifier.head = prev
                self.head_raw = _raw_hash(prev)
        verifier = self.verifier
        seq = body.get("seq")
        tenant = body.get("tenantId")
        expected = verifier.expected_seq
        canonical_ok = _ENCODE(body) == canonical
        digest = hashlib.sha256(self.head_raw + canonical).digest()
        if (
            seq == expected
            and _is_int(seq)
            and body.get("prevHash") == verifier.head
            and tenant == self.tenant_id
            and canonical_ok
            and digest.hex() == claimed
        ):
            verifier.expected_seq = seq + 1
            verifier.head = claimed
            self.head_raw = digest
        else:
            self._chain_problems(body, canonical, claimed, position, canonical_ok, tenant)
        if not _is_int(seq):
            seq = position
        self.apply(body.get("eventType"), body.get("payload"), seq)
        cid = body.get("causationId")
        if not isinstance(cid, str) or not cid:
            checks.audit.fail(
                {"tenant": self.tenant_id, "seq": seq, "problem": "event has no causationId"}
            )
            self.close_stretch()
            return
        if cid != self._cid:
            self.close_stretch()
            self._cid = cid
            self._first = seq
        self._last = seq

    def corrupt(self, position: int, message: str) -> None:
        """A stretch of storage that could not be read: report it, then resync after it."""
        self._fail_integrity(position, message)
        self.close_stretch()
        self._resync = True

    def close_stretch(self) -> None:
        """Hand the open stretch (if any) to the sink."""
        if self._cid is not None:
            self.sink(self._cid, self._first, self._last)
            self._cid = None

    def _skip(self, claimed: str) -> None:
        """Step over an unreadable event the way `verify_chain` does."""
        self.verifier.expected_seq += 1
        self.verifier.head = claimed
        self.head_raw = _raw_hash(claimed)
        self.close_stretch()

    # ------------------------------------------------------------------ shared

    def apply(self, event_type: Any, payload: Any, seq: int) -> None:
        """Fold any event whose payload is a dict (or an unexpected Struct).

        Live rare events (tenant, product, customer, account, FundsPosted) and
        every replayed event come here; unknown event types are ignored, as
        the contract allows additive extensions.
        """
        checks = self.checks
        if event_type == "AccountBalanceUpdated":
            checks.balance.examined += 1
            account = payload_field(payload, "accountId")
            cents = payload_field(payload, "balanceCents")
            if not isinstance(account, str) or not _is_int(cents):
                self._unfoldable(seq, "AccountBalanceUpdated without accountId/balanceCents")
                return
            folded = self.fold.get(account)
            if folded != cents:
                self._balance_problem(seq, account, folded, cents)
        elif event_type in ("EntryPosted", "FundsPosted"):
            legs = payload_field(payload, "legs")
            if not isinstance(legs, list):
                self._unfoldable(seq, f"{event_type} has no legs list")
                return
            fold = self.fold
            for leg in legs:
                account, amount, direction = leg_fields(leg)
                if not isinstance(account, str) or not _is_int(amount) or amount <= 0:
                    self._unfoldable(seq, f"leg {leg!r} has no account or no positive amount")
                    continue
                if direction == "DEBIT":
                    delta = amount
                elif direction == "CREDIT":
                    delta = -amount
                else:
                    self._unfoldable(seq, f"leg direction {direction!r} is not DEBIT or CREDIT")
                    continue
                if account in fold:
                    fold[account] += delta
                else:
                    self._foreign_leg(seq, account, delta)
        elif event_type == "CustomerCreated":
            customer = payload_field(payload, "customerId")
            if isinstance(customer, str):
                self.customers.add(customer)
            else:
                self._unreadable(seq, "CustomerCreated without customerId")
        elif event_type == "AccountOpened":
            account = payload_field(payload, "accountId")
            customer = payload_field(payload, "customerId")
            if not isinstance(account, str):
                self._unreadable(seq, "AccountOpened without accountId")
                return
            if customer not in self.customers:
                checks.isolation.fail(
                    {
                        "tenant": self.tenant_id,
                        "seq": seq,
                        "account": account,
                        "customer": customer,
                        "problem": "account opened for a customer this tenant's stream "
                        "never created",
                    }
                )
            self.opened[account] = customer
            self.fold.setdefault(account, self.foreign.pop(account, 0))
        elif event_type == "TenantCreated":
            codes = payload_field(payload, "glAccounts")
            if not isinstance(codes, list):
                self._unreadable(seq, "TenantCreated without a glAccounts list")
                return
            for code in codes:
                if isinstance(code, str):
                    self.gl.add(code)
                    self.fold.setdefault(code, 0)
        elif event_type == "LoanFacilityCreated":
            account = payload_field(payload, "accountId")
            if account not in self.fold:
                self._foreign_reference(seq, account, "loan facility")

    def _chain_problems(
        self,
        body: Event | dict[str, Any],
        canonical: bytes,
        claimed: str,
        position: int,
        canonical_ok: bool,
        tenant: Any,
    ) -> None:
        """The slow path: let ChainVerifier explain what is wrong with this event."""
        claimed_seq = body.seq if isinstance(body, Event) else body.get("seq")
        for problem in self.verifier.check(body, canonical, claimed):
            self._fail_integrity(position, problem.problem, claimed_seq)
        if not canonical_ok:
            self._fail_integrity(
                position, "stored bytes are not the canonical encoding of the event", claimed_seq
            )
        self.head_raw = _raw_hash(self.verifier.head)
        if tenant != self.tenant_id:
            self.checks.isolation.fail(
                {
                    "tenant": self.tenant_id,
                    "seq": position,
                    "eventTenant": tenant,
                    "problem": "an event of another tenant is in this tenant's stream",
                }
            )

    def _fail_integrity(self, position: int, message: str, claimed_seq: Any = None) -> None:
        example: dict[str, Any] = {"tenant": self.tenant_id, "seq": position, "problem": message}
        if claimed_seq is not None and claimed_seq != position:
            example["claimedSeq"] = claimed_seq
        self.checks.integrity.fail(example)

    def _balance_problem(self, seq: int, account: str, folded: int | None, actual: int) -> None:
        if folded is None:
            self._foreign_reference(seq, account, "balance update")
            return
        self.checks.balance.fail(
            {
                "tenant": self.tenant_id,
                "seq": seq,
                "account": account,
                "expected": folded,
                "actual": actual,
                "problem": "balanceCents differs from the fold of the account's entries",
            },
            abs(actual - folded),
        )

    def _foreign_leg(self, seq: int, account: Any, delta: int) -> None:
        self.foreign[account] = self.foreign.get(account, 0) + delta
        self._foreign_reference(seq, account, "entry leg")

    def _foreign_reference(self, seq: int, account: Any, what: str) -> None:
        self.checks.isolation.fail(
            {
                "tenant": self.tenant_id,
                "seq": seq,
                "account": account,
                "problem": f"{what} names an account this tenant's stream never opened",
            }
        )

    def _unfoldable(self, seq: int, message: str) -> None:
        self.checks.balance.fail({"tenant": self.tenant_id, "seq": seq, "problem": message})

    def _unreadable(self, seq: int, message: str) -> None:
        self.checks.audit.fail({"tenant": self.tenant_id, "seq": seq, "problem": message})

    # ------------------------------------------------------------------ end of run

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the chain head as this checker verified it."""
        return self.verifier.expected_seq - 1, self.verifier.head

    def compare_head(self, seq: Any, head_hash: Any, source: str) -> None:
        """The verified chain head must equal the head another source reports.

        Args:
            seq: the other source's head seq, or None when it only gives a hash.
            head_hash: the other source's head hash (None when it has none).
            source: what the other source is, for the counterexample.
        """
        self.checks.integrity.examined += 1
        mine = self.head
        if head_hash != mine[1] or (seq is not None and seq != mine[0]):
            self.checks.integrity.fail(
                {
                    "tenant": self.tenant_id,
                    "seq": mine[0],
                    "expected": {"seq": mine[0], "hash": mine[1]},
                    "actual": {"seq": seq, "hash": head_hash},
                    "problem": f"the chain head differs from {source}",
                }
            )

    def compare_read_model(
        self,
        accounts: Iterable[tuple[Any, Any, Any]],
        customers: Iterable[Any],
        shadow: Mapping[str, int] | None,
    ) -> None:
        """Compare the end-of-run read model and shadow book with the stream.

        Args:
            accounts: (accountId, customerId, balance cents) of every member
                account the read model lists.
            customers: every customerId the read model lists.
            shadow: accountId -> cents the twin expects (may include GL accounts);
                None when the twin kept no shadow for this tenant.
        """
        checks = self.checks
        tenant = self.tenant_id
        fold = self.fold
        shadow = shadow if shadow is not None else {}
        listed: set[str] = set()
        for account, customer, cents in accounts:
            listed.add(account)
            checks.balance.examined += 1
            checks.isolation.examined += 1
            checks.audit.examined += 1
            if account in self.gl:
                # a platform may list its GL accounts too: they have no customer
                self._compare_balance(account, fold[account], cents, shadow.get(account), True)
                continue
            if account not in self.opened:
                # no fold to compare with: isolation and audit say why
                checks.isolation.fail(
                    {
                        "tenant": tenant,
                        "account": account,
                        "problem": "the read model lists an account this tenant's stream "
                        "never opened",
                    }
                )
                checks.audit.fail(
                    {
                        "tenant": tenant,
                        "account": account,
                        "problem": "account without AccountOpened",
                    }
                )
                continue
            if self.opened[account] != customer:
                checks.audit.fail(
                    {
                        "tenant": tenant,
                        "account": account,
                        "expected": self.opened[account],
                        "actual": customer,
                        "problem": "the read model's customerId differs from AccountOpened's",
                    }
                )
            if customer not in self.customers:
                checks.isolation.fail(
                    {
                        "tenant": tenant,
                        "account": account,
                        "customer": customer,
                        "problem": "a listed account belongs to a customer this tenant's "
                        "stream never created",
                    }
                )
            self._compare_balance(account, fold[account], cents, shadow.get(account), True)
        for account in sorted(set(self.opened) - listed):
            checks.balance.examined += 1
            self._compare_balance(account, fold[account], None, shadow.get(account), True)
        for account in sorted(set(shadow) - listed - set(self.opened)):
            checks.balance.examined += 1
            in_stream = account in fold
            self._compare_balance(account, fold.get(account), None, shadow[account], not in_stream)
        listed_customers: set[str] = set()
        for customer in customers:
            listed_customers.add(customer)
            checks.isolation.examined += 1
            checks.audit.examined += 1
            if customer not in self.customers:
                checks.isolation.fail(
                    {
                        "tenant": tenant,
                        "customer": customer,
                        "problem": "the read model lists a customer this tenant's stream "
                        "never created",
                    }
                )
                checks.audit.fail(
                    {
                        "tenant": tenant,
                        "customer": customer,
                        "problem": "customer without CustomerCreated",
                    }
                )
        for customer in sorted(self.customers - listed_customers):
            checks.audit.fail(
                {
                    "tenant": tenant,
                    "customer": customer,
                    "problem": "CustomerCreated but not in the read model",
                }
            )
        total = sum(fold.values()) + sum(self.foreign.values())
        if total != 0:
            checks.balance.fail(
                {
                    "tenant": tenant,
                    "expected": 0,
                    "actual": total,
                    "problem": "the tenant's folded balances do not sum to zero",
                },
                abs(total),
            )

    def _compare_balance(
        self,
        account: str,
        folded: int | None,
        read: Any,
        shadow: int | None,
        expect_read: bool,
    ) -> None:
        """fold == read model == shadow for one account (None: that source lacks it)."""
        read, shadow = _plain_int(read), _plain_int(shadow)
        problems = []
        if folded is None:
            problems.append("no event opened it")
        if expect_read and read is None:
            problems.append("the read model does not list it")
        if shadow is None:
            problems.append("the shadow book does not know it")
        values = [value for value in (folded, read, shadow) if value is not None]
        if not problems and len(set(values)) == 1:
            return
        if len(set(values)) > 1:
            problems.append("fold, read model and shadow book disagree")
        severity = (
            float(max(values) - min(values))
            if values and all(_is_int(value) for value in values)
            else 1.0
        )
        self.checks.balance.fail(
            {
                "tenant": self.tenant_id,
                "account": account,
                "expected": folded,
                "actual": read,
                "shadow": shadow,
                "problem": "; ".join(problems),
            },
            severity,
        )


# --------------------------------------------------------------------------- live suite


class _AuditQueue:
    """One tenant's stretches (from events) and claims (from answers) awaiting a match.

    The ids of the last two answered batches' rejected commands are kept, only
    to say "caused by a rejected command" when such a command's events turn
    up unclaimed (which is found, at the latest, when the next batch's first
    claim passes them): two batches, not the whole run, so memory stays flat.
    """

    __slots__ = ("pending", "claims", "claimed_upto", "rejected", "rejected_before")

    def __init__(self) -> None:
        self.pending: deque[tuple[str, int, int]] = deque()
        self.claims: deque[list[Any]] = deque()
        self.claimed_upto = 0
        self.rejected: dict[str, Any] = {}
        self.rejected_before: dict[str, Any] = {}

    def rejection(self, cid: str) -> Any:
        """The rule a recently answered command was rejected for, or False."""
        rule = self.rejected.get(cid, False)
        return self.rejected_before.get(cid, False) if rule is False else rule

    def push(self, cid: str, first: int, last: int) -> None:
        pending = self.pending
        if pending:
            tail = pending[-1]
            if tail[0] == cid and tail[2] + 1 == first:
                pending[-1] = (cid, tail[1], last)
                return
        pending.append((cid, first, last))


class _Reservoir:
    """A uniform sample of at most `size` items of a stream (Li's Algorithm L).

    Algorithm L draws O(size * log(n / size)) random numbers for n items
    instead of one per item, so sampling costs the per-command path almost
    nothing; the sample depends only on the generator and the item order.
    """

    __slots__ = ("size", "rng", "items", "seen", "next_pick", "weight")

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.items: list[Any] = []
        self.seen = 0
        self.next_pick = 0
        self.weight = 0.0
        self.reset()

    def _uniform(self) -> float:
        value = self.rng.random()
        while value == 0.0:
            value = self.rng.random()
        return value

    def _skip(self) -> int:
        weight = min(self.weight, 1.0 - 2.0**-53)
        return math.floor(math.log(self._uniform()) / math.log1p(-weight))

    def reset(self) -> None:
        """Start a new sample (a new simulated day)."""
        self.items = []
        self.seen = 0
        if self.size > 0:
            self.weight = math.exp(math.log(self._uniform()) / self.size)
            self.next_pick = self.size + self._skip()

    def offer(self, item: Any) -> None:
        """Consider one more item of the stream."""
        index = self.seen
        self.seen = index + 1
        if index < self.size:
            self.items.append(item)
        elif index == self.next_pick and self.size > 0:
            self.items[int(self.rng.integers(self.size))] = item
            self.weight *= math.exp(math.log(self._uniform()) / self.size)
            self.next_pick += self._skip() + 1


class InvariantSuite:
    """The five invariants, checked live while the twin runs.

    Wiring: `target.subscribe(suite.on_events)`; after every `submit`,
    `suite.on_results(tenant, envelopes, results)`; at the end of every
    simulated day `suite.probe_idempotency(target)`; at the end of the run
    `suite.finish(target, shadow)`. Every tenant's events must reach
    `on_events` in chain order; answers may arrive before or after their
    events (a stretch of events waits for the answer that claims it).

    Audit needs each accepted answer's `first_seq`/`last_seq`: an ACCEPTED
    answer without them is reported, since nothing else ties a command to
    its events.
    """

    def __init__(
        self,
        idempotency_probes_per_day: int = 20,
        rng: np.random.Generator | None = None,
        *,
        cross_tenant_probes: int = 2,
        max_probes: int = 100_000,
        max_pending: int = 1_000_000,
    ) -> None:
        """Set up empty checks.

        Args:
            idempotency_probes_per_day: commands sampled per tenant per day for
                re-sending (only commands with an idempotencyKey can be re-sent).
            rng: source of the sampling randomness; a fixed-seed generator
                when None, so a run's probes are reproducible either way.
            cross_tenant_probes: customers of each tenant whose id is used to
                query every other tenant's accounts at `finish`.
            max_probes: probes kept in `probes` for the run folder; later ones
                are still checked and counted, just not kept (flat memory).
            max_pending: event stretches allowed to wait for their answers;
                beyond that the oldest are reported and dropped (it means
                `on_results` is not being called).
        """
        if idempotency_probes_per_day < 0:
            raise ValueError("idempotency_probes_per_day must be >= 0")
        if cross_tenant_probes < 0 or max_probes < 0 or max_pending < 1:
            raise ValueError("probe and queue limits must be non-negative")
        generator = rng if rng is not None else np.random.default_rng(0)
        self.checks = CheckSet()
        self.probes_per_day = idempotency_probes_per_day
        self.cross_tenant_probes = cross_tenant_probes
        self.max_probes = max_probes
        self.max_pending = max_pending
        self.probes: list[dict[str, Any]] = []
        self.probes_done = 0
        self._entropy = int(generator.integers(0, 2**63))
        self._checkers: dict[str, TenantChecker] = {}
        self._queues: dict[str, _AuditQueue] = {}
        self._samples: dict[str, _Reservoir] = {}
        self._probing = False
        self._finished = False

    def replayed_balances(self, tenant_id: str) -> dict[str, int]:
        """Every account's balance as folded from the tenant's event stream (cents).

        This is the replay of the events alone, for expected-vs-actual tables;
        the fold itself is checked by `balance_derivability`.
        """
        checker = self._checkers.get(tenant_id)
        return dict(checker.fold) if checker is not None else {}

    @property
    def tenant_ids(self) -> list[str]:
        """Every tenant whose events the suite has seen, sorted."""
        return sorted(self._checkers)

    def checker(self, tenant_id: str) -> TenantChecker:
        """The tenant's checker (created on first sight)."""
        checker = self._checkers.get(tenant_id)
        if checker is None:
            queue = self._queues[tenant_id] = _AuditQueue()
            checker = self._checkers[tenant_id] = TenantChecker(tenant_id, self.checks, queue.push)
        return checker

    # ------------------------------------------------------------------ streaming

    def on_events(self, tenant_id: str, events: list[SealedEvent]) -> None:
        """Check one published batch of a tenant's sealed events (subscribe this)."""
        self.checker(tenant_id).live(events)
        queue = self._queues[tenant_id]
        if queue.claims:
            self._match(tenant_id, queue)
        overflow = len(queue.pending) - self.max_pending
        if overflow > 0:
            for _ in range(overflow):
                cid, first, last = queue.pending.popleft()
                self._orphan(
                    tenant_id, cid, first, last, "no answer arrived (is on_results wired?)"
                )

    def on_results(
        self, tenant_id: str, envelopes: Sequence[Envelope], results: Sequence[CommandResult]
    ) -> None:
        """Take a batch's answers: match them with their events; sample for probing.

        Only acknowledged (ACCEPTED) commands that carry an idempotencyKey are
        sampled: a command without a key cannot be re-sent safely, and a
        refusal is not an acknowledgement (nor always recorded: a command
        naming another tenant is refused before it reaches any tenant).
        """
        if self._probing:
            return
        self.checker(tenant_id)  # makes sure the tenant's queue exists
        queue = self._queues[tenant_id]
        queue.rejected_before = queue.rejected
        queue.rejected = {}
        self._audit_results(tenant_id, envelopes, results)
        if self.probes_per_day == 0:
            return
        sample = self._samples.get(tenant_id)
        if sample is None:
            sample = self._samples[tenant_id] = _Reservoir(
                self.probes_per_day,
                np.random.default_rng([self._entropy, _tenant_number(tenant_id)]),
            )
        for envelope, result in zip(envelopes, results, strict=False):
            if envelope.idempotency_key is not None and result.status == "ACCEPTED":
                sample.offer((sample.seen, envelope, result))

    def _audit_results(
        self, tenant_id: str, envelopes: Sequence[Envelope], results: Sequence[CommandResult]
    ) -> None:
        self.checker(tenant_id)  # makes sure the tenant's queue exists
        queue = self._queues[tenant_id]
        audit = self.checks.audit
        if len(envelopes) != len(results):
            audit.fail(
                {
                    "tenant": tenant_id,
                    "problem": f"{len(results)} answers for a batch of {len(envelopes)} commands",
                }
            )
        claims = queue.claims
        rejected = queue.rejected
        for envelope, result in zip(envelopes, results, strict=False):
            if result.status != "ACCEPTED":
                rejected[envelope.command_id] = result.rule
                continue
            first, last = result.first_seq, result.last_seq
            if first <= 0 or last < first:
                audit.fail(
                    {
                        "tenant": tenant_id,
                        "commandId": envelope.command_id,
                        "actual": [first, last],
                        "problem": "ACCEPTED without the seq range of the events it caused",
                    }
                )
            elif first <= queue.claimed_upto:
                if envelope.idempotency_key is None:
                    audit.fail(
                        {
                            "tenant": tenant_id,
                            "seq": first,
                            "commandId": envelope.command_id,
                            "problem": "a command without idempotencyKey was answered with "
                            "events already claimed by an earlier command",
                        }
                    )
            else:
                if result.command_id != envelope.command_id:
                    audit.fail(
                        {
                            "tenant": tenant_id,
                            "seq": first,
                            "commandId": envelope.command_id,
                            "actual": result.command_id,
                            "problem": "the answer names another command",
                        }
                    )
                claims.append([envelope.command_id, first, last, False])
                queue.claimed_upto = last
        self._match(tenant_id, queue)

    def _match(self, tenant_id: str, queue: _AuditQueue) -> None:
        """Pair stretches of events with the answers that claim them, in seq order."""
        pending, claims = queue.pending, queue.claims
        audit = self.checks.audit
        while pending and claims:
            cid, s_first, s_last = pending[0]
            claim = claims[0]
            c_cid, c_first, c_last, reported = claim
            if s_last < c_first:
                pending.popleft()
                self._orphan(tenant_id, cid, s_first, s_last)
            elif c_last < s_first:
                claims.popleft()
                if not reported:
                    self._unclaimed(tenant_id, claim)
            elif cid == c_cid and s_first == c_first and s_last == c_last:
                pending.popleft()
                claims.popleft()
                audit.examined += s_last - s_first + 1
            else:
                audit.examined += s_last - s_first + 1
                if not reported:
                    claim[3] = True
                    audit.fail(
                        {
                            "tenant": tenant_id,
                            "seq": max(s_first, c_first),
                            "commandId": c_cid,
                            "expected": [c_first, c_last],
                            "actual": {"causationId": cid, "seqs": [s_first, s_last]},
                            "problem": "the accepted command's seq range is not exactly "
                            "the events it caused",
                        }
                    )
                if s_last <= c_last:
                    pending.popleft()
                if c_last <= s_last:
                    claims.popleft()

    def _orphan(self, tenant_id: str, cid: str, first: int, last: int, why: str = "") -> None:
        self.checks.audit.examined += last - first + 1
        rule = self._queues[tenant_id].rejection(cid)
        if not cid:
            problem = "events without a causationId"
        elif rule is not False:
            problem = f"events caused by a command that was rejected ({rule})"
        else:
            problem = why or "events whose causationId no accepted command's answer claims"
        self.checks.audit.fail(
            {
                "tenant": tenant_id,
                "seq": first,
                "commandId": cid,
                "actual": [first, last],
                "problem": problem,
            }
        )

    def _unclaimed(self, tenant_id: str, claim: list[Any]) -> None:
        self.checks.audit.fail(
            {
                "tenant": tenant_id,
                "seq": claim[1],
                "commandId": claim[0],
                "expected": [claim[1], claim[2]],
                "problem": "accepted, but no events caused by it at the seqs its answer gives",
            }
        )

    # ------------------------------------------------------------------ idempotency

    def probe_idempotency(self, target: Target) -> None:
        """Re-send today's sampled commands; the answers and the chain must not change.

        Each sampled command is re-sent alone with its original envelope (same
        idempotencyKey); the replay must give the first answer again
        (status, rule, seq range, commandId) and leave the tenant's chain head
        where it was. The day's samples are then cleared.
        """
        for tenant_id in sorted(self._samples):
            sample = self._samples[tenant_id]
            items = sorted(sample.items, key=lambda item: item[0])
            sample.reset()
            for _index, envelope, first in items:
                self._probe(target, tenant_id, envelope, first)

    def _probe(
        self, target: Target, tenant_id: str, envelope: Envelope, first: CommandResult
    ) -> None:
        seq_before = target.head(tenant_id)[0]
        self._probing = True
        try:
            answers = target.submit(tenant_id, [envelope])
        finally:
            self._probing = False
        seq_after = target.head(tenant_id)[0]
        replay = answers[0] if len(answers) == 1 else None
        first_fields = result_fields(first)
        replay_fields = result_fields(replay)
        problems = []
        if replay is None:
            problems.append(f"{len(answers)} answers to one re-sent command")
        elif replay_fields != first_fields or replay.command_id != first.command_id:
            problems.append("the replay's answer differs from the first")
        if seq_after != seq_before:
            problems.append(f"the replay wrote events (head seq {seq_before} -> {seq_after})")
        probe = {
            "tenant": tenant_id,
            "commandId": envelope.command_id,
            "idempotencyKey": envelope.idempotency_key,
            "first": first_fields,
            "replay": replay_fields,
            "seqBefore": seq_before,
            "seqAfter": seq_after,
            "passed": not problems,
        }
        self.probes_done += 1
        self.checks.idempotency.examined += 1
        if problems:
            self.checks.idempotency.fail({**probe, "problem": "; ".join(problems)})
        if len(self.probes) < self.max_probes:
            self.probes.append(probe)
        self._audit_results(tenant_id, [envelope], answers)

    # ------------------------------------------------------------------ end of run

    def finish(
        self, target: Target, shadow: Mapping[str, Mapping[str, int]]
    ) -> dict[str, InvariantReport]:
        """Compare the stream with the platform's read API and the shadow book.

        Args:
            target: the platform, for its chain heads and read API.
            shadow: tenant -> accountId -> cents the twin expects.

        Returns:
            name -> report for the five invariants, in `INVARIANT_NAMES` order.
        """
        if self._finished:
            raise RuntimeError("finish() was already called")
        self._finished = True
        for tenant_id in sorted(set(self._checkers) | set(shadow)):
            self._finish_tenant(target, tenant_id, shadow.get(tenant_id))
        self._cross_tenant_probes(target)
        return self.checks.reports()

    def _finish_tenant(
        self, target: Target, tenant_id: str, shadow: Mapping[str, int] | None
    ) -> None:
        checker = self.checker(tenant_id)
        queue = self._queues[tenant_id]
        self._match(tenant_id, queue)
        while queue.pending:
            self._orphan(tenant_id, *queue.pending.popleft())
        while queue.claims:
            claim = queue.claims.popleft()
            if not claim[3]:
                self._unclaimed(tenant_id, claim)
        try:
            seq, head_hash = target.head(tenant_id)
        except KeyError:
            seq, head_hash = 0, None
        checker.compare_head(seq, head_hash, "the platform's head")
        balances = read_model_balances(target, tenant_id)
        accounts = [
            (row["accountId"], row["customerId"], balances.get(row["accountId"]))
            for row in all_accounts(target, tenant_id)
        ]
        customers = [row["customerId"] for row in all_customers(target, tenant_id)]
        checker.compare_read_model(accounts, customers, shadow)

    def _cross_tenant_probes(self, target: Target) -> None:
        """Ask each tenant for the accounts of a few of every other tenant's customers."""
        isolation = self.checks.isolation
        tenants = sorted(self._checkers)
        for owner in tenants:
            probes = sorted(self._checkers[owner].customers)[: self.cross_tenant_probes]
            for other in tenants:
                if other == owner:
                    continue
                for customer in probes:
                    isolation.examined += 1
                    try:
                        answer = target.accounts(other, customer_id=customer)
                    except (LookupError, PermissionError):
                        continue  # a refusal shows nothing of the other tenant
                    rows = answer.get("accounts") or []
                    if rows or answer.get("total"):
                        isolation.fail(
                            {
                                "tenant": other,
                                "customer": customer,
                                "owner": owner,
                                "actual": [row.get("accountId") for row in rows[:5]],
                                "problem": "accounts of another tenant's customer are visible",
                            }
                        )


def _tenant_number(tenant_id: str) -> int:
    """A stable 64-bit number per tenant (seeds its sampling stream)."""
    return int.from_bytes(hashlib.sha256(tenant_id.encode()).digest()[:8], "big")
