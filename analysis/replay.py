"""Rebuild a tenant's balances from its stored events alone.

The replay runs the platform's own fold (`turingcore.domain.evolve`) over the
event log of a run folder (or a tenant's Kafka topic, `analysis.kafka_verify`),
from genesis, so the result is what the platform's
read model must have been. With a time window it reports each account's
balance when the window opens and when it closes, and the change between.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

from turingcore.domain import TenantState, evolve
from turingcore.eventlog import EventLogError, EventLogReader
from turingcore.events import ChainVerifier, Event

_DECODE = msgspec.json.Decoder()


class ReplayError(ValueError):
    """Bad input to a replay: missing run, unknown tenant, bad timestamp."""


@dataclass(frozen=True, slots=True)
class ReplayedAccount:
    """One account's balances rebuilt from events (cents)."""

    account_id: str
    customer_id: str | None
    product_code: str
    balance_at_start: int
    balance_at_end: int

    @property
    def change(self) -> int:
        return self.balance_at_end - self.balance_at_start


@dataclass(frozen=True, slots=True)
class Replay:
    tenant_id: str
    events_applied: int
    last_seq: int
    head_hash: str
    accounts: tuple[ReplayedAccount, ...]
    #: chain problems met while replaying (tenant and seq named); empty when it verifies
    problems: tuple[str, ...] = ()


def parse_timestamp(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset, or None; errors name the option."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(f"{option}: {text!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ReplayError(f"{option}: {text!r} needs a UTC offset, e.g. 2025-07-01T00:00+10:00")
    return moment


def replay_tenant(
    run_dir: Path,
    tenant_id: str,
    from_timestamp: datetime | None = None,
    to_timestamp: datetime | None = None,
) -> Replay:
    """Fold the tenant's events of a run folder up to `to_timestamp` (all if None)."""
    log_path = Path(run_dir) / "events.sqlite"
    if not Path(run_dir).is_dir():
        raise ReplayError(f"{run_dir}: no such run folder")
    try:
        reader = EventLogReader(log_path)
    except EventLogError as exc:
        raise ReplayError(str(exc)) from None
    with reader:
        tenants = reader.tenants()
        if tenant_id not in tenants:
            known = ", ".join(tenants) or "none"
            raise ReplayError(f"tenant {tenant_id!r} is not in {log_path} (tenants: {known})")

        def stored_events() -> Iterator[tuple[bytes, str]]:
            for stored in reader.events(tenant_id):
                if stored.corrupt is not None:
                    raise ReplayError(f"{log_path}: tenant {tenant_id}: {stored.corrupt}")
                yield stored.canonical, stored.hash

        return replay_events(
            tenant_id, stored_events(), str(log_path), from_timestamp, to_timestamp
        )


def replay_events(
    tenant_id: str,
    events: Iterable[tuple[bytes, str]],
    where: str,
    from_timestamp: datetime | None = None,
    to_timestamp: datetime | None = None,
) -> Replay:
    """Fold a tenant's events, given as (canonical bytes, hash) in chain order.

    The source may be a run folder's event log (`replay_tenant`) or a Kafka
    topic (`analysis.kafka_verify.replay_topic`); `where` names it in errors.
    The chain is verified on the way; its problems are in `Replay.problems`.
    """
    state = TenantState(tenant_id)
    at_start: dict[str, int] | None = None if from_timestamp is not None else {}
    applied = 0
    verifier = ChainVerifier(tenant_id)
    problems: list[str] = []
    for canonical, claimed in events:
        try:
            body = _DECODE.decode(canonical)
            event = msgspec.convert(body, Event)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ReplayError(
                f"{where}: tenant {tenant_id}: event after seq {state.seq} is unreadable ({exc})"
            ) from None
        for problem in verifier.check(body, canonical, claimed):
            problems.append(f"tenant {problem.tenant_id} seq {problem.seq}: {problem.problem}")
        moment = datetime.fromisoformat(event.occurred_at)
        if to_timestamp is not None and moment > to_timestamp:
            break
        if at_start is None and from_timestamp is not None and moment >= from_timestamp:
            at_start = {a.account_id: a.balance for a in state.accounts.values()}
        evolve(state, event, claimed)
        applied += 1
    if at_start is None:
        at_start = {a.account_id: a.balance for a in state.accounts.values()}
    accounts = tuple(
        ReplayedAccount(
            account.account_id,
            account.customer_id,
            account.product_code,
            at_start.get(account.account_id, 0),
            account.balance,
        )
        for account in state.accounts.values()
    )
    return Replay(tenant_id, applied, state.seq, state.head, accounts, tuple(problems))
