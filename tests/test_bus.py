"""The command bus: one answer per command, and every observer sees every answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from models.products import skeleton_products
from sim.bus import CommandBus
from sim.contract import CommandIds
from sim.target import EmbeddedTarget
from turingcore.contract import CommandResult, CreateTenant, Envelope

STAMP = "2025-07-01T09:00:00+10:00"


class ScriptedTarget:
    """A target that answers from a script: a function of the batch."""

    name = "scripted"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, list[Envelope]]] = []

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        self.calls.append((tenant_id, list(commands)))
        return self.answer(commands)


def accept_all(commands: Sequence[Envelope]) -> list[CommandResult]:
    """ACCEPTED for each command, one seq each."""
    return [
        CommandResult(c.command_id, "ACCEPTED", c.command_id, STAMP, first_seq=i, last_seq=i)
        for i, c in enumerate(commands, 1)
    ]


def envelopes(tenant: str, count: int) -> list[Envelope]:
    """`count` CreateTenant envelopes (their content does not matter to the bus)."""
    ids = CommandIds(1, tenant)
    payload = CreateTenant("CU_X", "X", "AU", "AUD", "Australia/Sydney")
    return [ids.envelope("CreateTenant", STAMP, payload) for _ in range(count)]


def test_every_observer_sees_every_batch_with_its_results() -> None:
    """Observers get (tenant, envelopes, results) for each submit, in registration order."""
    target = ScriptedTarget(accept_all)
    bus = CommandBus(target)
    seen: list[tuple[str, str, list[str], list[str]]] = []
    for name in ("first", "second"):
        bus.observe(
            lambda tenant, sent, results, name=name: seen.append(
                (name, tenant, [e.command_id for e in sent], [r.command_id for r in results])
            )
        )
    batch_a, batch_b = envelopes("cu-a", 3), envelopes("cu-b", 2)
    results_a = bus.submit("cu-a", batch_a)
    results_b = bus.submit("cu-b", batch_b)
    assert [r.command_id for r in results_a] == [e.command_id for e in batch_a]
    assert len(results_b) == 2
    ids_a = [e.command_id for e in batch_a]
    ids_b = [e.command_id for e in batch_b]
    assert seen == [
        ("first", "cu-a", ids_a, ids_a),
        ("second", "cu-a", ids_a, ids_a),
        ("first", "cu-b", ids_b, ids_b),
        ("second", "cu-b", ids_b, ids_b),
    ]
    assert [tenant for tenant, _ in target.calls] == ["cu-a", "cu-b"]


def test_observers_get_the_very_objects_returned() -> None:
    """The results an observer sees are the ones submit returns, not copies."""
    bus = CommandBus(ScriptedTarget(accept_all))
    got: list[Any] = []
    bus.observe(lambda _tenant, sent, results: got.append((sent, results)))
    batch = envelopes("cu-a", 2)
    results = bus.submit("cu-a", batch)
    assert got[0][0] is batch
    assert got[0][1] is results


def test_an_empty_batch_goes_nowhere() -> None:
    """Submitting nothing returns [] without calling the target or any observer."""
    target = ScriptedTarget(accept_all)
    bus = CommandBus(target)
    bus.observe(lambda *_args: pytest.fail("observer called for an empty batch"))
    assert bus.submit("cu-a", []) == []
    assert target.calls == []


@pytest.mark.parametrize("answers", [0, 1, 3])
def test_a_wrong_number_of_results_raises(answers: int) -> None:
    """A target answering more or fewer results than commands is an error; nobody observes it."""
    target = ScriptedTarget(lambda commands: accept_all(envelopes("cu-a", answers)))
    bus = CommandBus(target)
    bus.observe(lambda *_args: pytest.fail("observer saw a mismatched batch"))
    with pytest.raises(RuntimeError, match=f"target answered {answers} results for 2 commands"):
        bus.submit("cu-a", envelopes("cu-a", 2))


def test_bus_over_the_embedded_platform() -> None:
    """Through the real platform: the set-up batch is accepted and observed once."""
    target = EmbeddedTarget()
    bus = CommandBus(target)
    observed: list[tuple[str, int, list[str]]] = []
    bus.observe(
        lambda tenant, sent, results: observed.append(
            (tenant, len(sent), [r.status for r in results])
        )
    )
    ids = CommandIds(5, "cu-a")
    batch = [
        ids.envelope(
            "CreateTenant",
            STAMP,
            CreateTenant("CU_A", "Alpha", "AU", "AUD", "Australia/Sydney"),
        ),
        *(ids.envelope("UpsertProduct", STAMP, product) for product in skeleton_products()),
    ]
    results = bus.submit("cu-a", batch)
    assert [r.status for r in results] == ["ACCEPTED"] * 3
    assert observed == [("cu-a", 3, ["ACCEPTED"] * 3)]
    assert target.head("cu-a")[0] == results[-1].last_seq
    target.close()


def test_submit_many_answers_each_batch_in_order_and_skips_empty_ones() -> None:
    """One answer list per batch as given ([] for an empty one, never sent); observers see
    the sent batches in that order, on a target without submit_many of its own."""
    target = ScriptedTarget(accept_all)
    bus = CommandBus(target)
    seen: list[str] = []
    bus.observe(lambda tenant, _sent, _results: seen.append(tenant))
    batch_b, batch_a = envelopes("cu-b", 2), envelopes("cu-a", 3)
    answers = bus.submit_many([("cu-b", batch_b), ("cu-c", []), ("cu-a", batch_a)])
    assert [[r.command_id for r in a] for a in answers] == [
        [e.command_id for e in batch_b],
        [],
        [e.command_id for e in batch_a],
    ]
    assert seen == ["cu-b", "cu-a"]
    assert [tenant for tenant, _ in target.calls] == ["cu-b", "cu-a"]


def test_submit_many_refuses_a_tenant_twice() -> None:
    """Two batches of one tenant in one call would race: refused before anything is sent."""
    target = ScriptedTarget(accept_all)
    bus = CommandBus(target)
    with pytest.raises(ValueError, match="appears twice"):
        bus.submit_many([("cu-a", envelopes("cu-a", 1)), ("cu-a", envelopes("cu-a", 1))])
    assert target.calls == []
