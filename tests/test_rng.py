"""Tests for sim.rng: named, reproducible, order-independent random streams."""

from __future__ import annotations

import numpy as np
import pytest

from sim.rng import RandomStreams


def test_same_seed_and_name_reproduce_draws() -> None:
    """Two runs with the same seed get identical draws from the same-named stream."""
    a = RandomStreams(42).stream("tenant-1", "cards").integers(0, 2**62, size=100)
    b = RandomStreams(42).stream("tenant-1", "cards").integers(0, 2**62, size=100)
    np.testing.assert_array_equal(a, b)


def test_same_name_returns_the_same_generator_object() -> None:
    """A name owns one Generator: asking again continues its sequence rather than restarting."""
    shared = RandomStreams(5)
    first = shared.stream("x")
    assert shared.stream("x") is first
    head = shared.stream("x").random(3)
    tail = shared.stream("x").random(3)
    np.testing.assert_array_equal(
        np.concatenate([head, tail]), RandomStreams(5).stream("x").random(6)
    )


@pytest.mark.parametrize(
    ("name_a", "name_b"),
    [
        (("t1", "cards"), ("t2", "cards")),
        (("t1", "cards"), ("t1", "bills")),
        (("ab",), ("a", "b")),
        (("a",), ("a", "")),
        (("t1", "cards"), ("cards", "t1")),
    ],
)
def test_different_names_give_different_draws(
    name_a: tuple[str, ...], name_b: tuple[str, ...]
) -> None:
    """Distinct names, even concatenation look-alikes and swapped parts, are distinct streams."""
    streams = RandomStreams(7)
    a = streams.stream(*name_a).integers(0, 2**62, size=8)
    b = streams.stream(*name_b).integers(0, 2**62, size=8)
    assert not np.array_equal(a, b)


def test_different_seeds_give_different_draws() -> None:
    """The root seed changes every stream."""
    a = RandomStreams(1).stream("t1", "cards").integers(0, 2**62, size=8)
    b = RandomStreams(2).stream("t1", "cards").integers(0, 2**62, size=8)
    assert not np.array_equal(a, b)


def test_stream_does_not_depend_on_other_streams_or_order() -> None:
    """A stream's draws are the same whatever else was requested and drawn before it."""
    alone = RandomStreams(99).stream("t1", "loans").normal(size=20)

    busy = RandomStreams(99)
    busy.stream("t2", "cards").normal(size=1000)
    busy.stream("t1", "members").integers(0, 10, size=57)
    busy.stream("zzz")
    after_others = busy.stream("t1", "loans").normal(size=20)

    np.testing.assert_array_equal(alone, after_others)


def test_names_records_streams_in_first_request_order() -> None:
    """names() lists each stream handed out once, in the order first requested, as a copy."""
    streams = RandomStreams(3)
    streams.stream("b", "x")
    streams.stream("a")
    streams.stream("b", "x")
    streams.child_seed("not", "a", "stream")
    names = streams.names()
    assert names == [("b", "x"), ("a",)]
    names.append(("mutated",))
    assert streams.names() == [("b", "x"), ("a",)]


def test_child_seed_is_stable_and_in_range() -> None:
    """child_seed is a pure function of (seed, name), a non-negative int below 2**63."""
    seeds = {RandomStreams(11).child_seed("t1", "identity") for _ in range(3)}
    assert len(seeds) == 1
    (value,) = seeds
    assert type(value) is int
    assert 0 <= value < 2**63


def test_child_seed_differs_by_name_and_seed() -> None:
    """Different names or root seeds give different child seeds."""
    values = {
        RandomStreams(11).child_seed("t1", "identity"),
        RandomStreams(11).child_seed("t2", "identity"),
        RandomStreams(11).child_seed("t1", "other"),
        RandomStreams(12).child_seed("t1", "identity"),
    }
    assert len(values) == 4


def test_child_seed_neither_consumes_nor_mirrors_the_stream() -> None:
    """child_seed leaves the same-named stream untouched and is not one of its draws."""
    streams = RandomStreams(11)
    seed = streams.child_seed("t1", "identity")
    draws = streams.stream("t1", "identity").integers(0, 2**63, size=4, dtype=np.uint64)
    fresh = RandomStreams(11).stream("t1", "identity").integers(0, 2**63, size=4, dtype=np.uint64)
    np.testing.assert_array_equal(draws, fresh)
    assert seed not in {int(x) for x in draws}
    assert streams.names() == [("t1", "identity")]


def test_child_seed_works_with_faker_seed_instance() -> None:
    """child_seed is accepted by Faker.seed_instance and reproduces fake data per instance."""
    from faker import Faker

    streams = RandomStreams(2024)
    names = []
    for _ in range(2):
        fake = Faker("en_AU")
        fake.seed_instance(streams.child_seed("t1", "identity"))
        names.append([fake.name() for _ in range(5)])
    assert names[0] == names[1]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True, 2.0])
def test_bad_seed_refused(bad: object) -> None:
    """Negative, non-integer and bool seeds are refused with ValueError."""
    with pytest.raises(ValueError, match="non-negative int"):
        RandomStreams(bad)  # type: ignore[arg-type]


def test_numpy_integer_seed_accepted() -> None:
    """A numpy integer seed behaves like the equal Python int."""
    a = RandomStreams(np.int64(8)).stream("t").random(4)
    b = RandomStreams(8).stream("t").random(4)
    assert RandomStreams(np.int64(8)).seed == 8
    np.testing.assert_array_equal(a, b)


def test_bad_names_refused() -> None:
    """An empty name and non-str parts are refused rather than silently aliased."""
    streams = RandomStreams(0)
    with pytest.raises(ValueError, match="at least one part"):
        streams.stream()
    with pytest.raises(TypeError, match="must be str"):
        streams.stream("t1", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one part"):
        streams.child_seed()
