"""The seams of the platform's imperative shell: what a ledger store offers, what a relay reads.

The pure core (`turingcore.domain`) is the same everywhere; these Protocols
are the shapes of the shells around it, so the HTTP service
(`turingcore.service`) serves any of them and the Kafka relay
(`turingcore.relay`) drains any outbox:

- `Ledger`: what the service calls. `turingcore.memledger.MemoryLedger`
  (an `EmbeddedPlatform` with locks and `RetainedEvents`, so the read API can
  page events) and `turingcore.pgstore.PostgresLedger` (PostgreSQL,
  row-level security) implement it. The service runs it from a thread pool,
  so an implementation must be thread-safe; it may also offer `ready()`
  (truthy when reachable; `/readyz` is 503 when it is falsy or raises).
  The caller has already authenticated the tenant: every method takes it
  as its first argument and never reads it from a body.
- `Outbox`: what the relay reads. Every sealed event is written to an outbox
  row in the same transaction as the ledger; the relay publishes rows in seq
  order per tenant and marks them sent only after the broker acknowledged
  them, so the database stays the system of record.

Event JSON everywhere (HTTP answers, outbox rows, Kafka message values) is
the contract's EventEnvelope: the canonical object plus `hash`
(`SealedEvent.to_json_bytes()`), from which any consumer re-derives the
canonical bytes (`turingcore.events.canonical_from_json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from turingcore.contract import CommandResult, Envelope


class NotFound(LookupError):
    """The tenant or entity does not exist *for this caller* (the API's 404).

    Another tenant's id is indistinguishable from a missing one.
    """


class Ledger(Protocol):
    """A TuringCore store behind the contract's HTTP surface."""

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """Process a batch in order as `tenant_id`; one answer per command, same order."""
        ...

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """`{customers: [CustomerSummary], total, limit, offset}` for this tenant only.

        Raises:
            NotFound: the tenant does not exist (yet).
        """
        ...

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """`{accounts: [AccountSummary], total}` for this tenant only (balances as decimals).

        Raises:
            NotFound: the tenant does not exist, or `customer_id` is not its customer.
        """
        ...

    def account_events(self, tenant_id: str, account_id: str, limit: int = 100) -> list[bytes]:
        """EventEnvelope JSON of the events whose entity is `account_id`, in seq order.

        Raises:
            NotFound: the account is not this tenant's.
        """
        ...

    def tenant_events(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[bytes]:
        """EventEnvelope JSON of the tenant's events with seq > `after_seq`, in seq order.

        An additive read (not in CONTRACT.md's table) so a client can follow a
        tenant's chain over HTTP when no Kafka is at hand.
        """
        ...

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's chain head; (0, 64 zeros) before its first event."""
        ...

    def close(self) -> None: ...


class OutboxRow(NamedTuple):
    """One event waiting to be published to `ledger_events.<tenant_id>`."""

    tenant_id: str
    seq: int
    entity_id: str
    value: bytes  # EventEnvelope JSON


class Outbox(Protocol):
    """The relay's view of the store: unsent events, oldest first, per tenant."""

    def tenants_with_unsent(self) -> list[str]:
        """Tenants that have at least one unsent outbox row."""
        ...

    def unsent(self, tenant_id: str, limit: int = 5000) -> list[OutboxRow]:
        """The tenant's unsent rows in seq order (at most `limit`)."""
        ...

    def mark_sent(self, tenant_id: str, through_seq: int) -> None:
        """Every row of the tenant with seq <= `through_seq` was acknowledged by the broker."""
        ...

    def mark_unsent_from(self, tenant_id: str, first_seq: int) -> int:
        """Make rows with seq >= `first_seq` unsent again (the broker lost them); how many."""
        ...

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's chain head in the store."""
        ...


def topic_for(tenant_id: str) -> str:
    """The Kafka topic of a tenant's chain (one partition, so offset = seq - 1)."""
    return f"ledger_events.{tenant_id}"
