"""The embedded platform's event log: one SQLite file, written by a background thread.

Events are stored per tenant in *segments* of consecutive events, like a
Kafka log: a row holds the tenant, the seq range, the time range and a
zstd-compressed block of lines, one line per event: its 64-hex `hash`, a
space, and its canonical bytes (exactly what was hashed). A row per event
would cost ~720 bytes and cap the run at ~20k events/s; a zstd segment
(level 1, with a frame checksum) costs ~65 bytes an event and compresses at
~2M events/s, far ahead of the simulation. Nothing in a line is
trusted when verifying: every event is re-hashed from its own bytes, so a
changed byte is found and named by tenant and seq, even inside a segment.

A writer thread compresses and inserts (zstd and SQLite release the GIL, so
on two cores the log costs the simulation little). The queue between them is
bounded, so memory stays flat whatever the run's length.

Tables: `segments`, `rejections` (refused commands: not state changes, so not
in the chain, but kept for audit and KPIs), `meta` (key/value), plus snapshot
tables the caller adds with `write_table` (read model, shadow book, probes).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import zstandard

from turingcore.contract import CommandResult, Envelope
from turingcore.events import SealedEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    tenant_id TEXT    NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    first_at  TEXT    NOT NULL,
    last_at   TEXT    NOT NULL,
    events    INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, first_seq)
);
CREATE TABLE IF NOT EXISTS rejections (
    tenant_id       TEXT NOT NULL,
    command_id      TEXT NOT NULL,
    command_type    TEXT NOT NULL,
    idempotency_key TEXT,
    occurred_at     TEXT NOT NULL,
    rule            TEXT NOT NULL,
    message         TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT_SEGMENT = "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?)"
SEGMENT_EVENTS = 4096
_INSERT_REJECTION = "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?)"
_STOP = object()


def compress_segment(lines: bytes) -> bytes:
    """A segment's stored form: zstd level 1 with a content checksum."""
    return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(lines)


def decompress_segment(data: bytes) -> bytes:
    """The lines of a stored segment (raises `zstandard.ZstdError` if damaged)."""
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class _OpenSegment:
    """Consecutive events of one tenant being gathered into one stored segment."""

    __slots__ = ("first_seq", "last_seq", "first_at", "last_at", "count", "data")

    def __init__(self, first_seq: int, first_at: str) -> None:
        self.first_seq = first_seq
        self.last_seq = first_seq
        self.first_at = first_at
        self.last_at = first_at
        self.count = 0
        self.data = bytearray()


class EventLogError(RuntimeError):
    """The event log could not be written or read (names the file)."""


class EventLogWriter:
    """Appends sealed events to a SQLite file from a background thread."""

    def __init__(self, path: Path, *, commit_every: int = 50_000, queue_batches: int = 64) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise EventLogError(f"{self.path}: an event log is already there; refusing to mix runs")
        self.commit_every = commit_every
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_batches)
        self._error: BaseException | None = None
        self._rejections: list[tuple[Any, ...]] = []
        self._open: dict[str, _OpenSegment] = {}
        self._compressor = zstandard.ZstdCompressor(level=1, write_checksum=True)
        self.events_written = 0
        self._thread = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._connection = self._connect()
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        return connection

    # ------------------------------------------------------------------ EventSink

    def append(self, tenant_id: str, events: Sequence[SealedEvent]) -> None:
        """Serialise events into the tenant's open segment; full segments go to the thread.

        Events become bytes at once (so the objects die young and memory stays
        cache-warm), and only whole segments cross to the writer thread: one
        GIL hand-off per 4,096 events rather than one per batch.
        """
        if not events:
            return
        segment = self._open.get(tenant_id)
        if segment is None:
            first = events[0].event
            segment = self._open[tenant_id] = _OpenSegment(first.seq, first.occurred_at)
        data = segment.data
        for sealed in events:
            data += sealed.hash.encode()
            data += b" "
            data += sealed.canonical
            data += b"\n"
        last = events[-1].event
        segment.last_seq = last.seq
        segment.last_at = last.occurred_at
        segment.count += len(events)
        if segment.count >= SEGMENT_EVENTS:
            self._raise_if_failed()
            self._queue.put((tenant_id, segment))
            del self._open[tenant_id]

    def _hand_over_buffers(self) -> None:
        for tenant_id, segment in self._open.items():
            self._queue.put((tenant_id, segment))
        self._open = {}

    def rejected(self, tenant_id: str, envelope: Envelope, result: CommandResult) -> None:
        self._rejections.append(
            (
                tenant_id,
                envelope.command_id,
                envelope.command_type,
                envelope.idempotency_key,
                envelope.timestamp,
                result.rule,
                result.message,
            )
        )
        if len(self._rejections) >= 1000:
            self._queue.put(("rejections", self._rejections))
            self._rejections = []

    def close(self) -> None:
        """Flush everything, build the indexes, and close the file."""
        if self._thread.is_alive():
            self._hand_over_buffers()
            if self._rejections:
                self._queue.put(("rejections", self._rejections))
                self._rejections = []
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_if_failed()
        connection = self._connection
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")  # the run folder keeps one file
        connection.close()

    # ------------------------------------------------------------------ snapshots

    def write_meta(self, values: dict[str, str]) -> None:
        """Key/value facts about the run (written from the caller's thread at the end)."""
        self._flush_wait()
        with self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(values.items())
            )

    def write_table(self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A snapshot table (e.g. the read model at the end), replaced if present."""
        if not name.isidentifier() or not all(column.isidentifier() for column in columns):
            raise ValueError("table and column names must be identifiers")
        self._flush_wait()
        column_list = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        connection = self._connection
        connection.execute("BEGIN")
        connection.execute(f"DROP TABLE IF EXISTS {name}")
        connection.execute(f"CREATE TABLE {name} ({column_list})")
        connection.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        connection.execute("COMMIT")

    # ------------------------------------------------------------------ thread

    def _flush_wait(self) -> None:
        self._hand_over_buffers()
        if self._rejections:
            self._queue.put(("rejections", self._rejections))
            self._rejections = []
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise EventLogError(f"{self.path}: writing the event log failed: {self._error}")

    def _write_segment(
        self, connection: sqlite3.Connection, tenant_id: str, segment: _OpenSegment
    ) -> int:
        connection.execute(
            _INSERT_SEGMENT,
            (
                tenant_id,
                segment.first_seq,
                segment.last_seq,
                segment.first_at,
                segment.last_at,
                segment.count,
                self._compressor.compress(segment.data),
            ),
        )
        self.events_written += segment.count
        return segment.count

    def _run(self) -> None:
        connection = self._connection
        pending = 0
        in_transaction = False
        try:
            while True:
                item = self._queue.get()
                if item is _STOP or isinstance(item, threading.Event):
                    if in_transaction:
                        connection.execute("COMMIT")
                        in_transaction = False
                        pending = 0
                    if item is _STOP:
                        return
                    item.set()
                    continue
                if not in_transaction:
                    connection.execute("BEGIN")
                    in_transaction = True
                tenant_id, batch = item
                if tenant_id == "rejections" and batch and isinstance(batch[0], tuple):
                    connection.executemany(_INSERT_REJECTION, batch)
                    continue
                pending += self._write_segment(connection, tenant_id, batch)
                if pending >= self.commit_every:
                    connection.execute("COMMIT")
                    in_transaction = False
                    pending = 0
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller's thread
            self._error = exc
            # keep draining so producers never block forever on a dead writer
            while True:
                item = self._queue.get()
                if isinstance(item, threading.Event):
                    item.set()
                if item is _STOP:
                    return


class StoredEvent(NamedTuple):
    """One event as stored: its claimed hash and canonical bytes, or a corrupt stretch."""

    tenant_id: str
    hash: str
    canonical: bytes
    corrupt: str | None = None
    seq_hint: int = 0


class EventLogReader:
    """Reads a run's event log back (for `twin verify`, replays and notebooks)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise EventLogError(f"{self.path}: no event log here")
        try:
            self._connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            self._connection.execute("SELECT count(*) FROM segments LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise EventLogError(f"{self.path}: not a readable event log ({exc})") from None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> EventLogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def tenants(self) -> list[str]:
        rows = self._connection.execute("SELECT DISTINCT tenant_id FROM segments ORDER BY 1")
        return [row[0] for row in rows]

    def events(
        self,
        tenant_id: str,
        from_timestamp: str | None = None,
        to_timestamp: str | None = None,
    ) -> Iterator[StoredEvent]:
        """The tenant's events in stored order, decompressed lazily (flat memory).

        With timestamps, only segments overlapping the range are read (callers
        filter single events by their `occurredAt`). A segment that cannot be
        decompressed or split yields a `StoredEvent` with `corrupt` set and the
        seq where trouble starts, after every event that could be read.
        """
        sql = "SELECT first_seq, last_seq, events, data FROM segments WHERE tenant_id = ?"
        args: list[Any] = [tenant_id]
        if from_timestamp is not None:
            sql += " AND last_at >= ?"
            args.append(from_timestamp)
        if to_timestamp is not None:
            sql += " AND first_at <= ?"
            args.append(to_timestamp)
        sql += " ORDER BY first_seq"
        for first_seq, last_seq, count, data in self._connection.execute(sql, args):
            yield from _segment_events(tenant_id, first_seq, last_seq, count, data)

    def rejections(self, tenant_id: str | None = None) -> list[tuple[Any, ...]]:
        if tenant_id is None:
            return self._connection.execute("SELECT * FROM rejections").fetchall()
        return self._connection.execute(
            "SELECT * FROM rejections WHERE tenant_id = ?", (tenant_id,)
        ).fetchall()

    def meta(self) -> dict[str, str]:
        return dict(self._connection.execute("SELECT key, value FROM meta").fetchall())

    def table(self, name: str) -> list[tuple[Any, ...]]:
        if not name.isidentifier():
            raise ValueError("table names are identifiers")
        try:
            return self._connection.execute(f"SELECT * FROM {name}").fetchall()
        except sqlite3.OperationalError as exc:
            raise EventLogError(f"{self.path}: table {name} is missing ({exc})") from None

    def count(self, tenant_id: str | None = None) -> int:
        """Events stored (as the segment rows declare them)."""
        if tenant_id is None:
            row = self._connection.execute("SELECT sum(events) FROM segments").fetchone()
        else:
            row = self._connection.execute(
                "SELECT sum(events) FROM segments WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        return int(row[0] or 0)


def _segment_events(
    tenant_id: str, first_seq: int, last_seq: int, count: int, data: bytes
) -> Iterator[StoredEvent]:
    """Split one segment into events, salvaging what precedes any corruption."""
    inflater = zstandard.ZstdDecompressor().decompressobj()
    pieces: list[bytes] = []
    problem: str | None = None
    try:
        for start in range(0, len(data), 65536):
            pieces.append(inflater.decompress(data[start : start + 65536]))
        if not inflater.eof:
            problem = "segment is truncated"
    except zstandard.ZstdError as exc:
        problem = f"segment does not decompress ({exc})"
    text = b"".join(pieces)
    lines = text.split(b"\n")
    complete = lines[:-1] if (problem or lines[-1]) else lines[:-1]
    if problem is None and lines[-1]:
        problem = "segment does not end with a complete event"
    if problem is not None and complete:
        complete = complete[:-1]  # the last line before the damage may be damaged too
    seq = first_seq
    for line in complete:
        claimed, _space, canonical = line.partition(b" ")
        yield StoredEvent(tenant_id, claimed.decode("ascii", "replace"), canonical, None, seq)
        seq += 1
    if problem is None and len(complete) != count:
        problem = f"segment holds {len(complete)} events but its row says {count}"
    if problem is not None:
        where = f"seq {seq}..{last_seq}" if seq <= last_seq else f"after seq {last_seq}"
        yield StoredEvent(tenant_id, "", b"", f"{where}: {problem}", seq)
