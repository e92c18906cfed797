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
        self._observe(tenant_id, envelopes, results)
        return results

    def submit_many(
        self, batches: Sequence[tuple[str, Sequence[Envelope]]]
    ) -> list[list[CommandResult]]:
        """Several tenants' batches at one instant; one answer list per batch, in order.

        A target with `submit_many` (HttpTarget) sends them concurrently, each
        tenant's commands still in order; observers then see each tenant's
        answers in the order given, so a run is the same whichever target it
        uses. Tenants must not repeat within one call; an empty batch is not
        sent and answers [].
        """
        tenants = [tenant for tenant, _envelopes in batches]
        if len(set(tenants)) != len(tenants):
            raise ValueError(f"a tenant appears twice in one submit_many: {tenants}")
        sent = [(tenant, envelopes) for tenant, envelopes in batches if envelopes]
        many = getattr(self.target, "submit_many", None)
        if many is None:
            answers = [self.target.submit(tenant, envelopes) for tenant, envelopes in sent]
        else:
            answers = many(sent)
        for (tenant_id, envelopes), results in zip(sent, answers, strict=True):
            self._observe(tenant_id, envelopes, results)
        by_tenant = dict(zip((tenant for tenant, _e in sent), answers, strict=True))
        return [by_tenant.get(tenant, []) for tenant in tenants]

    def _observe(
        self, tenant_id: str, envelopes: Sequence[Envelope], results: list[CommandResult]
    ) -> None:
        """Check there is one answer per command, then show them to every observer."""
        if len(results) != len(envelopes):
            raise RuntimeError(
                f"target answered {len(results)} results for {len(envelopes)} commands"
            )
        for observer in self.observers:
            observer(tenant_id, envelopes, results)
