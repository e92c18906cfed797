"""The embedded shell: tenant isolation, idempotency, determinism, sinks and read queries."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from platform_builders import Bank, Commands, Recorder, RecordingSink, new_bank, stamp

from turingcore.contract import Envelope
from turingcore.embedded import PUBLISH_EVERY, EmbeddedPlatform
from turingcore.events import GENESIS_HASH, SealedEvent

# --------------------------------------------------------------------------- helpers


def two_banks(sink: RecordingSink | None = None, **kw: int) -> tuple[Bank, Bank]:
    """Tenants cu-a and cu-b on one platform, sharing one recorder."""
    platform = EmbeddedPlatform(sink=sink, **kw)
    a = new_bank(platform, "cu-a", "CU_A", customers=3, deposit=10_000)
    b = new_bank(platform, "cu-b", "CU_B", customers=2, deposit=20_000, recorder=a.recorder)
    return a, b


def salary(bank: Bank, cents: int = 1_000, **kw: object) -> Envelope:
    """A salary into the bank's first member account."""
    legs = [(bank.accounts[0], "DEBIT", cents), ("GL_SALARY_CLEARING", "CREDIT", cents)]
    return bank.cmd.post(legs, **kw)  # type: ignore[arg-type]


def wire(events: list[SealedEvent]) -> list[tuple[str, bytes]]:
    return [(sealed.hash, sealed.canonical) for sealed in events]


# --------------------------------------------------------------------------- tenant isolation


def test_envelope_naming_another_tenant_is_refused_and_writes_nothing() -> None:
    """A's caller sending an envelope that names cu-b gets TENANT_MISMATCH; no one changes."""
    sink = RecordingSink()
    a, b = two_banks(sink)
    before_a, before_b = a.snapshot(), b.snapshot()
    stored = len(sink.appended)
    forged = a.cmd.post(
        [(b.accounts[0], "DEBIT", 500), ("GL_SALARY_CLEARING", "CREDIT", 500)], tenant_id="cu-b"
    )
    (result,) = a.platform.submit("cu-a", [forged])
    assert result.status == "REJECTED"
    assert result.rule == "TENANT_MISMATCH"
    assert result.error == "FORBIDDEN"
    assert result.command_id == forged.command_id
    assert (a.snapshot(), b.snapshot()) == (before_a, before_b)
    assert len(sink.appended) == stored


def test_create_tenant_naming_another_tenant_creates_neither() -> None:
    """A CreateTenant for cu-y sent under cu-x's identity is refused; neither tenant exists."""
    platform = EmbeddedPlatform()
    recorder = Recorder()
    platform.subscribe(recorder)
    cmd = Commands("cu-x")
    (result,) = platform.submit("cu-x", [cmd.create_tenant("CU_Y", tenant_id="cu-y")])
    assert result.rule == "TENANT_MISMATCH"
    assert platform.tenant("cu-x") is None
    assert platform.tenant("cu-y") is None
    assert recorder.batches == []
    (result,) = platform.submit("cu-x", [cmd.create_tenant("CU_Y")])
    assert result.accepted  # the code was not taken by the refused command


def test_read_queries_never_show_another_tenants_rows() -> None:
    """customers/accounts for A list only A's rows, B's for B; a filter on B's customer is empty."""
    a, b = two_banks()
    listed_a = a.platform.customers("cu-a")
    listed_b = b.platform.customers("cu-b")
    assert sorted(r["customerId"] for r in listed_a["customers"]) == sorted(a.customers)
    assert sorted(r["customerId"] for r in listed_b["customers"]) == sorted(b.customers)
    assert (listed_a["total"], listed_b["total"]) == (3, 2)
    assert not set(a.customers) & set(b.customers)
    assert {r["email"] for r in listed_a["customers"]}.isdisjoint(
        r["email"] for r in listed_b["customers"]
    )
    accounts_a = a.platform.accounts("cu-a")["accounts"]
    assert sorted(r["accountId"] for r in accounts_a) == sorted(a.accounts)
    assert {r["customerId"] for r in accounts_a} <= set(a.customers)
    assert a.platform.accounts("cu-a", customer_id=b.customers[0]) == {"accounts": [], "total": 0}
    mine = a.platform.accounts("cu-b", customer_id=b.customers[1])["accounts"]
    assert [r["customerId"] for r in mine] == [b.customers[1]]


def test_unknown_tenant_reads_as_empty() -> None:
    """A tenant that does not exist has no rows, not someone else's."""
    a, _b = two_banks()
    assert a.platform.customers("cu-zz") == {"customers": [], "total": 0, "limit": 50, "offset": 0}
    assert a.platform.accounts("cu-zz") == {"accounts": [], "total": 0}
    assert a.platform.tenant("cu-zz") is None


def test_other_tenants_accounts_are_not_found_in_an_entry() -> None:
    """B's member account in A's PostEntry is ACCOUNT_NOT_FOUND, even next to A's own."""
    a, b = two_banks()
    legs = [(a.accounts[0], "CREDIT", 100), (b.accounts[0], "DEBIT", 100)]
    a.refuse(a.cmd.post(legs), "ACCOUNT_NOT_FOUND")
    assert b.balances()[b.accounts[0]] == 20_000


def test_gl_accounts_share_ids_but_not_balances() -> None:
    """GL ids are the same codes in every tenant, yet A's salary moves only A's GL."""
    a, b = two_banks()
    gl_b = b.balances()["GL_SALARY_CLEARING"]
    a.accept(salary(a, 4_321))
    assert a.balances()["GL_SALARY_CLEARING"] == -4_321
    assert b.balances()["GL_SALARY_CLEARING"] == gl_b


def test_each_tenant_has_its_own_chain_and_ids() -> None:
    """Seqs start at 1 per tenant, chains start at genesis, and event ids never collide."""
    a, b = two_banks()
    events_a, events_b = a.recorder.events("cu-a"), b.recorder.events("cu-b")
    for events, tenant in ((events_a, "cu-a"), (events_b, "cu-b")):
        assert [e.event.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].event.prev_hash == GENESIS_HASH
        assert {e.event.tenant_id for e in events} == {tenant}
    ids_a = {e.event.event_id for e in events_a}
    ids_b = {e.event.event_id for e in events_b}
    assert len(ids_a) == len(events_a)
    assert len(ids_b) == len(events_b)
    assert not ids_a & ids_b


# --------------------------------------------------------------------------- idempotency


def test_replay_returns_the_first_result_and_writes_nothing() -> None:
    """Same key again: the first answer, equal; seq, balances and listeners untouched."""
    sink = RecordingSink()
    a, _b = two_banks(sink)
    first = a.one(salary(a, key="pay-1"))
    assert first.accepted
    before = a.snapshot()
    batches, stored = len(a.recorder.batches), len(sink.appended)
    again = a.one(salary(a, key="pay-1"))
    assert again == first
    assert a.snapshot() == before
    assert (len(a.recorder.batches), len(sink.appended)) == (batches, stored)


def test_replay_with_a_different_body_still_returns_the_first_result() -> None:
    """The key, not the body, identifies the command: a changed amount is not executed."""
    a, _b = two_banks()
    first = a.one(salary(a, 1_000, key="pay-2"))
    before = a.snapshot()
    assert a.one(salary(a, 9_999, key="pay-2")) == first
    assert a.snapshot() == before


def test_replay_of_a_rejection_returns_the_rejection() -> None:
    """A refusal replayed with its key is refused the same way, even if it would now pass."""
    sink = RecordingSink()
    a, _b = two_banks(sink)
    spend = [(a.accounts[0], "CREDIT", 15_000), ("GL_CARD_CLEARING", "DEBIT", 15_000)]
    first = a.one(a.cmd.post(spend, key="spend-1"))
    assert first.rule == "OVERDRAFT_LIMIT"
    refusals = len(sink.refusals)
    a.accept(salary(a, 50_000))
    before = a.snapshot()
    again = a.one(a.cmd.post(spend, key="spend-1"))
    assert again == first
    assert a.snapshot() == before
    assert len(sink.refusals) == refusals
    assert a.one(a.cmd.post(spend, key="spend-2")).accepted  # the same spend, new key


def test_replay_inside_one_batch_executes_once() -> None:
    """Two commands with one key in the same batch: one execution, two equal answers."""
    a, _b = two_banks()
    balance = a.balances()[a.accounts[0]]
    results = a.submit(salary(a, 700, key="dup"), salary(a, 700, key="dup"))
    assert results[0].accepted
    assert results[1] == results[0]
    assert a.balances()[a.accounts[0]] == balance + 700


def test_keys_are_per_tenant() -> None:
    """The same key used by two tenants identifies two different commands."""
    a, b = two_banks()
    first_a = a.one(salary(a, key="shared-key"))
    first_b = b.one(salary(b, key="shared-key"))
    assert first_a.accepted
    assert first_b.accepted
    assert first_b != first_a
    assert b.balances()[b.accounts[0]] == 21_000


def test_commands_without_a_key_are_not_deduplicated() -> None:
    """Without an idempotencyKey, the same envelope sent twice is executed twice."""
    a, _b = two_banks()
    envelope = salary(a, 250)
    balance = a.balances()[a.accounts[0]]
    first, second = a.submit(envelope, envelope)
    assert first.accepted
    assert second.accepted
    assert second.first_seq > first.last_seq
    assert a.balances()[a.accounts[0]] == balance + 500


def test_idempotency_days_must_be_positive() -> None:
    """A retention of less than one day is refused at construction."""
    with pytest.raises(ValueError, match="idempotency_days"):
        EmbeddedPlatform(idempotency_days=0)


def _on_day(n: int) -> str:
    """A timestamp on day n of July 2025."""
    return stamp(date(2025, 7, 1) + timedelta(days=n - 1))


def test_keys_are_kept_for_idempotency_days_of_command_time() -> None:
    """With 2 days' retention and daily traffic, a day-1 key is honoured on day 3, not day 4.

    Documented behaviour: keys are bucketed by the command timestamp's date;
    on day 4 (once a keyed command of day 4 has been seen) the day-1 bucket is
    dropped, and the same command is executed afresh.
    """
    platform = EmbeddedPlatform(idempotency_days=2)
    a = new_bank(platform, "cu-a", "CU_A", customers=1)
    original = salary(a, 100, key="K", timestamp=_on_day(1))
    first = a.one(original)
    assert first.accepted
    for day in (2, 3):
        assert a.one(salary(a, 1, key=f"other-{day}", timestamp=_on_day(day))).accepted
    before = a.snapshot()
    assert a.one(salary(a, 100, key="K", timestamp=_on_day(3))) == first
    assert a.snapshot() == before
    assert a.one(salary(a, 1, key="other-4", timestamp=_on_day(4))).accepted
    balance = a.balances()[a.accounts[0]]
    fresh = a.one(original)
    assert fresh.accepted
    assert fresh != first
    assert fresh.first_seq > first.last_seq
    assert a.balances()[a.accounts[0]] == balance + 100


@pytest.mark.parametrize("traffic", ["quiet days before", "first command of the day"])
def test_keys_older_than_retention_are_forgotten_whatever_the_traffic(traffic: str) -> None:
    """A key 3 days old (retention 2) is forgotten however the days between went.

    Forgetting must depend on command time alone: a resend on day 4 of a
    day-1 key is executed afresh whether days 2-3 were quiet, and whether or
    not another keyed command came first on day 4.
    """
    platform = EmbeddedPlatform(idempotency_days=2)
    a = new_bank(platform, "cu-a", "CU_A", customers=1)
    original = salary(a, 100, key="K", timestamp=_on_day(1))
    first = a.one(original)
    if traffic == "first command of the day":
        for day in (2, 3):
            assert a.one(salary(a, 1, key=f"other-{day}", timestamp=_on_day(day))).accepted
    resend = salary(a, 100, key="K", timestamp=_on_day(4))
    again = a.one(resend)
    assert again != first, f"a 3-day-old key was honoured ({traffic})"
    assert again.accepted


# --------------------------------------------------------------------------- determinism


def _run(tag: str = "cmd") -> tuple[EmbeddedPlatform, Recorder]:
    """A fixed script of commands over two tenants; command ids carry `tag`."""
    platform = EmbeddedPlatform()
    recorder = Recorder()
    platform.subscribe(recorder)
    banks = []
    for tenant, code in (("cu-a", "CU_A"), ("cu-b", "CU_B")):
        bank = Bank(platform, recorder, tenant, code, Commands(tenant, tag=tag))
        cmd = bank.cmd
        bank.submit(cmd.create_tenant(code), cmd.product("SAVER"))
        bank.submit(*(cmd.customer(i) for i in range(3)))
        customers = [r["customerId"] for r in platform.customers(tenant)["customers"]]
        bank.submit(*(cmd.open_account(c, "SAVER", 5_000) for c in customers))
        bank.accounts = [r["accountId"] for r in platform.accounts(tenant)["accounts"]]
        banks.append(bank)
    for n in range(5):
        for bank in banks:
            overdraw = [(bank.accounts[1], "CREDIT", 10**8), ("GL_CARD_CLEARING", "DEBIT", 10**8)]
            bank.submit(salary(bank, 100 + n), bank.cmd.post(overdraw))
    return platform, recorder


def test_same_commands_give_identical_bytes_and_heads() -> None:
    """Two platforms fed the same commands publish byte-identical events and equal heads."""
    one, rec_one = _run()
    two, rec_two = _run()
    for tenant in ("cu-a", "cu-b"):
        assert wire(rec_one.events(tenant)) == wire(rec_two.events(tenant))
        assert one.head(tenant) == two.head(tenant)
        assert one.head(tenant)[0] == len(rec_one.events(tenant))


def test_different_command_ids_give_different_heads() -> None:
    """The same payloads under other command ids produce other chains (causation is hashed)."""
    one, _ = _run("cmd")
    two, _ = _run("alt")
    for tenant in ("cu-a", "cu-b"):
        assert one.head(tenant)[0] == two.head(tenant)[0]
        assert one.head(tenant)[1] != two.head(tenant)[1]


# --------------------------------------------------------------------------- shell plumbing


def test_sink_gets_every_published_batch_and_every_refusal() -> None:
    """The sink stores exactly what listeners get, plus each refused command with its answer."""
    sink = RecordingSink()
    a, b = two_banks(sink)
    refused = a.cmd.post([(a.accounts[0], "DEBIT", 5), ("GL_FEE_INCOME", "CREDIT", 6)])
    results = a.submit(salary(a, 10), refused, salary(a, 20))
    assert [(t, wire(events)) for t, events in sink.appended] == [
        (t, wire(events)) for t, events in a.recorder.batches
    ]
    assert len(sink.appended[-1][1]) == 6  # one batch, both accepted entries
    tenant, envelope, result = sink.refusals[-1]
    assert (tenant, envelope.command_id, result) == ("cu-a", refused.command_id, results[1])
    assert result.rule == "UNBALANCED_ENTRY"
    a.platform.close()
    assert sink.closed


def test_batch_answers_one_result_per_command_in_order() -> None:
    """submit returns a result per command, in order, with ids and seq ranges of each."""
    a, _b = two_banks()
    envelopes = [salary(a, 1 + n) for n in range(5)]
    results = a.submit(*envelopes)
    assert [r.command_id for r in results] == [e.command_id for e in envelopes]
    assert [r.correlation_id for r in results] == [e.command_id for e in envelopes]
    assert [r.accepted_at for r in results] == [e.timestamp for e in envelopes]
    spans = [(r.first_seq, r.last_seq) for r in results]
    assert all(last - first == 2 for first, last in spans)
    assert all(spans[i][1] + 1 == spans[i + 1][0] for i in range(4))
    assert a.platform.head("cu-a")[0] == spans[-1][1]


def test_listeners_get_one_call_per_short_batch_in_chain_order() -> None:
    """A submit shorter than a publishing slice calls every listener once, events in order."""
    a, _b = two_banks()
    extra = Recorder()
    a.platform.subscribe(extra)
    a.submit(salary(a, 1), salary(a, 2))
    a.submit(salary(a, 1, key="x"))
    a.submit(salary(a, 1, key="x"))  # replay: nothing to publish
    assert len(extra.batches) == 2
    assert [len(events) for _t, events in extra.batches] == [6, 3]
    seqs = [e.event.seq for e in extra.events()]
    assert seqs == list(range(seqs[0], seqs[0] + 9))


def _long_batch(bank: Bank, count: int) -> list[Envelope]:
    """Salaries with keys, a refused entry every 7th and a replayed key every 11th."""
    envelopes = []
    for n in range(count):
        if n % 7 == 3:
            legs = [(bank.accounts[0], "DEBIT", 5), ("GL_FEE_INCOME", "CREDIT", 6)]
            envelopes.append(bank.cmd.post(legs))  # type: ignore[arg-type]
        elif n % 11 == 5:
            envelopes.append(salary(bank, 7, key=f"k-{n - 1}"))
        else:
            envelopes.append(salary(bank, 1 + n, key=f"k-{n}"))
    return envelopes


def test_a_long_batch_answers_and_chains_as_its_commands_one_at_a_time() -> None:
    """Slicing a long batch for publishing changes nothing: same answers, bytes and sink."""
    count = 600
    sink_batch, sink_single = RecordingSink(), RecordingSink()
    batch, _ = two_banks(sink_batch)
    single, _ = two_banks(sink_single)
    batch.recorder.batches.clear()
    single.recorder.batches.clear()
    sink_batch.appended.clear()
    sink_single.appended.clear()
    answers = batch.submit(*_long_batch(batch, count))
    one_by_one = [single.one(envelope) for envelope in _long_batch(single, count)]
    assert answers == one_by_one
    assert sum(not r.accepted for r in answers) == len(range(3, count, 7))
    slices = -(-count // PUBLISH_EVERY)
    assert len(batch.recorder.batches) == slices > 1  # the default slices a batch this long
    assert wire(batch.recorder.events("cu-a")) == wire(single.recorder.events("cu-a"))
    assert batch.platform.head("cu-a") == single.platform.head("cu-a")
    stored = [e for _t, events in sink_batch.appended for e in events]
    assert wire(stored) == wire([e for _t, events in sink_single.appended for e in events])
    assert [r.rule for _t, _e, r in sink_batch.refusals] == [
        r.rule for _t, _e, r in sink_single.refusals
    ]


@pytest.mark.parametrize("every", [1, 8, 50])
def test_a_long_batch_is_published_in_slices_as_it_is_sealed(
    every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call holds at most PUBLISH_EVERY commands' events, and comes before later ones
    are decided: at every call the chain head is the last event it carries."""
    monkeypatch.setattr("turingcore.embedded.PUBLISH_EVERY", every)
    count = 2 * every + 5
    a, _b = two_banks()
    heads: list[tuple[int, str]] = []
    calls: list[list[SealedEvent]] = []

    def listener(tenant_id: str, events: list[SealedEvent]) -> None:
        heads.append(a.platform.head(tenant_id))
        calls.append(list(events))

    a.platform.subscribe(listener)
    answers = a.submit(*_long_batch(a, count))
    writing, seen = set(), set()  # the slices holding a command that wrote (not a replay)
    for index, answer in enumerate(answers):
        if answer.accepted and answer.first_seq not in seen:
            seen.add(answer.first_seq)
            writing.add(index // every)
    assert len(writing) >= 3
    assert len(calls) == len(writing)
    for events, head in zip(calls, heads, strict=True):
        assert len({e.event.causation_id for e in events}) <= every
        assert head == (events[-1].event.seq, events[-1].hash)
    seqs = [e.event.seq for events in calls for e in events]
    accepted = [r for r in answers if r.accepted and r.first_seq]
    assert seqs == list(range(accepted[0].first_seq, accepted[-1].last_seq + 1))


def test_listing_pages_and_limits() -> None:
    """customers/accounts page with limit and offset, report the total, bound limit to 1..1000."""
    bank = new_bank(customers=5)
    everyone = bank.platform.customers("cu-a", limit=1000)["customers"]
    page = bank.platform.customers("cu-a", limit=2, offset=3)
    assert page["customers"] == everyone[3:5]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 3)
    accounts = bank.platform.accounts("cu-a", limit=2, offset=4)
    assert (len(accounts["accounts"]), accounts["total"]) == (1, 5)
    for bad in (0, 1001, -1):
        with pytest.raises(ValueError, match="limit"):
            bank.platform.customers("cu-a", limit=bad)
        with pytest.raises(ValueError, match="limit"):
            bank.platform.accounts("cu-a", limit=bad)


def test_account_listing_shows_exact_decimal_balances() -> None:
    """Balances in the listing are two-place Decimals of the ledger's cents."""
    bank = new_bank(customers=1, deposit=10_005)
    row = bank.platform.accounts("cu-a")["accounts"][0]
    assert row["balance"] == Decimal("100.05")
    assert str(row["balance"]) == "100.05"
    assert (row["currency"], row["status"], row["productCode"]) == ("AUD", "ACTIVE", "SAVER")
