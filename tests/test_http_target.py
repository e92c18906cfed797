"""sim.http_target: the twin over HTTP gives the embedded chains, survives faults, trusts nothing.

A real service (`turingcore.service`) runs in a thread, on the in-memory
store and, for the parity run, on the PostgreSQL store. Faults are injected
by transports wrapped around httpx's real one: one forwards a batch to the
server and then loses the answer, one answers 503 without forwarding, one
changes a byte of an event on its way back to the twin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import SMALL_SEED, SmallRun, run_twin
from http_server import running
from platform_builders import Commands
from token_builders import AUDIENCE, ISSUER, SECRET, claims_for

from scenarios.schema import Scenario
from sim.http_target import HttpTarget, TargetError, TokenBook, sealed_from_json
from turingcore.auth import AuthConfig
from turingcore.embedded import EmbeddedPlatform
from turingcore.ledger import Ledger
from turingcore.memledger import MemoryLedger
from turingcore.service import create_app

TENANTS = ("cu-a", "cu-b")


def token(tenant: str) -> str:
    """A valid token for `tenant`, signed with the test secret."""
    return jwt.encode(claims_for(tenant), SECRET, algorithm="HS256")


@contextmanager
def serving(ledger: Ledger) -> Iterator[str]:
    """The service over `ledger` in a thread; yields its base URL."""
    app = create_app(ledger, AuthConfig(SECRET, ISSUER, AUDIENCE))
    try:
        with running(app) as url:
            yield url
    finally:
        ledger.close()


def run_over_http(
    scenario: Scenario,
    out: Path,
    url: str,
    transport: httpx.BaseTransport | None = None,
) -> SmallRun:
    """Run `scenario` with the twin's HttpTarget against `url` (tokens for both tenants)."""
    tokens = TokenBook([token(tenant) for tenant in TENANTS])

    def factory(log: Path | None) -> HttpTarget:
        return HttpTarget(url, tokens, log, transport=transport)

    return run_twin(scenario, out, SMALL_SEED, target_factory=factory)


@pytest.fixture(scope="module")
def short_scenario(small_scenario: Scenario) -> Scenario:
    """The small scenario cut to two days (fault runs repeat it)."""
    return small_scenario.with_overrides(days=2)


@pytest.fixture(scope="module")
def short_embedded(short_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    """The two-day run on the embedded platform: the reference for the fault runs."""
    return run_twin(short_scenario, tmp_path_factory.mktemp("emb") / "run", SMALL_SEED)


class LosingTransport(httpx.BaseTransport):
    """Forwards every request, then loses the answer of every `every`-th batch.

    The server has acted on the batch: a retry that is not idempotent would
    write its events twice.
    """

    def __init__(self, every: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.every = every
        self.batches = 0
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/commands/batch"):
            self.batches += 1
            if self.batches % self.every == 0:
                response.read()
                response.close()
                self.lost += 1
                raise httpx.ReadTimeout("the answer was lost (injected)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class BusyTransport(httpx.BaseTransport):
    """Answers 503 to every `every`-th request without forwarding it."""

    def __init__(self, every: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.every = every
        self.requests = 0
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests % self.every == 0:
            self.refused += 1
            return httpx.Response(503, content=b"busy (injected)", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class TamperingTransport(httpx.BaseTransport):
    """Changes one digit of the first balance in the first event page it sees."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.tampered = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        marker = b'"balanceCents":'
        if self.tampered or not request.url.path.endswith("/events"):
            return response
        body = response.read()
        at = body.find(marker)
        if at < 0:
            return httpx.Response(response.status_code, content=body, request=request)
        digit = at + len(marker)
        while not body[digit : digit + 1].isdigit():
            digit += 1
        changed = b"1" if body[digit : digit + 1] != b"1" else b"2"
        self.tampered = True
        body = body[:digit] + changed + body[digit + 1 :]
        return httpx.Response(response.status_code, content=body, request=request)

    def close(self) -> None:
        self.inner.close()


# --------------------------------------------------------------------------- parity


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "postgresql"])
def test_the_twin_over_http_writes_the_embedded_chains(
    store: str, small_run: SmallRun, small_scenario: Scenario, tmp_path: Path, request: Any
) -> None:
    """The small scenario over HTTP: every invariant holds and each chain head equals embedded.

    On PostgreSQL (row-level security, one transaction per batch) as well as
    in memory: the same commands in the same order make the same events.
    """
    if store == "memory":
        ledger: Ledger = MemoryLedger()
    else:
        from turingcore.pgstore import PostgresLedger

        ledger = PostgresLedger(request.getfixturevalue("fresh_pg_database").dsn)
    with serving(ledger) as url:
        run = run_over_http(small_scenario, tmp_path / "run", url)
    assert {name: r["passed"] for name, r in run.summary["invariants"].items()} == dict.fromkeys(
        small_run.summary["invariants"], True
    )
    assert run.outcome.passed
    assert run.summary["fingerprint"] == small_run.summary["fingerprint"]
    assert (
        run.summary["invariants"]["event_integrity"]["examined"]
        == (small_run.summary["invariants"]["event_integrity"]["examined"])
    )


@pytest.mark.slow
def test_the_http_run_folder_verifies_offline(
    short_scenario: Scenario, short_embedded: SmallRun, tmp_path: Path
) -> None:
    """The run folder of an HTTP run holds the events it received: `twin verify` passes on it."""
    from analysis.verify import verify_run

    with serving(MemoryLedger()) as url:
        run = run_over_http(short_scenario, tmp_path / "run", url)
    reports = verify_run(run.dir)
    assert {name: report.passed for name, report in reports.items()} == dict.fromkeys(reports, True)
    embedded = verify_run(short_embedded.dir)
    assert {name: r.examined for name, r in reports.items()} == {
        name: r.examined for name, r in embedded.items()
    }


# --------------------------------------------------------------------------- faults


@pytest.mark.slow
def test_lost_answers_are_retried_with_the_same_keys_and_write_nothing_twice(
    short_scenario: Scenario, short_embedded: SmallRun, tmp_path: Path
) -> None:
    """Every third batch's answer is lost after the server acted; the re-send writes nothing new.

    The chains end exactly where the embedded run's do: each retried
    command answered with its first result.
    """
    transport = LosingTransport(every=3)
    with serving(MemoryLedger()) as url:
        run = run_over_http(short_scenario, tmp_path / "run", url, transport)
    assert transport.lost >= 3
    assert run.outcome.passed
    assert run.summary["fingerprint"] == short_embedded.summary["fingerprint"]


@pytest.mark.slow
def test_busy_answers_are_retried(
    short_scenario: Scenario, short_embedded: SmallRun, tmp_path: Path
) -> None:
    """A 503 on every fifth request (reads included) is waited out; the run is unchanged."""
    transport = BusyTransport(every=5)
    with serving(MemoryLedger()) as url:
        run = run_over_http(short_scenario, tmp_path / "run", url, transport)
    assert transport.refused >= 5
    assert run.outcome.passed
    assert run.summary["fingerprint"] == short_embedded.summary["fingerprint"]


@pytest.mark.slow
def test_an_event_changed_on_the_wire_is_found(short_scenario: Scenario, tmp_path: Path) -> None:
    """A digit changed in a balance on its way to the twin: event_integrity fails, run fails."""
    transport = TamperingTransport()
    with serving(MemoryLedger()) as url:
        run = run_over_http(short_scenario, tmp_path / "run", url, transport)
    assert transport.tampered
    integrity = run.summary["invariants"]["event_integrity"]
    assert integrity["passed"] is False
    assert "hash" in json.dumps(integrity["counterexamples"]["first"])
    assert run.outcome.passed is False


def test_a_server_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    """Nobody listening: the target retries, then names the URL it could not reach."""
    target = HttpTarget("http://127.0.0.1:9", TokenBook([token("cu-a")]), retries=1)
    cmd = Commands("cu-a")
    with pytest.raises(TargetError, match=r"127\.0\.0\.1:9/v1/tenants/cu-a/commands/batch"):
        target.submit("cu-a", [cmd.create_tenant("CU_A")])
    target.close()


def test_a_tenant_without_a_token_is_refused_before_sending() -> None:
    """No token for the tenant: a TargetError naming it, and no request made."""
    target = HttpTarget("http://127.0.0.1:9", TokenBook([token("cu-a")]))
    with pytest.raises(TargetError, match="no token for tenant cu-b"):
        target.head("cu-b")
    assert target.requests == 0
    target.close()


# --------------------------------------------------------------------------- tokens and events


def test_token_book_reads_each_tokens_tenant(tmp_path: Path) -> None:
    """Tokens map to the tenantId they carry, given inline or as @FILE (object or list)."""
    (tmp_path / "object.json").write_text(json.dumps({"x": token("cu-b")}))
    (tmp_path / "list.json").write_text(json.dumps([token("cu-c")]))
    book = TokenBook.from_options(
        [token("cu-a"), f"@{tmp_path / 'object.json'}", f"@{tmp_path / 'list.json'}"]
    )
    assert sorted(book.by_tenant) == ["cu-a", "cu-b", "cu-c"]
    assert book.header("cu-b") == {"Authorization": f"Bearer {token('cu-b')}"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not-a-jwt", "not a JWT"),
        (jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, SECRET, algorithm="HS256"), "no tenantId"),
        ("@/nonexistent/tokens.json", "cannot read a token file"),
    ],
)
def test_token_book_refuses_what_it_cannot_use(value: str, message: str) -> None:
    """Garbage, a token without a tenant, a missing file: a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        TokenBook.from_options([value])


def test_events_from_json_are_the_platforms_sealed_events() -> None:
    """An event read back from its EventEnvelope JSON has the platform's bytes, hash and payload."""
    platform = EmbeddedPlatform()
    sealed: list[Any] = []
    platform.subscribe(lambda _tenant, events: sealed.extend(events))
    cmd = Commands("cu-a")
    platform.submit("cu-a", [cmd.create_tenant("CU_A"), cmd.product("SAVER"), cmd.customer(0)])
    customer = next(iter(platform.tenants["cu-a"].customers))
    platform.submit("cu-a", [cmd.open_account(customer, "SAVER", 10_000)])
    account = next(a for a in platform.tenants["cu-a"].accounts if not a.startswith("GL_"))
    platform.submit(
        "cu-a", [cmd.post([(account, "DEBIT", 2_500), ("GL_SALARY_CLEARING", "CREDIT", 2_500)])]
    )
    assert len(sealed) > 6
    for original in sealed:
        again = sealed_from_json(original.to_json_bytes())
        assert again.canonical == original.canonical
        assert again.hash == original.hash
        assert again.event == original.event
