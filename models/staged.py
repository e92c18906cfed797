"""Entries a model queues at one instant and submits together.

Lending and credit cards build several entries per member at a statement or
a due date: each is applied to the shadow book as it is staged (predicted
accepted, so the next entry sees its effect), then all go to the platform as
one batch; a refused entry is reverted in the shadow book and counted as a
prediction miss.
"""

from __future__ import annotations

from datetime import date

from models.world import TenantWorld
from turingcore.contract import Leg, PostEntry


class StagedEntries:
    """A tenant model's queue of PostEntry commands for one instant."""

    def __init__(self, world: TenantWorld) -> None:
        self.world = world
        self._staged: list[tuple[list[Leg], str, dict[str, str]]] = []

    def stage(self, legs: list[Leg], narrative: str, tags: dict[str, str]) -> int:
        """Queue an entry, applying it to the shadow book now; its index in the batch."""
        self.world.shadow.apply(legs)
        self._staged.append((legs, narrative, tags))
        return len(self._staged) - 1

    def flush(self, t: float, day: date) -> list[tuple[list[Leg], bool]]:
        """Submit the queued entries in order; (legs, accepted) for each, refused ones undone."""
        staged, self._staged = self._staged, []
        if not staged:
            return []
        world = self.world
        stamp = world.clock.iso_at(t)
        currency = world.scenario.currency
        envelopes = [
            world.ids.envelope(
                "PostEntry",
                stamp,
                PostEntry(day, day, currency, legs, narrative, tags, world.metadata),
            )
            for legs, narrative, tags in staged
        ]
        results = world.bus.submit(world.tenant_id, envelopes)
        done = []
        for (legs, _narrative, _tags), result in zip(staged, results, strict=True):
            if not result.accepted:
                world.shadow.revert(legs)
                world.totals.prediction_misses += 1
            done.append((legs, result.accepted))
        return done
