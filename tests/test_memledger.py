"""MemoryLedger: the embedded platform behind the Ledger seam, its retained events, its locks."""

import json
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from platform_builders import Commands, new_bank

from turingcore.contract import Envelope
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH, verify_chain
from turingcore.ledger import NotFound
from turingcore.memledger import MemoryLedger, RetainedEvents


def open_bank(
    ledger: MemoryLedger, tenant: str, code: str, members: int = 2, deposit: int = 10_000
) -> tuple[Commands, list[str], list[str]]:
    """Create a tenant with a SAVER product and funded members; (commands, customers, accounts)."""
    cmd = Commands(tenant)
    results = ledger.submit(tenant, [cmd.create_tenant(code), cmd.product("SAVER")])
    results += ledger.submit(tenant, [cmd.customer(i) for i in range(members)])
    customers = [row["customerId"] for row in ledger.customers(tenant, limit=1000)["customers"]]
    results += ledger.submit(tenant, [cmd.open_account(c, "SAVER", deposit) for c in customers])
    assert all(result.accepted for result in results), results
    accounts = [row["accountId"] for row in ledger.accounts(tenant, limit=1000)["accounts"]]
    return cmd, customers, accounts


def salary(cmd: Commands, account: str, cents: int = 100, **kw: object) -> Envelope:
    """A salary paid into `account` from GL_SALARY_CLEARING."""
    legs = [(account, "DEBIT", cents), ("GL_SALARY_CLEARING", "CREDIT", cents)]
    return cmd.post(legs, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the seam


def test_memory_ledger_answers_exactly_like_the_embedded_platform() -> None:
    """The same commands give the same answers, head and listings as a bare EmbeddedPlatform.

    Composition adds locks and a sink, never a different behaviour.
    """
    ledger = MemoryLedger()
    cmd, _customers, accounts = open_bank(ledger, "cu-a", "CU_A")
    reference = new_bank(EmbeddedPlatform(), "cu-a", "CU_A", customers=2, deposit=10_000)
    assert accounts == reference.accounts
    batch = [salary(cmd, accounts[0], 250), cmd.post([(accounts[1], "CREDIT", 10**9)] * 2)]
    mirror = [salary(reference.cmd, accounts[0], 250), batch[1]]
    assert ledger.submit("cu-a", batch) == reference.platform.submit("cu-a", mirror)
    assert ledger.head("cu-a") == reference.platform.head("cu-a")
    assert ledger.accounts("cu-a") == reference.platform.accounts("cu-a")
    assert ledger.customers("cu-a") == reference.platform.customers("cu-a")


def test_retained_events_are_the_chain_as_event_envelope_json() -> None:
    """tenant_events pages the chain in seq order; the pages verify and end at the head."""
    ledger = MemoryLedger()
    cmd, _customers, accounts = open_bank(ledger, "cu-a", "CU_A", members=3)
    ledger.submit("cu-a", [salary(cmd, account) for account in accounts])
    seq, head = ledger.head("cu-a")
    pages, after = [], 0
    while page := ledger.tenant_events("cu-a", after, limit=4):
        pages.extend(page)
        after = json.loads(page[-1])["seq"]
    assert [json.loads(event)["seq"] for event in pages] == list(range(1, seq + 1))
    assert list(verify_chain("cu-a", pages)) == []
    assert json.loads(pages[-1])["hash"] == head
    assert ledger.tenant_events("cu-a", seq) == []
    assert ledger.tenant_events("cu-a", 2, limit=1) == [pages[2]]


def test_account_events_are_that_accounts_only_in_seq_order() -> None:
    """account_events returns the events whose entity is the account, first `limit` of them."""
    ledger = MemoryLedger()
    cmd, _customers, accounts = open_bank(ledger, "cu-a", "CU_A")
    ledger.submit("cu-a", [salary(cmd, accounts[0], cents) for cents in (100, 200, 300)])
    events = [json.loads(raw) for raw in ledger.account_events("cu-a", accounts[0])]
    assert {event["entityId"] for event in events} == {accounts[0]}
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(seqs)
    balances = [e["payload"]["balanceCents"] for e in events if e["eventType"].endswith("Updated")]
    assert balances[-3:] == [10_100, 10_300, 10_600]
    assert (
        ledger.account_events("cu-a", accounts[0], limit=2)
        == ledger.account_events("cu-a", accounts[0])[:2]
    )


def test_reads_never_show_another_tenants_rows_and_foreign_ids_are_not_found() -> None:
    """cu-b's ids asked for as cu-a raise NotFound; each listing holds only its own tenant."""
    ledger = MemoryLedger()
    _, a_customers, a_accounts = open_bank(ledger, "cu-a", "CU_A")
    _, b_customers, b_accounts = open_bank(ledger, "cu-b", "CU_B", members=3)
    assert {r["customerId"] for r in ledger.customers("cu-a")["customers"]} == set(a_customers)
    assert {r["accountId"] for r in ledger.accounts("cu-b")["accounts"]} == set(b_accounts)
    with pytest.raises(NotFound):
        ledger.accounts("cu-a", customer_id=b_customers[0])
    with pytest.raises(NotFound):
        ledger.account_events("cu-a", b_accounts[0])
    own = ledger.accounts("cu-a", customer_id=a_customers[0])["accounts"]
    assert [row["accountId"] for row in own] == [a_accounts[0]]
    b_events = {json.loads(raw)["tenantId"] for raw in ledger.tenant_events("cu-b")}
    assert b_events == {"cu-b"}


def test_a_tenant_that_does_not_exist_is_not_found_and_has_a_genesis_head() -> None:
    """Listings of a missing tenant raise NotFound; its head is genesis and its chain empty."""
    ledger = MemoryLedger()
    for read in (ledger.customers, ledger.accounts):
        with pytest.raises(NotFound):
            read("ghost")
    with pytest.raises(NotFound):
        ledger.account_events("ghost", "GL_CARD_CLEARING")
    assert ledger.head("ghost") == (0, GENESIS_HASH)
    assert ledger.tenant_events("ghost") == []
    refused = ledger.submit("ghost", [salary(Commands("ghost"), "GL_CARD_CLEARING")])
    assert refused[0].rule == "TENANT_NOT_FOUND"
    with pytest.raises(NotFound):
        ledger.customers("ghost")


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_event_reads_refuse_a_limit_outside_one_to_a_thousand(limit: int) -> None:
    """limit outside 1..1000 is a ValueError on every read (the service answers 400 first)."""
    ledger = MemoryLedger()
    open_bank(ledger, "cu-a", "CU_A")
    reads: list[Callable[[], object]] = [
        lambda: ledger.tenant_events("cu-a", 0, limit),
        lambda: ledger.account_events("cu-a", "GL_CARD_CLEARING", limit),
        lambda: ledger.customers("cu-a", limit),
    ]
    for read in reads:
        with pytest.raises(ValueError, match="limit"):
            read()


def test_retained_events_refuse_a_gap_in_the_chain() -> None:
    """An event whose seq does not follow the retained ones is refused (paging relies on it)."""
    sink = RetainedEvents()
    platform = EmbeddedPlatform()
    captured: list = []
    platform.subscribe(lambda _tenant, events: captured.extend(events))
    new_bank(platform, "cu-a", "CU_A")
    sink.append("cu-a", captured[:2])
    with pytest.raises(ValueError, match="seq 4 after 2"):
        sink.append("cu-a", captured[3:5])
    assert sink.count("cu-a") == 2


def test_ready_and_close() -> None:
    """A memory store is always ready; close closes the platform's sink without error."""
    ledger = MemoryLedger()
    assert ledger.ready() is True
    ledger.close()


# --------------------------------------------------------------------------- threads


@pytest.fixture
def contention() -> Iterator[None]:
    """Switch threads every few microseconds, so a missing lock shows up as a failure.

    With the default 5 ms interval a batch often runs without being interrupted
    and a race would go unseen; checked: without the locks both tests below fail.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def run_threads(workers: list[Callable[[], None]]) -> None:
    """Run the workers at once (released together by a barrier); re-raise the first failure."""
    barrier = threading.Barrier(len(workers))
    failures: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    if failures:
        raise failures[0]


@pytest.mark.usefixtures("contention")
def test_concurrent_batches_keep_every_chain_gap_free_and_balanced() -> None:
    """Four threads per tenant post at once into two tenants, reading while they write.

    Every command is accepted exactly once, each chain verifies from genesis
    with no gap, and each tenant's balances equal the sum of what was posted.
    """
    ledger = MemoryLedger()
    banks = {
        tenant: open_bank(ledger, tenant, code) for tenant, code in [("t1", "T1"), ("t2", "T2")]
    }
    starts = {tenant: ledger.head(tenant)[0] for tenant in banks}
    per_thread, batches = 30, 10
    counts = {tenant: 0 for tenant in banks}
    lock = threading.Lock()

    def writer(tenant: str, worker: int) -> Callable[[], None]:
        cmd, _, accounts = banks[tenant]
        envelopes = [salary(cmd, accounts[i % 2], 1 + worker) for i in range(per_thread * batches)]

        def work() -> None:
            for start in range(0, len(envelopes), per_thread):
                results = ledger.submit(tenant, envelopes[start : start + per_thread])
                assert all(result.accepted for result in results)
                with lock:
                    counts[tenant] += len(results)
                ledger.accounts(tenant, limit=1000)
                ledger.tenant_events(tenant, 0, 1000)

        return work

    run_threads([writer(tenant, worker) for tenant in banks for worker in range(4)])
    for tenant in banks:
        assert counts[tenant] == 4 * per_thread * batches
        seq, head = ledger.head(tenant)
        chain: list[bytes] = []
        while page := ledger.tenant_events(tenant, len(chain), 1000):
            chain.extend(page)
        assert len(chain) == seq
        assert list(verify_chain(tenant, chain)) == []
        assert json.loads(chain[-1])["hash"] == head
        posted = sum(per_thread * batches * (1 + worker) for worker in range(4))
        balances = [row["balance"] for row in ledger.accounts(tenant)["accounts"]]
        assert sum(balances) * 100 == 2 * 10_000 + posted
        # at least an entry and two balance updates per command (monitor alerts may add)
        assert seq >= starts[tenant] + 3 * counts[tenant]


@pytest.mark.usefixtures("contention")
def test_concurrent_tenants_cannot_take_the_same_code() -> None:
    """Eight tenants race to create themselves with one tenantCode: exactly one wins."""
    ledger = MemoryLedger()
    answers: dict[str, str] = {}

    def create(tenant: str) -> Callable[[], None]:
        def work() -> None:
            (result,) = ledger.submit(tenant, [Commands(tenant).create_tenant("SAME_CODE")])
            answers[tenant] = result.rule or result.status

        return work

    run_threads([create(f"race-{n}") for n in range(8)])
    assert sorted(answers.values()) == ["ACCEPTED"] + ["TENANT_CODE_TAKEN"] * 7
