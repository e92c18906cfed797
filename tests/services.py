"""How a test reacts to a missing external service (PostgreSQL, the Kafka broker).

On a developer's machine a missing service skips the test with the reason. In
CI (`CI=true`) it fails: a test that needs a service never passes by
skipping silently there.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the suite runs in CI (`CI` set to a true value)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(service: str, why: str) -> NoReturn:
    """Skip (locally) or fail (in CI) because `service` is not usable."""
    message = f"{service} is not available: {why}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a needed service must be running)", pytrace=False)
    pytest.skip(message)
