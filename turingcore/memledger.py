"""`MemoryLedger`: the embedded platform behind the `Ledger` seam, safe for a threaded server.

The HTTP service (`turingcore.service`) runs blocking ledger calls in a
thread pool, so a store it serves must be thread-safe. `EmbeddedPlatform` is
not (it is built for one simulation thread); this module composes it rather
than changing it:

- one lock per tenant serialises that tenant's writes and reads (its chain,
  read model, idempotency keys and monitor are its own), so tenants proceed
  in parallel and each chain stays gap-free;
- a platform lock is also taken by any batch holding a CreateTenant, the only
  command that reads and writes state shared across tenants (which tenant
  codes are taken). Locks are always taken tenant first, platform second, and
  a thread holds one tenant lock at a time, so they cannot deadlock;
- `RetainedEvents` is the platform's event sink: it keeps every sealed
  event's EventEnvelope JSON in memory, per tenant in seq order and indexed
  by entity, so the read API can page a tenant's chain and an account's events.

It is the store of `turingcore serve --store memory` and of the service's
tests; nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from turingcore.contract import CommandResult, Envelope
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH, SealedEvent
from turingcore.ledger import NotFound
from turingcore.monitor import MonitorConfig

#: Most events one read returns (the service's own limit is the same).
MAX_PAGE = 1000


class RetainedEvents:
    """An event sink that keeps every tenant's events as EventEnvelope JSON bytes.

    Only the JSON is kept (not the Event objects), about half a kilobyte an
    event. A tenant's event with seq `n` sits at index `n - 1` of its log.
    """

    def __init__(self) -> None:
        self._logs: dict[str, list[bytes]] = {}
        self._by_entity: dict[str, dict[str, list[int]]] = {}

    def append(self, tenant_id: str, events: Sequence[SealedEvent]) -> None:
        """Keep a batch of sealed events (called by the platform, in chain order).

        Raises:
            ValueError: an event out of seq order (a gap would corrupt paging).
        """
        log = self._logs.setdefault(tenant_id, [])
        index = self._by_entity.setdefault(tenant_id, {})
        for sealed in events:
            event = sealed.event
            position = len(log)
            if event.seq != position + 1:
                raise ValueError(
                    f"tenant {tenant_id}: event seq {event.seq} after {position} retained"
                )
            log.append(sealed.to_json_bytes())
            entity = index.get(event.entity_id)
            if entity is None:
                index[event.entity_id] = [position]
            else:
                entity.append(position)

    def rejected(self, tenant_id: str, envelope: Envelope, result: CommandResult) -> None:
        """Refusals write nothing (their answer is kept with the idempotency key)."""

    def close(self) -> None:
        """Nothing to flush: everything lives in memory."""

    def after(self, tenant_id: str, after_seq: int, limit: int) -> list[bytes]:
        """The tenant's events with seq > `after_seq`, at most `limit`, in seq order."""
        log = self._logs.get(tenant_id, [])
        start = max(after_seq, 0)
        return log[start : start + limit]

    def of_entity(self, tenant_id: str, entity_id: str, limit: int) -> list[bytes]:
        """The first `limit` events whose entity is `entity_id`, in seq order."""
        log = self._logs.get(tenant_id, [])
        positions = self._by_entity.get(tenant_id, {}).get(entity_id, [])
        return [log[position] for position in positions[:limit]]

    def count(self, tenant_id: str) -> int:
        """How many events of the tenant are retained."""
        return len(self._logs.get(tenant_id, ()))


class MemoryLedger:
    """The `Ledger` of the in-memory store: an `EmbeddedPlatform` with retained events."""

    def __init__(self, idempotency_days: int = 2, monitor: MonitorConfig | None = None) -> None:
        self.events = RetainedEvents()
        self.platform = EmbeddedPlatform(self.events, idempotency_days, monitor)
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._platform_lock = threading.Lock()

    def _lock(self, tenant_id: str) -> threading.Lock:
        lock = self._tenant_locks.get(tenant_id)
        if lock is None:
            with self._locks_guard:
                lock = self._tenant_locks.setdefault(tenant_id, threading.Lock())
        return lock

    # ------------------------------------------------------------------ write side

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """Process a batch in order as `tenant_id`; one answer per command, same order."""
        with self._lock(tenant_id):
            if any(envelope.command_type == "CreateTenant" for envelope in commands):
                with self._platform_lock:
                    return self.platform.submit(tenant_id, commands)
            return self.platform.submit(tenant_id, commands)

    # ------------------------------------------------------------------ read side

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """`{customers, total, limit, offset}` for this tenant only.

        Raises:
            NotFound: the tenant does not exist.
        """
        with self._lock(tenant_id):
            self._existing(tenant_id)
            return self.platform.customers(tenant_id, limit, offset)

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """`{accounts, total}` for this tenant only (balances as exact decimals).

        Raises:
            NotFound: the tenant does not exist, or `customer_id` is not its customer.
        """
        with self._lock(tenant_id):
            state = self._existing(tenant_id)
            if customer_id is not None and customer_id not in state.customers:
                raise NotFound(f"no customer {customer_id}")
            return self.platform.accounts(tenant_id, customer_id, limit, offset)

    def account_events(self, tenant_id: str, account_id: str, limit: int = 100) -> list[bytes]:
        """EventEnvelope JSON of the account's events, in seq order (the first `limit`).

        Raises:
            NotFound: the account is not this tenant's.
        """
        with self._lock(tenant_id):
            state = self._existing(tenant_id)
            if account_id not in state.accounts:
                raise NotFound(f"no account {account_id}")
            return self.events.of_entity(tenant_id, account_id, _checked_limit(limit))

    def tenant_events(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[bytes]:
        """EventEnvelope JSON of the tenant's events with seq > `after_seq` (none before any)."""
        with self._lock(tenant_id):
            return self.events.after(tenant_id, after_seq, _checked_limit(limit))

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's chain head; (0, 64 zeros) before its first event."""
        with self._lock(tenant_id):
            state = self.platform.tenants.get(tenant_id)
            return (state.seq, state.head) if state is not None else (0, GENESIS_HASH)

    def ready(self) -> bool:
        """Always ready: the store is this process's memory."""
        return True

    def close(self) -> None:
        """Close the platform (and its sink)."""
        self.platform.close()

    def _existing(self, tenant_id: str) -> Any:
        state = self.platform.tenant(tenant_id)
        if state is None:
            raise NotFound(f"no tenant {tenant_id}")
        return state


def _checked_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    return limit
