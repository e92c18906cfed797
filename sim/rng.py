"""Named, order-independent random streams derived from one root seed.

A run has exactly one root seed. Every consumer of randomness (a model for a
tenant, the identity factory, a fraud campaign...) asks for a stream by *name*,
and the stream is derived from the root seed and that name alone. That is what
makes runs reproducible while modules are added, removed or reordered: adding a
new model never shifts the draws of an existing one, because no stream depends
on which other streams exist or in which order they were requested.

Derivation: each name part is hashed with SHA-256 and its digest split into
eight 32-bit words; the words of all parts form the ``spawn_key`` of a
``numpy.random.SeedSequence(entropy=seed, ...)``. A leading domain word keeps
numpy streams (word 0) and integer child seeds (word 1) apart, so a Faker
instance seeded from ``child_seed("t1", "identity")`` shares no state words with
``stream("t1", "identity")``. Fixed-width parts make the key injective:
``("ab",)`` and ``("a", "b")`` are different streams.
"""

from __future__ import annotations

import hashlib

import numpy as np

_STREAM_DOMAIN = 0
_CHILD_SEED_DOMAIN = 1


def _name_words(name: tuple[str, ...]) -> tuple[int, ...]:
    """Turn a stream name into fixed-width 32-bit words.

    SHA-256 rather than ``hash()`` because Python's string hash is salted per
    process and would make streams differ between runs.

    Raises:
        ValueError: if the name is empty (an unnamed stream would be the root
            sequence itself and collide with nothing meaningful).
        TypeError: if a part is not a ``str``.
    """
    if not name:
        raise ValueError("a stream name needs at least one part, e.g. ('tenant-1', 'cards')")
    words: list[int] = []
    for part in name:
        if not isinstance(part, str):
            raise TypeError(f"stream name parts must be str, got {type(part).__name__}: {part!r}")
        digest = hashlib.sha256(part.encode("utf-8")).digest()
        words.extend(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))
    return tuple(words)


class RandomStreams:
    """One root seed per run; a named numpy stream per (tenant, model).

    Attributes:
        seed: The root seed of the run (recorded in the run manifest).
    """

    seed: int

    def __init__(self, seed: int) -> None:
        """Hold the root seed; streams are created lazily on first request.

        Args:
            seed: Non-negative integer root seed (Python or numpy integer).

        Raises:
            ValueError: if ``seed`` is not a non-negative integer (``bool`` is
                refused too: ``RandomStreams(True)`` is always a bug).
        """
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(
                f"seed must be a non-negative int, got {type(seed).__name__}: {seed!r}"
            )
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self.seed = int(seed)
        self._streams: dict[tuple[str, ...], np.random.Generator] = {}

    def _sequence(self, domain: int, name: tuple[str, ...]) -> np.random.SeedSequence:
        """Derive the SeedSequence for ``name`` within ``domain`` from the root seed only."""
        return np.random.SeedSequence(entropy=self.seed, spawn_key=(domain, *_name_words(name)))

    def stream(self, *name: str) -> np.random.Generator:
        """Return the Generator for ``name``, creating it on first use.

        The same name always yields the *same* Generator object, so two callers
        sharing a name share one sequence of draws (by design: a name is an
        owner). Use distinct names for independent consumers.

        Args:
            *name: One or more string parts, conventionally (tenant, model).

        Returns:
            A PCG64-backed ``numpy.random.Generator``.
        """
        generator = self._streams.get(name)
        if generator is None:
            generator = np.random.Generator(np.random.PCG64(self._sequence(_STREAM_DOMAIN, name)))
            self._streams[name] = generator
        return generator

    def child_seed(self, *name: str) -> int:
        """Return a stable integer seed for libraries that only take an int.

        Meant for ``Faker().seed_instance(...)`` and similar; derived like a
        stream but in a separate domain, so it is independent of
        ``stream(*name)``. Not cached and not recorded: it is a pure function
        of (seed, name).

        Args:
            *name: One or more string parts.

        Returns:
            A non-negative int below ``2**63``.
        """
        (word,) = self._sequence(_CHILD_SEED_DOMAIN, name).generate_state(1, np.uint64)
        return int(word) >> 1

    def names(self) -> list[tuple[str, ...]]:
        """Names of the streams handed out so far, in first-request order."""
        return list(self._streams)
