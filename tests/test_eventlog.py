"""The SQLite event log: writer and reader round trip, segments, tables, corruption, errors."""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from platform_builders import Recorder, new_bank

from turingcore import eventlog
from turingcore.contract import Actor, CommandResult, Envelope
from turingcore.embedded import EmbeddedPlatform
from turingcore.eventlog import (
    SEGMENT_EVENTS,
    EventLogError,
    EventLogReader,
    EventLogWriter,
    StoredEvent,
)
from turingcore.events import (
    GENESIS_HASH,
    BalanceUpdatedPayload,
    ChainVerifier,
    Event,
    SealedEvent,
    canonical_bytes,
    chain_hash,
)

# --------------------------------------------------------------------------- helpers

START = datetime(2025, 7, 1, tzinfo=timezone(timedelta(hours=10)))


def chain(tenant: str, count: int, start_day: int = 0) -> list[SealedEvent]:
    """A valid hand-sealed chain of balance updates, one minute apart from `start_day`."""
    head = GENESIS_HASH
    sealed = []
    for seq in range(1, count + 1):
        occurred = (START + timedelta(days=start_day, minutes=seq)).isoformat()
        payload = BalanceUpdatedPayload(f"acc-{seq % 7}", seq * 10, 10, f"entry-{seq}")
        event = Event(
            event_id=f"{tenant}-ev-{seq}",
            event_type="AccountBalanceUpdated",
            tenant_id=tenant,
            entity_id=payload.account_id,
            payload=payload,
            occurred_at=occurred,
            causation_id=f"{tenant}-cmd-{seq}",
            seq=seq,
            prev_hash=head,
        )
        canonical = canonical_bytes(event)
        head = chain_hash(head, canonical)
        sealed.append(SealedEvent(event, head, canonical))
    return sealed


def batches(events: list[SealedEvent], size: int) -> Iterator[list[SealedEvent]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def stored(reader: EventLogReader, tenant: str, **kw: str) -> list[StoredEvent]:
    return list(reader.events(tenant, **kw))


def pairs(events: list[SealedEvent] | list[StoredEvent]) -> list[tuple[str, bytes]]:
    return [(e.hash, e.canonical) for e in events]


def verifies(tenant: str, events: list[StoredEvent]) -> bool:
    """Every stored event re-hashes from its own bytes and links to the one before."""
    verifier = ChainVerifier(tenant)
    return all(
        e.corrupt is None and not verifier.check(json.loads(e.canonical), e.canonical, e.hash)
        for e in events
    )


def segment_rows(path: Path, tenant: str) -> list[tuple[int, int, int]]:
    """(first_seq, last_seq, events) of a tenant's segment rows (schema per eventlog.py)."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT first_seq, last_seq, events FROM segments WHERE tenant_id = ? ORDER BY 1",
            (tenant,),
        ).fetchall()
    connection.close()
    return rows


def set_segment(path: Path, tenant: str, first_seq: int, column: str, value: object) -> None:
    """Overwrite one column of one segment row, as a disk fault or an attacker would."""
    assert column in ("data", "events")
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            f"UPDATE segments SET {column} = ? WHERE tenant_id = ? AND first_seq = ?",
            (value, tenant, first_seq),
        )
    connection.close()


def segment_codec() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """(compress, decompress) of stored segments: the log's own helpers, else zlib."""
    compress = getattr(eventlog, "compress_segment", None)
    decompress = getattr(eventlog, "decompress_segment", None)
    if compress is not None and decompress is not None:
        return compress, decompress
    return (lambda data: zlib.compress(data, 1)), zlib.decompress


def refusal(n: int, tenant: str = "cu-a") -> tuple[Envelope, CommandResult]:
    """A refused PostEntry and its answer, as the shell hands them to the sink."""
    envelope = Envelope(
        command_id=f"rej-{n}",
        tenant_id=tenant,
        command_type="PostEntry",
        actor=Actor("SYSTEM", "t"),
        timestamp="2025-07-01T09:00:00+10:00",
        payload=None,
        idempotency_key=f"k-{n}" if n % 2 else None,
    )
    result = CommandResult(
        envelope.command_id,
        "REJECTED",
        envelope.command_id,
        envelope.timestamp,
        rule="OVERDRAFT_LIMIT",
        error="INVARIANT_VIOLATION",
        message=f"no funds {n}",
    )
    return envelope, result


# --------------------------------------------------------------------------- platform round trip


@pytest.fixture
def platform_log(tmp_path: Path) -> tuple[Path, Recorder, list[CommandResult]]:
    """A two-tenant platform run written through the writer; the log path and what was published."""
    path = tmp_path / "events.sqlite"
    platform = EmbeddedPlatform(sink=EventLogWriter(path))
    a = new_bank(platform, "cu-a", "CU_A", customers=3, deposit=5_000)
    b = new_bank(platform, "cu-b", "CU_B", customers=2, deposit=7_000, recorder=a.recorder)
    refused: list[CommandResult] = []
    for n in range(4):
        for bank in (b, a):
            results = bank.submit(
                bank.cmd.post(
                    [
                        (bank.accounts[0], "DEBIT", 100 + n),
                        ("GL_SALARY_CLEARING", "CREDIT", 100 + n),
                    ]
                ),
                bank.cmd.post(
                    [(bank.accounts[1], "CREDIT", 10**7), ("GL_CARD_CLEARING", "DEBIT", 10**7)],
                    key=f"big-{n}",
                ),
            )
            refused.append(results[1])
    platform.close()
    return path, a.recorder, refused


def test_platform_events_come_back_in_order_byte_for_byte(
    platform_log: tuple[Path, Recorder, list[CommandResult]],
) -> None:
    """Every published event is read back in chain order with the same hash and canonical bytes."""
    path, recorder, _refused = platform_log
    with EventLogReader(path) as reader:
        assert reader.tenants() == ["cu-a", "cu-b"]
        total = 0
        for tenant in ("cu-a", "cu-b"):
            back = stored(reader, tenant)
            assert pairs(back) == pairs(recorder.events(tenant))
            assert [e.seq_hint for e in back] == list(range(1, len(back) + 1))
            assert {e.tenant_id for e in back} == {tenant}
            assert verifies(tenant, back)
            assert reader.count(tenant) == len(back)
            total += len(back)
        assert reader.count() == total == len(recorder.events())


def test_refused_commands_are_in_the_rejections_table(
    platform_log: tuple[Path, Recorder, list[CommandResult]],
) -> None:
    """Each refusal is a row: tenant, command id and type, key, time, rule, message."""
    path, _recorder, refused = platform_log
    with EventLogReader(path) as reader:
        rows = reader.rejections()
        assert sorted(row[1] for row in rows) == sorted(r.command_id for r in refused)
        only_a = reader.rejections("cu-a")
        assert {row[0] for row in only_a} == {"cu-a"}
        assert len(only_a) == 4
        tenant, command_id, kind, key, occurred, rule, message = only_a[0]
        result = next(r for r in refused if r.command_id == command_id)
        assert (kind, rule, message) == ("PostEntry", "OVERDRAFT_LIMIT", result.message)
        assert key is not None
        assert key.startswith("big-")
        assert occurred == result.accepted_at


def test_meta_and_snapshot_tables_round_trip(tmp_path: Path) -> None:
    """write_meta and write_table (replacing a table) read back through meta() and table()."""
    path = tmp_path / "log.sqlite"
    writer = EventLogWriter(path)
    writer.append("cu-a", chain("cu-a", 3))
    writer.write_meta({"seed": "42", "scenario": "tiny"})
    writer.write_meta({"seed": "43"})
    writer.write_table("balances", ["account", "cents"], [("a", 1), ("b", -1)])
    writer.write_table("balances", ["account", "cents"], [("c", 7)])
    writer.write_table("empty", ["x"], [])
    writer.close()
    with EventLogReader(path) as reader:
        assert reader.meta() == {"seed": "43", "scenario": "tiny"}
        assert reader.table("balances") == [("c", 7)]
        assert reader.table("empty") == []
        assert reader.count("cu-a") == 3
        with pytest.raises(EventLogError) as caught:
            reader.table("missing_table")
        assert str(path) in str(caught.value)
        assert "missing_table" in str(caught.value)
        with pytest.raises(ValueError, match="identifiers"):
            reader.table("x; DROP TABLE segments")


@pytest.mark.parametrize(
    ("name", "columns"), [("bad name", ["a"]), ("ok", ["a", "b c"]), ("x;--", ["a"])]
)
def test_write_table_refuses_names_that_are_not_identifiers(
    tmp_path: Path, name: str, columns: list[str]
) -> None:
    """Table and column names must be identifiers (they are spliced into SQL)."""
    writer = EventLogWriter(tmp_path / "log.sqlite")
    try:
        with pytest.raises(ValueError, match="identifiers"):
            writer.write_table(name, columns, [])
    finally:
        writer.close()


# --------------------------------------------------------------------------- segments


def test_segments_of_interleaved_tenants_read_back_per_tenant(tmp_path: Path) -> None:
    """Batches of three tenants interleaved, more than a segment's worth, read back per tenant."""
    path = tmp_path / "log.sqlite"
    chains = {
        "cu-a": chain("cu-a", 2 * SEGMENT_EVENTS + 321),
        "cu-b": chain("cu-b", 1_000),
        "cu-c": chain("cu-c", 5),
    }
    sizes = {"cu-a": 97, "cu-b": 13, "cu-c": 2}
    feeds = {tenant: batches(events, sizes[tenant]) for tenant, events in chains.items()}
    writer = EventLogWriter(path)
    while feeds:
        for tenant in list(feeds):
            batch = next(feeds[tenant], None)
            if batch is None:
                del feeds[tenant]
            else:
                writer.append(tenant, batch)
    writer.close()
    assert writer.events_written == sum(len(c) for c in chains.values())
    with EventLogReader(path) as reader:
        assert reader.tenants() == sorted(chains)
        for tenant, events in chains.items():
            back = stored(reader, tenant)
            assert pairs(back) == pairs(events)
            assert verifies(tenant, back)
    rows = segment_rows(path, "cu-a")
    assert len(rows) >= 2
    assert rows[0][0] == 1
    assert rows[-1][1] == len(chains["cu-a"])
    assert all(rows[i][1] + 1 == rows[i + 1][0] for i in range(len(rows) - 1))
    assert sum(row[2] for row in rows) == len(chains["cu-a"])


def test_time_range_reads_only_overlapping_segments(tmp_path: Path) -> None:
    """With timestamps, events() skips segments wholly outside the range, keeping order."""
    path = tmp_path / "log.sqlite"
    events = chain("cu-a", SEGMENT_EVENTS + 50)
    writer = EventLogWriter(path)
    for batch in batches(events, 2):
        writer.append("cu-a", batch)
    writer.close()
    (first, second) = segment_rows(path, "cu-a")
    split = events[second[0] - 1].event.occurred_at
    before_split = events[first[1] - 1].event.occurred_at
    with EventLogReader(path) as reader:
        assert pairs(stored(reader, "cu-a", from_timestamp=split)) == pairs(events[first[1] :])
        assert pairs(stored(reader, "cu-a", to_timestamp=before_split)) == pairs(events[: first[1]])
        assert stored(reader, "cu-a", to_timestamp="2000-01-01T00:00:00+10:00") == []
        assert stored(reader, "cu-a", from_timestamp="2999-01-01T00:00:00+10:00") == []
        assert len(stored(reader, "cu-a", from_timestamp=events[0].event.occurred_at)) == len(
            events
        )


def test_writer_with_a_tiny_queue_still_writes_everything(tmp_path: Path) -> None:
    """Thousands of batches through a one-slot queue: the writer keeps up, closes, counts all."""
    path = tmp_path / "log.sqlite"
    writer = EventLogWriter(path, queue_batches=1, commit_every=500)
    chains = {tenant: chain(tenant, 3_000) for tenant in ("cu-a", "cu-b", "cu-c")}
    feeds = [(tenant, list(batches(events, 2))) for tenant, events in chains.items()]
    for index in range(1_500):
        for tenant, parts in feeds:
            writer.append(tenant, parts[index])
    for n in range(2_345):
        writer.rejected("cu-b", *refusal(n, "cu-b"))
    writer.close()
    assert writer.events_written == 9_000
    with EventLogReader(path) as reader:
        assert reader.count() == 9_000
        for tenant, events in chains.items():
            assert pairs(stored(reader, tenant)) == pairs(events)
        rows = reader.rejections("cu-b")
        assert len(rows) == 2_345
        assert sorted(row[1] for row in rows) == sorted(f"rej-{n}" for n in range(2_345))


def test_a_failed_write_is_raised_in_the_callers_thread(tmp_path: Path) -> None:
    """A write the database refuses (a repeated seq range) is an EventLogError naming the file."""
    path = tmp_path / "log.sqlite"
    events = chain("cu-a", 4)
    writer = EventLogWriter(path)
    writer.append("cu-a", events)
    writer.write_meta({"flushed": "yes"})  # waits until the first segment is written
    writer.append("cu-a", events)  # same tenant and first seq: the primary key refuses it
    with pytest.raises(EventLogError) as caught:
        writer.close()
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- refusals


def test_writer_refuses_an_existing_file_and_leaves_it_alone(tmp_path: Path) -> None:
    """A second writer on a path that holds a log raises, naming the path, and changes nothing."""
    path = tmp_path / "log.sqlite"
    writer = EventLogWriter(path)
    writer.append("cu-a", chain("cu-a", 5))
    writer.close()
    before = path.read_bytes()
    with pytest.raises(EventLogError) as caught:
        EventLogWriter(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before
    text = tmp_path / "notes.txt"
    text.write_text("not a log")
    with pytest.raises(EventLogError):
        EventLogWriter(text)
    assert text.read_text() == "not a log"


def test_reader_names_a_missing_file(tmp_path: Path) -> None:
    """Opening a log that is not there is an EventLogError naming the path."""
    path = tmp_path / "nowhere" / "log.sqlite"
    with pytest.raises(EventLogError) as caught:
        EventLogReader(path)
    assert str(path) in str(caught.value)
    with pytest.raises(EventLogError):
        EventLogReader(tmp_path)  # a directory is not a log either


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just text\n" * 40, b"", b"SQLite format 3\x00" + bytes(80)],
)
def test_reader_names_a_file_that_is_not_an_event_log(tmp_path: Path, content: bytes) -> None:
    """A text file, an empty file or a broken header is an EventLogError naming the path."""
    path = tmp_path / "log.sqlite"
    path.write_bytes(content)
    with pytest.raises(EventLogError) as caught:
        EventLogReader(path)
    assert str(path) in str(caught.value)


def test_reader_refuses_a_sqlite_file_without_segments(tmp_path: Path) -> None:
    """A real SQLite database that is not an event log is refused, naming the path."""
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    with pytest.raises(EventLogError) as caught:
        EventLogReader(path)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- corruption


@pytest.fixture
def two_segments(tmp_path: Path) -> tuple[Path, list[SealedEvent], list[tuple[int, int, int]]]:
    """A log of one tenant in two segments; its path, its events and its segment rows."""
    path = tmp_path / "log.sqlite"
    events = chain("cu-a", SEGMENT_EVENTS + 200)
    writer = EventLogWriter(path)
    for batch in batches(events, 2):
        writer.append("cu-a", batch)
    writer.close()
    rows = segment_rows(path, "cu-a")
    assert len(rows) == 2
    return path, events, rows


def _blob(path: Path, first_seq: int) -> bytes:
    with sqlite3.connect(path) as connection:
        (data,) = connection.execute(
            "SELECT data FROM segments WHERE first_seq = ?", (first_seq,)
        ).fetchone()
    connection.close()
    return bytes(data)


def test_truncated_segment_salvages_what_precedes_and_names_the_rest(
    two_segments: tuple[Path, list[SealedEvent], list[tuple[int, int, int]]],
) -> None:
    """A cut-short blob yields the intact events before it, then one corrupt marker seq k..last."""
    path, events, rows = two_segments
    (first, last, _count), later = rows[0], rows[1]
    data = _blob(path, first)
    set_segment(path, "cu-a", first, "data", data[: len(data) // 2])
    with EventLogReader(path) as reader:
        back = stored(reader, "cu-a")
    marker = next(i for i, e in enumerate(back) if e.corrupt is not None)
    salvaged = back[:marker]
    assert 0 < len(salvaged) < last
    assert pairs(salvaged) == pairs(events[: len(salvaged)])
    corrupt = back[marker]
    k = len(salvaged) + 1
    assert corrupt.seq_hint == k
    assert corrupt.corrupt.startswith(f"seq {k}..{last}: ")
    assert "truncated" in corrupt.corrupt
    assert pairs(back[marker + 1 :]) == pairs(events[later[0] - 1 :])  # next segment intact


def test_garbled_segment_is_a_corrupt_marker_naming_its_seq_range(
    two_segments: tuple[Path, list[SealedEvent], list[tuple[int, int, int]]],
) -> None:
    """Bytes that do not decompress are reported as 'seq first..last', not a crash."""
    path, events, rows = two_segments
    first, last, _count = rows[1]
    data = bytearray(_blob(path, first))
    for i in range(8, len(data) - 8, 97):
        data[i] ^= 0x5A
    set_segment(path, "cu-a", first, "data", bytes(data))
    with EventLogReader(path) as reader:
        back = stored(reader, "cu-a")
    bad = [e for e in back if e.corrupt is not None]
    assert len(bad) == 1
    assert bad[0] is back[-1]
    assert first <= bad[0].seq_hint <= last
    assert bad[0].corrupt.startswith(f"seq {bad[0].seq_hint}..{last}: ")
    good = back[:-1]
    assert pairs(good) == pairs(events[: len(good)])


def test_segment_whose_row_miscounts_its_events_is_flagged(
    two_segments: tuple[Path, list[SealedEvent], list[tuple[int, int, int]]],
) -> None:
    """A row claiming more events than its blob holds yields the events, then a marker."""
    path, events, rows = two_segments
    first, last, count = rows[0]
    set_segment(path, "cu-a", first, "events", count + 1)
    with EventLogReader(path) as reader:
        back = stored(reader, "cu-a")
        assert reader.count("cu-a") == len(events) + 1
    assert pairs(back[:count]) == pairs(events[:count])
    marker = back[count]
    assert marker.corrupt is not None
    assert f"after seq {last}: segment holds {count} events but its row says {count + 1}" in (
        marker.corrupt
    )
    assert pairs(back[count + 1 :]) == pairs(events[count:])


def test_segment_not_ending_in_a_newline_is_flagged(tmp_path: Path) -> None:
    """A blob whose last line is incomplete keeps the lines before and flags the rest."""
    path = tmp_path / "log.sqlite"
    events = chain("cu-a", 10)
    writer = EventLogWriter(path)
    writer.append("cu-a", events)
    writer.close()
    compress, decompress = segment_codec()
    text = decompress(_blob(path, 1))
    assert text.endswith(b"\n")
    set_segment(path, "cu-a", 1, "data", compress(text[:-1]))
    with EventLogReader(path) as reader:
        back = stored(reader, "cu-a")
    assert pairs(back[:-1]) == pairs(events[:8])
    assert back[-1].corrupt is not None
    assert back[-1].corrupt.startswith("seq 9..10: ")
    assert "complete event" in back[-1].corrupt
