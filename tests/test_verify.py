"""Offline verification of a run folder: a clean run passes, and tampering is found.

Run folders are made for real: the embedded platform writes its event log
through `EventLogWriter`, the live suite runs alongside, and the snapshot
tables and summary.json are written the way the twin writes them. Tampering
is then done with sqlite3 on the stored file, byte by byte.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from analysis.invariants import INVARIANT_NAMES, CheckSet, InvariantSuite, TenantChecker
from analysis.verify import (
    CHAIN_HEADS,
    EVENTS_FILE,
    SNAPSHOT_COLUMNS,
    SUMMARY_FILE,
    VerifyError,
    snapshot_tables,
    verify_run,
    write_snapshots,
)
from sim.target import EmbeddedTarget, all_accounts, all_customers
from turingcore import eventlog
from turingcore.contract import (
    Actor,
    Address,
    CommandResult,
    CreateCustomer,
    CreateTenant,
    Envelope,
    Interest,
    Leg,
    OpenAccount,
    Person,
    PostEntry,
    UpsertProduct,
)
from turingcore.eventlog import EventLogWriter, compress_segment, decompress_segment
from turingcore.events import GENESIS_HASH, Event, SealedEvent, canonical_bytes, chain_hash

TENANTS = (("cu-a", "CU_A"), ("cu-b", "CU_B"))
DEPOSIT = 20_000


# --------------------------------------------------------------------------- a real run


class Twin:
    """Just enough of the twin: real commands, answers to the suite, a shadow book."""

    def __init__(self, target: EmbeddedTarget, suite: InvariantSuite) -> None:
        self.target = target
        self.suite = suite
        self.shadow: dict[str, dict[str, int]] = {}
        self.accounts: dict[str, list[str]] = {}
        self.batches: list[tuple[str, list[SealedEvent]]] = []
        self.accepted: list[tuple[str, str]] = []
        self.day = 1
        self.count = 0
        target.subscribe(suite.on_events)
        target.subscribe(lambda tenant, events: self.batches.append((tenant, events)))

    def send(self, tenant: str, commands: list[tuple[str, Any]]) -> list[CommandResult]:
        """Submit (commandType, payload) pairs as one batch, keyed, and book the answers."""
        envelopes = []
        for kind, payload in commands:
            self.count += 1
            envelopes.append(
                Envelope(
                    f"{tenant}-cmd-{self.count:05d}",
                    tenant,
                    kind,
                    Actor("SYSTEM", "twin"),
                    f"2025-08-{self.day:02d}T10:00:00+10:00",
                    payload,
                    f"{tenant}-key-{self.count:05d}",
                )
            )
        results = self.target.submit(tenant, envelopes)
        self.suite.on_results(tenant, envelopes, results)
        book = self.shadow.setdefault(tenant, {})
        for envelope, result in zip(envelopes, results, strict=True):
            if result.status != "ACCEPTED":
                continue
            self.accepted.append((tenant, envelope.command_id))
            if envelope.command_type == "PostEntry":
                for leg in envelope.payload.legs:
                    sign = 1 if leg.direction == "DEBIT" else -1
                    book[leg.account_id] = book.get(leg.account_id, 0) + sign * leg.amount
        return results

    def setup(self, tenant: str, code: str, members: int = 4) -> None:
        """Tenant, a DEPOSIT product, members with one funded account each."""
        self.send(
            tenant, [("CreateTenant", CreateTenant(code, code, "AU", "AUD", "Australia/Sydney"))]
        )
        saver = UpsertProduct("SAVER", "Saver", "DEPOSIT", Interest(rate=Decimal("0.02")))
        self.send(tenant, [("UpsertProduct", saver)])
        people = [
            CreateCustomer(
                Person(
                    "Bo",
                    f"Member{i}",
                    date(1975, 3, 1 + i),
                    f"b{i}@{code.lower()}.example",
                    f"+61411{i:06d}",
                ),
                Address("2 Pitt St", "Sydney", "NSW", "2000", "AU"),
            )
            for i in range(members)
        ]
        self.send(tenant, [("CreateCustomer", person) for person in people])
        ids = [row["customerId"] for row in all_customers(self.target, tenant)]
        self.send(
            tenant,
            [("OpenAccount", OpenAccount(c, "SAVER", "AUD", initial_deposit=DEPOSIT)) for c in ids],
        )
        self.accounts[tenant] = [row["accountId"] for row in all_accounts(self.target, tenant)]
        book = self.shadow[tenant]
        for account in self.accounts[tenant]:
            book[account] = DEPOSIT
        book["GL_DEPOSIT_FUNDING"] = -DEPOSIT * len(ids)

    def trade(self, tenant: str, rng: np.random.Generator, entries: int = 30) -> None:
        """A day of entries between members and GL accounts (one refused), in small batches."""
        accounts = self.accounts[tenant]
        when = date(2025, 8, self.day)
        commands = []
        for _ in range(entries):
            account = accounts[int(rng.integers(len(accounts)))]
            amount = int(rng.integers(100, 3_000))
            other = "GL_SALARY_CLEARING" if rng.random() < 0.5 else "GL_CARD_CLEARING"
            legs = [Leg(account, "DEBIT", amount), Leg(other, "CREDIT", amount)]
            if other == "GL_CARD_CLEARING":
                legs = [Leg(account, "CREDIT", amount), Leg(other, "DEBIT", amount)]
            commands.append(("PostEntry", PostEntry(when, when, "AUD", legs, "day")))
        too_much = [Leg(accounts[0], "CREDIT", 10**10), Leg("GL_CARD_CLEARING", "DEBIT", 10**10)]
        commands.insert(5, ("PostEntry", PostEntry(when, when, "AUD", too_much, "refused")))
        for start in range(0, len(commands), 6):
            self.send(tenant, commands[start : start + 6])

    def end_day(self) -> None:
        """Probe idempotency, as the twin does at the end of each simulated day."""
        self.suite.probe_idempotency(self.target)
        self.day += 1


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of 16 events, so a tenant's log spans many segment rows."""
    monkeypatch.setattr(eventlog, "SEGMENT_EVENTS", 16)


def make_run(folder: Path, days: int = 2, snapshots: bool = True) -> tuple[Path, dict, Twin]:
    """A finished run folder: events.sqlite with snapshots, and summary.json."""
    folder.mkdir()
    target = EmbeddedTarget(folder / EVENTS_FILE)
    suite = InvariantSuite(idempotency_probes_per_day=4, rng=np.random.default_rng(9))
    twin = Twin(target, suite)
    rng = np.random.default_rng(4)
    for tenant, code in TENANTS:
        twin.setup(tenant, code)
    twin.end_day()
    for _ in range(days):
        for tenant, _code in TENANTS:
            twin.trade(tenant, rng)
        twin.end_day()
    live = suite.finish(target, twin.shadow)
    assert target.log is not None
    if snapshots:
        write_snapshots(target.log, target, twin.shadow, suite)
    fingerprint = {tenant: target.head(tenant)[1] for tenant in suite.tenant_ids}
    (folder / SUMMARY_FILE).write_text(json.dumps({"fingerprint": fingerprint}))
    target.close()
    return folder, live, twin


def failing(reports: dict[str, Any]) -> set[str]:
    """The names of the invariants that failed."""
    return {name for name, verdict in reports.items() if not verdict.passed}


def examples(reports: dict[str, Any], name: str) -> dict[str, Any]:
    """One invariant's counterexamples as a dict."""
    return reports[name].counterexamples.to_dict()


# --------------------------------------------------------------------------- tampering helpers


def segments(run: Path, tenant: str) -> list[tuple[int, int, int, int, bytes]]:
    """(rowid, first_seq, last_seq, events, data) of a tenant's segments, in order."""
    with sqlite3.connect(run / EVENTS_FILE) as db:
        return db.execute(
            "SELECT rowid, first_seq, last_seq, events, data FROM segments "
            "WHERE tenant_id = ? ORDER BY first_seq",
            (tenant,),
        ).fetchall()


def rewrite_lines(
    run: Path, tenant: str, seq: int, edit: Callable[[list[bytes], int], list[bytes]]
) -> None:
    """Decompress the segment holding `seq`, edit its event lines, recompress, update the row."""
    for rowid, first, last, _count, data in segments(run, tenant):
        if first <= seq <= last:
            lines = decompress_segment(data).split(b"\n")[:-1]
            blob = compress_segment(b"".join(line + b"\n" for line in edit(lines, seq - first)))
            with sqlite3.connect(run / EVENTS_FILE) as db:
                db.execute("UPDATE segments SET data = ? WHERE rowid = ?", (blob, rowid))
            return
    raise AssertionError(f"no segment holds {tenant} seq {seq}")


def entry_seq(run: Path, tenant: str, after: int) -> int:
    """The seq of the first EntryPosted at or after `after` (a line with amounts)."""
    for _rowid, first, _last, _count, data in segments(run, tenant):
        for offset, line in enumerate(decompress_segment(data).split(b"\n")[:-1]):
            if first + offset >= after and b'"eventType":"EntryPosted"' in line:
                return first + offset
    raise AssertionError("no EntryPosted found")


def change_amount_digit(lines: list[bytes], index: int) -> list[bytes]:
    """Change one digit of the first amountCents in the line (one byte, same length)."""
    line = bytearray(lines[index])
    at = line.index(b'"amountCents":') + len(b'"amountCents":')
    line[at] = ord("1") if line[at] != ord("1") else ord("2")
    return [*lines[:index], bytes(line), *lines[index + 1 :]]


def reseal(events: Sequence[Event]) -> list[SealedEvent]:
    """Chain events afresh so that only their content or order is the fault."""
    head = GENESIS_HASH
    sealed = []
    for seq, event in enumerate(events, start=1):
        event = msgspec.structs.replace(event, seq=seq, prev_hash=head)
        canonical = canonical_bytes(event)
        head = chain_hash(head, canonical)
        sealed.append(SealedEvent(event, head, canonical))
    return sealed


# --------------------------------------------------------------------------- clean


def test_clean_run_verifies_offline_like_it_did_live(tmp_path: Path, small_segments: None) -> None:
    """A finished run passes all five offline, with the live run's balance count."""
    run, live, twin = make_run(tmp_path / "run")
    seen: list[tuple[str, int]] = []
    offline = verify_run(run, progress=lambda tenant, done: seen.append((tenant, done)))
    assert tuple(offline) == INVARIANT_NAMES
    for name, verdict in offline.items():
        assert verdict.passed, (name, verdict.to_dict())
        assert verdict.examined > 0, name
    events = sum(len(batch) for _tenant, batch in twin.batches)
    assert len(segments(run, "cu-a")) > 3
    assert offline["event_integrity"].examined == events + 2 * 2
    assert offline["balance_derivability"].examined == live["balance_derivability"].examined
    assert offline["idempotency"].examined == live["idempotency"].examined == 2 * 3 * 4
    assert [tenant for tenant, _done in seen] == ["cu-a", "cu-b"]
    assert sum(done for _tenant, done in seen) == events


def test_snapshot_tables_match_their_declared_columns(tmp_path: Path) -> None:
    """snapshot_tables gives every declared table with its declared columns and sane rows."""
    target = EmbeddedTarget()
    suite = InvariantSuite(idempotency_probes_per_day=2)
    twin = Twin(target, suite)
    twin.setup("cu-a", "CU_A", members=2)
    twin.end_day()
    tables = snapshot_tables(target, twin.shadow, suite)
    assert set(tables) == set(SNAPSHOT_COLUMNS)
    for name, (columns, rows) in tables.items():
        assert tuple(columns) == SNAPSHOT_COLUMNS[name]
        assert all(len(row) == len(columns) for row in rows)
    assert tables[CHAIN_HEADS][1] == [("cu-a", *target.head("cu-a"))]
    balances = {row[1]: row[3] for row in tables["read_model_accounts"][1]}
    assert balances == {account: DEPOSIT for account in twin.accounts["cu-a"]}
    assert len(tables["idempotency_probes"][1]) == 2


# --------------------------------------------------------------------------- stored bytes


@pytest.mark.parametrize("fault", ["amount digit", "deleted line", "swapped lines"])
def test_tampered_event_is_named_by_tenant_and_seq(
    tmp_path: Path, small_segments: None, fault: str
) -> None:
    """One changed byte, a deleted or two swapped event lines fail at the right seq."""
    run, _live, _twin = make_run(tmp_path / "run")
    seq = entry_seq(run, "cu-b", after=40)
    if fault == "amount digit":
        rewrite_lines(run, "cu-b", seq, change_amount_digit)
    elif fault == "deleted line":
        rewrite_lines(run, "cu-b", seq, lambda lines, i: lines[:i] + lines[i + 1 :])
    else:
        if not any(first <= seq < last for _r, first, last, _n, _d in segments(run, "cu-b")):
            seq -= 1  # keep both lines in one segment
        rewrite_lines(
            run, "cu-b", seq, lambda lines, i: [*lines[:i], lines[i + 1], lines[i], *lines[i + 2 :]]
        )
    reports = verify_run(run)
    assert "event_integrity" in failing(reports)
    found = examples(reports, "event_integrity")
    assert (found["first"]["tenant"], found["first"]["seq"]) == ("cu-b", seq)
    assert found["last"]["tenant"] == "cu-b"


def test_changed_byte_of_a_compressed_segment_is_named(
    tmp_path: Path, small_segments: None
) -> None:
    """A byte flipped in a segment's blob names the tenant and the segment's seq range."""
    run, _live, _twin = make_run(tmp_path / "run")
    rowid, first, last, _count, data = segments(run, "cu-a")[3]
    blob = bytearray(data)
    blob[len(blob) // 2] ^= 0x5A
    with sqlite3.connect(run / EVENTS_FILE) as db:
        db.execute("UPDATE segments SET data = ? WHERE rowid = ?", (bytes(blob), rowid))
    reports = verify_run(run)
    found = examples(reports, "event_integrity")
    assert (found["first"]["tenant"], found["first"]["seq"]) == ("cu-a", first)
    assert f"seq {first}..{last}" in found["first"]["problem"]
    assert found["count"] == 1  # the chain resumes after the unreadable segment


def test_chain_resumes_after_unreadable_storage_but_still_checks_seqs() -> None:
    """After a corrupt stretch the chain resyncs once, then a later gap is still found."""
    target = EmbeddedTarget()
    twin = Twin(target, InvariantSuite(idempotency_probes_per_day=0))
    twin.setup("cu-a", "CU_A")
    stream = [sealed for _tenant, batch in twin.batches for sealed in batch]
    checks = CheckSet()
    checker = TenantChecker("cu-a", checks, lambda _cid, _first, _last: None)
    for sealed in stream[:4]:
        checker.stored(sealed.hash, sealed.canonical, sealed.event.seq)
    checker.corrupt(5, "seq 5..9: segment does not decompress")
    for sealed in (stream[9], stream[10], stream[12]):  # seqs 10, 11, then 13 where 12 is due
        checker.stored(sealed.hash, sealed.canonical, sealed.event.seq)
    found = checks.integrity.examples.to_dict()
    assert found["first"] == {
        "tenant": "cu-a",
        "seq": 5,
        "problem": "seq 5..9: segment does not decompress",
    }
    assert (found["last"]["seq"], found["last"]["problem"]) == (
        13,
        "prevHash does not match the previous hash",
    )
    assert found["count"] == 3  # the hole, then seq 13 where 12 was due and its prevHash


def test_amount_change_also_breaks_the_fold(tmp_path: Path, small_segments: None) -> None:
    """The changed amount is folded as stored, so derivability fails too, at that seq or later."""
    run, _live, _twin = make_run(tmp_path / "run")
    seq = entry_seq(run, "cu-a", after=30)
    rewrite_lines(run, "cu-a", seq, change_amount_digit)
    reports = verify_run(run)
    assert failing(reports) >= {"event_integrity", "balance_derivability"}
    assert examples(reports, "balance_derivability")["first"]["seq"] > seq


# --------------------------------------------------------------------------- snapshots


def _edit_sql(sql: str, *args: Any) -> Callable[[Path, Twin], None]:
    def edit(run: Path, _twin: Twin) -> None:
        with sqlite3.connect(run / EVENTS_FILE) as db:
            db.execute(sql, args)

    return edit


def _rejection_for_accepted(run: Path, twin: Twin) -> None:
    tenant, command = twin.accepted[-3]
    with sqlite3.connect(run / EVENTS_FILE) as db:
        db.execute(
            "INSERT INTO rejections VALUES (?, ?, 'PostEntry', NULL, '2025-08-02', 'FAKE', NULL)",
            (tenant, command),
        )


def _foreign_customer(run: Path, twin: Twin) -> None:
    with sqlite3.connect(run / EVENTS_FILE) as db:
        (customer,) = db.execute(
            "SELECT customer_id FROM read_model_customers WHERE tenant_id = 'cu-b' LIMIT 1"
        ).fetchone()
        db.execute("INSERT INTO read_model_customers VALUES ('cu-a', ?)", (customer,))


def _summary_fingerprint(run: Path, _twin: Twin) -> None:
    summary = json.loads((run / SUMMARY_FILE).read_text())
    summary["fingerprint"]["cu-b"] = "0" * 64
    (run / SUMMARY_FILE).write_text(json.dumps(summary))


def _probe_claims_other_seqs(run: Path, _twin: Twin) -> None:
    with sqlite3.connect(run / EVENTS_FILE) as db:
        rowid, first_json = db.execute(
            "SELECT rowid, first_json FROM idempotency_probes "
            "WHERE first_json LIKE '%ACCEPTED%' ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
        answer = json.loads(first_json)
        answer["lastSeq"] += 1
        text = json.dumps(answer, sort_keys=True)
        db.execute(
            "UPDATE idempotency_probes SET first_json = ?, replay_json = ? WHERE rowid = ?",
            (text, text, rowid),
        )


SNAPSHOT_FAULTS: dict[str, tuple[Callable[[Path, Twin], None], set[str], str]] = {
    "read model balance": (
        _edit_sql(
            "UPDATE read_model_accounts SET balance_cents = balance_cents + 1 "
            "WHERE rowid = (SELECT min(rowid) FROM read_model_accounts WHERE tenant_id = 'cu-b')"
        ),
        {"balance_derivability"},
        "cu-b",
    ),
    "shadow balance": (
        _edit_sql(
            "UPDATE shadow_accounts SET balance_cents = balance_cents - 100 "
            "WHERE rowid = (SELECT max(rowid) FROM shadow_accounts WHERE tenant_id = 'cu-a')"
        ),
        {"balance_derivability"},
        "cu-a",
    ),
    "chain head": (
        _edit_sql("UPDATE chain_heads SET seq = seq - 1 WHERE tenant_id = 'cu-a'"),
        {"event_integrity"},
        "cu-a",
    ),
    "fingerprint": (_summary_fingerprint, {"event_integrity"}, "cu-b"),
    "probe replay": (
        _edit_sql(
            "UPDATE idempotency_probes SET replay_json = '{}' "
            "WHERE rowid = (SELECT max(rowid) FROM idempotency_probes WHERE tenant_id = 'cu-b')"
        ),
        {"idempotency"},
        "cu-b",
    ),
    "probe seq after": (
        _edit_sql(
            "UPDATE idempotency_probes SET seq_after = seq_after + 3 "
            "WHERE rowid = (SELECT min(rowid) FROM idempotency_probes WHERE tenant_id = 'cu-a')"
        ),
        {"idempotency"},
        "cu-a",
    ),
    "probe seqs not in log": (_probe_claims_other_seqs, {"idempotency"}, "cu-b"),
    "rejected but has events": (_rejection_for_accepted, {"audit_completeness"}, "cu-b"),
    "foreign customer listed": (
        _foreign_customer,
        {"tenant_isolation", "audit_completeness"},
        "cu-a",
    ),
    "account lost from read model": (
        _edit_sql(
            "DELETE FROM read_model_accounts "
            "WHERE rowid = (SELECT max(rowid) FROM read_model_accounts WHERE tenant_id = 'cu-a')"
        ),
        {"balance_derivability"},
        "cu-a",
    ),
    "account moved to another customer": (
        _edit_sql(
            "UPDATE read_model_accounts SET customer_id = "
            "(SELECT max(customer_id) FROM read_model_customers WHERE tenant_id = 'cu-b') "
            "WHERE rowid = (SELECT min(rowid) FROM read_model_accounts WHERE tenant_id = 'cu-b')"
        ),
        {"audit_completeness"},
        "cu-b",
    ),
    "probe of an unrecorded rejection": (
        _edit_sql(
            "UPDATE idempotency_probes SET command_id = 'cu-a-ghost', first_json = ?, "
            "replay_json = ? "
            "WHERE rowid = (SELECT min(rowid) FROM idempotency_probes WHERE tenant_id = 'cu-a')",
            '{"firstSeq": 0, "lastSeq": 0, "rule": "OVERDRAFT_LIMIT", "status": "REJECTED"}',
            '{"firstSeq": 0, "lastSeq": 0, "rule": "OVERDRAFT_LIMIT", "status": "REJECTED"}',
        ),
        {"idempotency"},
        "cu-a",
    ),
    "customer lost from read model": (
        _edit_sql(
            "DELETE FROM read_model_customers "
            "WHERE rowid = (SELECT min(rowid) FROM read_model_customers WHERE tenant_id = 'cu-b')"
        ),
        {"audit_completeness"},
        "cu-b",
    ),
}


@pytest.mark.parametrize("fault", sorted(SNAPSHOT_FAULTS))
def test_tampered_snapshot_fails_the_right_invariant(tmp_path: Path, fault: str) -> None:
    """Each doctored snapshot or summary fails exactly the invariants that cover it."""
    edit, expected, tenant = SNAPSHOT_FAULTS[fault]
    run, _live, twin = make_run(tmp_path / "run", days=1)
    edit(run, twin)
    reports = verify_run(run)
    assert failing(reports) == expected
    for name in expected:
        found = examples(reports, name)
        assert found["first"]["tenant"] == tenant, found


# --------------------------------------------------------------------------- forged chains


@pytest.mark.parametrize("fault", ["split command", "no causation"])
def test_well_chained_but_unaccountable_events_fail_audit(tmp_path: Path, fault: str) -> None:
    """A valid chain whose events split a command, or lack a cause, fails audit only there."""
    target = EmbeddedTarget()
    suite = InvariantSuite(idempotency_probes_per_day=0)
    twin = Twin(target, suite)
    twin.setup("cu-a", "CU_A")
    twin.trade("cu-a", np.random.default_rng(1))
    events = [sealed.event for _tenant, batch in twin.batches for sealed in batch]
    j = max(i for i, event in enumerate(events) if event.event_type == "EntryPosted")
    if fault == "split command":
        events[j - 1], events[j] = events[j], events[j - 1]
        victim = events[j].causation_id
    else:
        events[j] = msgspec.structs.replace(events[j], causation_id="")
        victim = ""
    forged = reseal(events)
    run = tmp_path / "run"
    run.mkdir()
    log = EventLogWriter(run / EVENTS_FILE)
    log.append("cu-a", forged)
    tables = snapshot_tables(target, twin.shadow, suite)
    tables[CHAIN_HEADS] = (tables[CHAIN_HEADS][0], [("cu-a", len(forged), forged[-1].hash)])
    for name, (columns, rows) in tables.items():
        log.write_table(name, columns, rows)
    log.close()
    (run / SUMMARY_FILE).write_text(json.dumps({"fingerprint": {"cu-a": forged[-1].hash}}))
    reports = verify_run(run)
    assert "event_integrity" not in failing(reports)
    assert "audit_completeness" in failing(reports)
    first = examples(reports, "audit_completeness")["first"]
    assert first["tenant"] == "cu-a"
    if fault == "split command":
        assert first["commandId"] == victim
        assert "split" in first["problem"]
    else:
        assert (first["seq"], first["problem"]) == (j + 1, "event has no causationId")


# --------------------------------------------------------------------------- bad input


def test_missing_folder_is_a_verify_error(tmp_path: Path) -> None:
    """A folder that does not exist is named in the error."""
    with pytest.raises(VerifyError, match="no such run folder"):
        verify_run(tmp_path / "nowhere")


def test_run_without_events_says_why(tmp_path: Path) -> None:
    """A run kept without events (--keep-events none) cannot be verified, and says so."""
    run = tmp_path / "run"
    run.mkdir()
    (run / SUMMARY_FILE).write_text(json.dumps({"fingerprint": {}}))
    with pytest.raises(VerifyError, match="--keep-events none") as caught:
        verify_run(run)
    assert str(run / EVENTS_FILE) in str(caught.value)


def test_unreadable_event_log_is_a_verify_error(tmp_path: Path) -> None:
    """A file that is not SQLite is refused with its path."""
    run = tmp_path / "run"
    run.mkdir()
    (run / EVENTS_FILE).write_bytes(b"this is not a database" * 100)
    (run / SUMMARY_FILE).write_text(json.dumps({"fingerprint": {}}))
    with pytest.raises(VerifyError, match="events.sqlite"):
        verify_run(run)


@pytest.mark.parametrize("summary", [None, "{not json", '{"kpis": {}}'])
def test_missing_or_bad_summary_is_a_verify_error(tmp_path: Path, summary: str | None) -> None:
    """summary.json must exist, parse and hold a fingerprint; the error names the file."""
    run, _live, _twin = make_run(tmp_path / "run", days=1)
    if summary is None:
        (run / SUMMARY_FILE).unlink()
    else:
        (run / SUMMARY_FILE).write_text(summary)
    with pytest.raises(VerifyError, match="summary.json"):
        verify_run(run)


def test_run_without_snapshots_names_the_missing_table(tmp_path: Path) -> None:
    """An event log without the end-of-run snapshots names the first table it misses."""
    run, _live, _twin = make_run(tmp_path / "run", days=1, snapshots=False)
    with pytest.raises(VerifyError, match="idempotency_probes is missing"):
        verify_run(run)
