"""The twin's side of the contract: deterministic envelopes.

Every id the twin sends (commandId, idempotencyKey) comes from the run's seed
and a per-tenant counter, so two runs with one seed send byte-identical
commands and the platform answers with byte-identical events. The ids are
UUID-shaped (version nibble 4) so any TuringCore accepts them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from turingcore.contract import Actor, Envelope

TWIN_ACTOR = Actor("SYSTEM", "cu-digital-twin")


class CommandIds:
    """Deterministic commandIds and idempotency keys for one tenant of one run."""

    __slots__ = ("tenant_id", "count", "_command_prefix", "_key_prefix")

    def __init__(self, seed: int, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.count = 0
        self._command_prefix = _uuid_prefix(f"command\x00{seed}\x00{tenant_id}")
        self._key_prefix = _uuid_prefix(f"idempotency\x00{seed}\x00{tenant_id}")

    def next(self) -> tuple[str, str]:
        """(commandId, idempotencyKey) for the next command."""
        self.count += 1
        number = self.count
        return (
            f"{self._command_prefix}{number:012x}",
            f"{self._key_prefix}{number:012x}",
        )

    def envelope(self, command_type: str, timestamp: str, payload: Any) -> Envelope:
        """A complete envelope for `payload`, stamped at `timestamp` (ISO 8601)."""
        command_id, key = self.next()
        return Envelope(
            command_id, self.tenant_id, command_type, TWIN_ACTOR, timestamp, payload, key
        )


def _uuid_prefix(material: str) -> str:
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[12:15]}-8{digest[15:18]}-"
