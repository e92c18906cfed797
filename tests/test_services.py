"""services: a missing service skips locally and fails in CI."""

from __future__ import annotations

import pytest
from services import in_ci, service_missing


def test_ci_flag_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true (any case) and 1 count as CI; unset and false do not."""
    for value, expected in (("true", True), ("TRUE", True), ("1", True), ("false", False)):
        monkeypatch.setenv("CI", value)
        assert in_ci() is expected
    monkeypatch.delenv("CI")
    assert in_ci() is False


def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """In CI a missing service is a failure that names it, never a skip."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not available: refused"):
        service_missing("PostgreSQL", "refused")


def test_missing_service_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside CI the same call skips with the reason."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="broker is not available"):
        service_missing("broker", "no binary")
