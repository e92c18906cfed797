"""The one seam between the twin and a TuringCore platform.

A `Target` takes batches of command envelopes for one tenant and answers each,
publishes the tenant's sealed events to subscribers, and answers the
contract's read queries. The embedded reference platform is the default; an
HTTP target (issue 4) implements the same Protocol over the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from turingcore.contract import CommandResult, Envelope
from turingcore.embedded import EmbeddedPlatform
from turingcore.eventlog import EventLogWriter
from turingcore.events import SealedEvent
from turingcore.money import parse_cents

Listener = Callable[[str, list[SealedEvent]], None]


class Target(Protocol):
    """What the twin needs from a platform, and nothing more."""

    name: str

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """Process a batch in order as `tenant_id`; one answer per command."""
        ...

    def subscribe(self, listener: Listener) -> None:
        """Receive each tenant's sealed events in chain order."""
        ...

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]: ...

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]: ...

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's chain head."""
        ...

    def close(self) -> None: ...


class EmbeddedTarget:
    """The reference platform in-process: no servers, batches straight in."""

    name = "embedded"

    def __init__(self, event_log: Path | None = None, idempotency_days: int = 2) -> None:
        self.log = EventLogWriter(event_log) if event_log is not None else None
        self.platform = EmbeddedPlatform(self.log, idempotency_days=idempotency_days)

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        return self.platform.submit(tenant_id, commands)

    def subscribe(self, listener: Listener) -> None:
        self.platform.subscribe(listener)

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return self.platform.customers(tenant_id, limit, offset)

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        return self.platform.accounts(tenant_id, customer_id, limit, offset)

    def head(self, tenant_id: str) -> tuple[int, str]:
        return self.platform.head(tenant_id)

    def close(self) -> None:
        self.platform.close()


def all_accounts(target: Target, tenant_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every member account of a tenant through the contract's paged listing."""
    offset = 0
    while True:
        answer = target.accounts(tenant_id, limit=page, offset=offset)
        rows = answer["accounts"]
        yield from rows
        offset += len(rows)
        if not rows or offset >= answer["total"]:
            return


def all_customers(target: Target, tenant_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every customer of a tenant through the contract's paged listing."""
    offset = 0
    while True:
        answer = target.customers(tenant_id, limit=page, offset=offset)
        rows = answer["customers"]
        yield from rows
        offset += len(rows)
        if not rows or offset >= answer["total"]:
            return


def read_model_balances(target: Target, tenant_id: str) -> dict[str, int]:
    """accountId -> balance in cents, as the platform's read API reports it."""
    return {
        row["accountId"]: parse_cents(abs(row["balance"]), "balance")
        * (-1 if row["balance"] < 0 else 1)
        for row in all_accounts(target, tenant_id)
    }
