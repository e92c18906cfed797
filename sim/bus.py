"""The command bus: every command the twin sends goes through here.

It submits a tenant's batch to the target and hands each (envelopes, results)
pair to the observers that need to see every answer: the invariant suite
(audit completeness, idempotency samples) and the day's counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sim.target import Target
from turingcore.contract import CommandResult, Envelope

ResultObserver = Callable[[str, Sequence[Envelope], Sequence[CommandResult]], None]


class CommandBus:
    """Submits batches and lets observers see every answer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.observers: list[ResultObserver] = []

    def observe(self, observer: ResultObserver) -> None:
        self.observers.append(observer)

    def submit(self, tenant_id: str, envelopes: Sequence[Envelope]) -> list[CommandResult]:
        """Submit in order; one result per envelope, seen by every observer."""
        if not envelopes:
            return []
        results = self.target.submit(tenant_id, envelopes)
        if len(results) != len(envelopes):
            raise RuntimeError(
                f"target answered {len(results)} results for {len(envelopes)} commands"
            )
        for observer in self.observers:
            observer(tenant_id, envelopes, results)
        return results
