"""sim.http_target: the twin over HTTP gives the embedded chains, survives faults, trusts nothing.

A real service (`turingcore.service`) runs in a thread, on the in-memory
store and, for the parity run, on the PostgreSQL store. Faults are injected
by transports wrapped around httpx's real one: one forwards a batch to the
server and then loses the answer, one answers 503 without forwarding, one
changes a byte of an event on its way back to the twin.
"""

from __future__ import annotations

import json
import threading
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
from sim.http_target import MAX_BATCH, HttpTarget, TargetError, TokenBook, sealed_from_json
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


class MeetingTransport(httpx.BaseTransport):
    """Counts batch requests in flight; once armed, the next `meet` batches must meet.

    The armed batches wait for each other at a barrier before they are
    forwarded, so they can only all pass if they were sent concurrently
    (sequential sends break the barrier at its timeout, and the test fails).
    """

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.barrier: threading.Barrier | None = None
        self.waiting = 0

    def arm(self, meet: int) -> None:
        self.barrier, self.waiting, self.peak = threading.Barrier(meet, timeout=20), meet, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.method == "POST" and request.url.path.endswith("/commands/batch")):
            return self.inner.handle_request(request)
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            barrier = self.barrier if self.waiting > 0 else None
            self.waiting -= 1
        try:
            if barrier is not None:
                barrier.wait()
            return self.inner.handle_request(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.inner.close()


def customers_batch(cmd: Commands, count: int, first: int = 0) -> list[Any]:
    """`count` CreateCustomer envelopes with idempotency keys (each writes one event)."""
    return [cmd.customer(first + n, key=f"{cmd.tenant_id}-c{first + n}") for n in range(count)]


@pytest.mark.parametrize(("tenants", "concurrency"), [(4, 4), (4, 2)])
def test_tenants_batches_are_in_flight_together_within_the_bound(
    tenants: int, concurrency: int
) -> None:
    """submit_many sends several tenants' batches at once, never more than `concurrency`,
    and hands each tenant's events to listeners in the order the batches were given."""
    names = [f"cu-{letter}" for letter in "pqrs"[:tenants]]
    makers = {name: Commands(name) for name in names}
    transport = MeetingTransport()
    with serving(MemoryLedger()) as url:
        target = HttpTarget(
            url, TokenBook([token(n) for n in names]), transport=transport, concurrency=concurrency
        )
        seen: list[str] = []
        target.subscribe(lambda tenant, events: seen.append(tenant))
        try:
            for name, cmd in makers.items():
                setup = [cmd.create_tenant(name.upper().replace("-", "_"), key=f"{name}-t")]
                assert all(r.accepted for r in target.submit(name, setup))
            transport.arm(concurrency)
            seen.clear()
            order = list(reversed(names))
            answers = target.submit_many(
                [(name, customers_batch(makers[name], 30)) for name in order]
            )
        finally:
            target.close()
    assert transport.peak == concurrency
    assert seen == order
    for name, results in zip(order, answers, strict=True):
        assert [r.status for r in results] == ["ACCEPTED"] * 30, name
        assert [r.first_seq for r in results] == list(range(2, 32)), name


def test_one_tenants_long_batch_keeps_its_order_beside_others() -> None:
    """A batch longer than MAX_BATCH goes in chunks, in order, while other tenants' go too."""
    names = ["cu-p", "cu-q"]
    makers = {name: Commands(name) for name in names}
    with serving(MemoryLedger()) as url:
        target = HttpTarget(url, TokenBook([token(n) for n in names]), concurrency=2)
        try:
            for name, cmd in makers.items():
                setup = [cmd.create_tenant(name.upper().replace("-", "_"), key=f"{name}-t")]
                assert all(r.accepted for r in target.submit(name, setup))
            long = customers_batch(makers["cu-p"], MAX_BATCH + 7)
            answers = target.submit_many(
                [("cu-p", long), ("cu-q", customers_batch(makers["cu-q"], 3))]
            )
            heads = {name: target.head(name) for name in names}
        finally:
            target.close()
    assert [r.first_seq for r in answers[0]] == list(range(2, MAX_BATCH + 9))
    assert heads["cu-p"][0] == MAX_BATCH + 8
    assert [r.first_seq for r in answers[1]] == [2, 3, 4]


def test_concurrency_outside_the_pool_is_refused() -> None:
    """A concurrency above the connection pool (or below one) is a clear error."""
    with pytest.raises(ValueError, match="concurrency must be between 1 and max_connections"):
        HttpTarget("http://127.0.0.1:9", TokenBook([token("cu-a")]), concurrency=9)
