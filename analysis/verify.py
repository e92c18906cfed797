"""The five invariants again, offline, from nothing but a run folder.

`twin verify RUN_DIR` must not trust the run that produced the folder: it
re-derives every verdict from the stored bytes. Each event line in
`events.sqlite` is parsed, re-encoded (it must be the canonical form) and
re-hashed into its tenant's chain; legs are folded and compared with every
balance update, with the read model and with the shadow book the twin
snapshotted at the end; account and customer ownership is re-checked; the
idempotency probes the live run made are checked against the log; every
event must have a causing command, no command's events may be split or
duplicated, and no rejected command may have caused events; and every
tenant's chain head must equal both the snapshotted head and the
fingerprint in `summary.json`.

The per-tenant work is `analysis.invariants.TenantChecker`, the very code
the live suite runs. Memory stays per-account: events stream through, and
the one check that needs every command id (split or duplicated commands,
events of rejected commands) runs in SQL on a private temporary database.

The snapshot tables are defined here (`SNAPSHOT_COLUMNS`) and produced by
`snapshot_tables`, which the twin calls at the end of a run and stores with
`EventLogWriter.write_table` (`write_snapshots` does both).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from analysis.invariants import (
    CheckSet,
    InvariantReport,
    InvariantSuite,
    TenantChecker,
)
from sim.target import Target, all_accounts, all_customers, read_model_balances
from turingcore.eventlog import EventLogError, EventLogReader, EventLogWriter

EVENTS_FILE = "events.sqlite"
SUMMARY_FILE = "summary.json"

READ_MODEL_ACCOUNTS = "read_model_accounts"
READ_MODEL_CUSTOMERS = "read_model_customers"
SHADOW_ACCOUNTS = "shadow_accounts"
IDEMPOTENCY_PROBES = "idempotency_probes"
CHAIN_HEADS = "chain_heads"

#: The snapshot tables the twin adds to events.sqlite at the end of a run:
#: table -> its columns. Money is integer cents; `first_json`/`replay_json`
#: are a probe's answers as JSON {status, rule, firstSeq, lastSeq}.
SNAPSHOT_COLUMNS: dict[str, tuple[str, ...]] = {
    READ_MODEL_ACCOUNTS: ("tenant_id", "account_id", "customer_id", "balance_cents"),
    READ_MODEL_CUSTOMERS: ("tenant_id", "customer_id"),
    SHADOW_ACCOUNTS: ("tenant_id", "account_id", "balance_cents"),
    IDEMPOTENCY_PROBES: (
        "tenant_id",
        "command_id",
        "idempotency_key",
        "first_json",
        "replay_json",
        "seq_before",
        "seq_after",
    ),
    CHAIN_HEADS: ("tenant_id", "seq", "hash"),
}

_PROGRESS_EVERY = 100_000
_FLUSH_ROWS = 50_000

Progress = Callable[[str, int], None]


class VerifyError(Exception):
    """The run folder cannot be verified (missing or unreadable input); names the path."""


# --------------------------------------------------------------------------- writing


def snapshot_tables(
    target: Target, shadow: Mapping[str, Mapping[str, int]], suite: InvariantSuite
) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The end-of-run snapshot tables: name -> (columns, rows).

    Taken through the target's public read API (the same answers the live
    suite checked), so `verify_run` can re-check them against the stored
    events without the platform.

    Args:
        target: the platform at the end of the run.
        shadow: tenant -> accountId -> cents the twin expects.
        suite: the live suite (for its tenants and idempotency probes).
    """
    accounts: list[tuple[Any, ...]] = []
    customers: list[tuple[Any, ...]] = []
    heads: list[tuple[Any, ...]] = []
    for tenant in sorted(set(suite.tenant_ids) | set(shadow)):
        balances = read_model_balances(target, tenant)
        for row in all_accounts(target, tenant):
            account = row["accountId"]
            accounts.append((tenant, account, row["customerId"], balances[account]))
        customers.extend((tenant, row["customerId"]) for row in all_customers(target, tenant))
        try:
            seq, head_hash = target.head(tenant)
        except KeyError:
            continue
        heads.append((tenant, int(seq), head_hash))
    shadow_rows = [
        (tenant, account, int(cents))
        for tenant in sorted(shadow)
        for account, cents in sorted(shadow[tenant].items())
    ]
    probes = [
        (
            probe["tenant"],
            probe["commandId"],
            probe["idempotencyKey"],
            json.dumps(probe["first"], sort_keys=True),
            json.dumps(probe["replay"], sort_keys=True),
            probe["seqBefore"],
            probe["seqAfter"],
        )
        for probe in suite.probes
    ]
    rows = {
        READ_MODEL_ACCOUNTS: accounts,
        READ_MODEL_CUSTOMERS: customers,
        SHADOW_ACCOUNTS: shadow_rows,
        IDEMPOTENCY_PROBES: probes,
        CHAIN_HEADS: heads,
    }
    return {name: (list(SNAPSHOT_COLUMNS[name]), rows[name]) for name in SNAPSHOT_COLUMNS}


def write_snapshots(
    log: EventLogWriter,
    target: Target,
    shadow: Mapping[str, Mapping[str, int]],
    suite: InvariantSuite,
) -> None:
    """Store `snapshot_tables(...)` in the run's event log (before closing it)."""
    for name, (columns, rows) in snapshot_tables(target, shadow, suite).items():
        log.write_table(name, columns, rows)


# --------------------------------------------------------------------------- reading


def verify_run(run_dir: Path, progress: Progress | None = None) -> dict[str, InvariantReport]:
    """Re-check the five invariants from a run folder alone.

    Args:
        run_dir: the run's folder (holding events.sqlite and summary.json).
        progress: called as progress(tenant, events verified so far) every
            100k events and when a tenant is done.

    Returns:
        name -> report for the five invariants, in `INVARIANT_NAMES` order.

    Raises:
        VerifyError: the folder, the event log, a snapshot table or
            summary.json is missing or unreadable (the message names it).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VerifyError(f"{run_dir}: no such run folder")
    log_path = run_dir / EVENTS_FILE
    if not log_path.is_file():
        raise VerifyError(
            f"{log_path}: the run folder has no event log (a run made with "
            "--keep-events none keeps none), so there is nothing to verify offline"
        )
    fingerprint = _load_fingerprint(run_dir / SUMMARY_FILE)
    try:
        reader = EventLogReader(log_path)
    except EventLogError as exc:
        raise VerifyError(str(exc)) from None
    try:
        with reader, _Scratch(log_path) as scratch:
            return _verify(reader, scratch, fingerprint, progress)
    except sqlite3.DatabaseError as exc:
        raise VerifyError(f"{log_path}: unreadable event log ({exc})") from None


def _load_fingerprint(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerifyError(f"{path}: missing (the run did not finish?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VerifyError(f"{path}: unreadable ({exc})") from None
    fingerprint = summary.get("fingerprint") if isinstance(summary, dict) else None
    if not isinstance(fingerprint, dict):
        raise VerifyError(f"{path}: has no 'fingerprint' object (tenant -> chain head hash)")
    return {
        tenant: value.get("hash") if isinstance(value, dict) else value
        for tenant, value in fingerprint.items()
    }


class _Snapshots:
    """The snapshot tables, grouped by tenant (per-account memory)."""

    def __init__(self, reader: EventLogReader) -> None:
        self.accounts: dict[str, list[tuple[Any, Any, Any]]] = {}
        self.customers: dict[str, list[Any]] = {}
        self.shadow: dict[str, dict[str, Any]] = {}
        self.heads: dict[str, tuple[Any, Any]] = {}
        self.probes = self._table(reader, IDEMPOTENCY_PROBES)
        for tenant, account, customer, cents in self._table(reader, READ_MODEL_ACCOUNTS):
            self.accounts.setdefault(tenant, []).append((account, customer, cents))
        for tenant, customer in self._table(reader, READ_MODEL_CUSTOMERS):
            self.customers.setdefault(tenant, []).append(customer)
        for tenant, account, cents in self._table(reader, SHADOW_ACCOUNTS):
            self.shadow.setdefault(tenant, {})[account] = cents
        for tenant, seq, head_hash in self._table(reader, CHAIN_HEADS):
            self.heads[tenant] = (seq, head_hash)

    @staticmethod
    def _table(reader: EventLogReader, name: str) -> list[tuple[Any, ...]]:
        try:
            rows = reader.table(name)
        except EventLogError:
            raise VerifyError(
                f"{reader.path}: snapshot table {name} is missing (the twin writes it at the "
                "end of a run: did the run finish?)"
            ) from None
        width = len(SNAPSHOT_COLUMNS[name])
        if rows and len(rows[0]) != width:
            raise VerifyError(f"{reader.path}: table {name} does not have {width} columns")
        return rows

    def tenants(self) -> set[str]:
        return set(self.accounts) | set(self.customers) | set(self.shadow) | set(self.heads)


class _Scratch:
    """A private temporary SQLite database holding every command's stretch of events.

    The event log is attached read-only, so the checks that need all
    command ids at once are joins, on disk, not Python sets in memory.
    """

    def __init__(self, log_path: Path) -> None:
        self.db = sqlite3.connect("", uri=True)
        uri = f"{log_path.resolve().as_uri()}?mode=ro"
        self.db.execute("ATTACH DATABASE ? AS log", (uri,))
        self.db.execute(
            "CREATE TABLE stretches "
            "(tenant_id TEXT, causation_id TEXT, first_seq INTEGER, last_seq INTEGER)"
        )
        self.rows: list[tuple[str, str, int, int]] = []

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.db.close()

    def sink(self, tenant_id: str) -> Callable[[str, int, int], None]:
        rows = self.rows

        def add(cid: str, first: int, last: int) -> None:
            rows.append((tenant_id, cid, first, last))
            if len(rows) >= _FLUSH_ROWS:
                self.flush()

        return add

    def flush(self) -> None:
        if self.rows:
            self.db.executemany("INSERT INTO stretches VALUES (?, ?, ?, ?)", self.rows)
            self.rows.clear()

    def index(self) -> None:
        self.flush()
        self.db.execute("CREATE INDEX stretch_command ON stretches (tenant_id, causation_id)")


def _verify(
    reader: EventLogReader,
    scratch: _Scratch,
    fingerprint: dict[str, Any],
    progress: Progress | None,
) -> dict[str, InvariantReport]:
    snapshots = _Snapshots(reader)
    checks = CheckSet()
    tenants = sorted(set(reader.tenants()) | set(fingerprint) | snapshots.tenants())
    for tenant in tenants:
        checker = TenantChecker(tenant, checks, scratch.sink(tenant))
        count = 0
        for stored in reader.events(tenant):
            if stored.corrupt is not None:
                checker.corrupt(stored.seq_hint, stored.corrupt)
                continue
            checker.stored(stored.hash, stored.canonical, stored.seq_hint)
            count += 1
            if progress is not None and count % _PROGRESS_EVERY == 0:
                progress(tenant, count)
        checker.close_stretch()
        checks.audit.examined += count
        seq, head_hash = snapshots.heads.get(tenant, (None, None))
        checker.compare_head(seq, head_hash, f"table {CHAIN_HEADS}")
        checker.compare_head(None, fingerprint.get(tenant), f"{SUMMARY_FILE}'s fingerprint")
        checker.compare_read_model(
            snapshots.accounts.get(tenant, []),
            snapshots.customers.get(tenant, []),
            snapshots.shadow.get(tenant),
        )
        if progress is not None:
            progress(tenant, count)
    scratch.index()
    _check_commands(scratch, checks)
    _check_probes(scratch, checks, snapshots.probes)
    return checks.reports()


def _check_commands(scratch: _Scratch, checks: CheckSet) -> None:
    """No command's events split or duplicated; no rejected command caused events."""
    audit = checks.audit
    db = scratch.db
    split = db.execute(
        "SELECT tenant_id, causation_id, group_concat(first_seq || ':' || last_seq) "
        "FROM stretches GROUP BY tenant_id, causation_id HAVING count(*) > 1 "
        "ORDER BY tenant_id, min(first_seq)"
    )
    for tenant, cid, spans in split:
        stretches = sorted(
            tuple(int(part) for part in span.split(":")) for span in spans.split(",")
        )
        audit.fail(
            {
                "tenant": tenant,
                "seq": stretches[1][0],
                "commandId": cid,
                "actual": [list(stretch) for stretch in stretches[:10]],
                "problem": "the command's events are split or duplicated "
                f"({len(stretches)} separate stretches)",
            },
            float(len(stretches)),
        )
    audit.examined += db.execute("SELECT count(*) FROM log.rejections").fetchone()[0]
    rejected = db.execute(
        "SELECT s.tenant_id, s.causation_id, s.first_seq, s.last_seq, r.rule "
        "FROM log.rejections AS r JOIN stretches AS s "
        "ON s.tenant_id = r.tenant_id AND s.causation_id = r.command_id "
        "ORDER BY s.tenant_id, s.first_seq"
    )
    for tenant, cid, first, last, rule in rejected:
        audit.fail(
            {
                "tenant": tenant,
                "seq": first,
                "commandId": cid,
                "actual": [first, last],
                "problem": f"events caused by a command that was rejected ({rule})",
            }
        )


def _check_probes(scratch: _Scratch, checks: CheckSet, probes: list[tuple[Any, ...]]) -> None:
    """Every stored probe passed, and what it says agrees with the event log."""
    check = checks.idempotency
    db = scratch.db
    db.execute("CREATE TABLE probe_commands (tenant_id TEXT, command_id TEXT)")
    db.executemany("INSERT INTO probe_commands VALUES (?, ?)", [row[:2] for row in probes])
    db.execute("CREATE INDEX probe_command ON probe_commands (tenant_id, command_id)")
    recorded = set(
        db.execute(
            "SELECT DISTINCT r.tenant_id, r.command_id FROM log.rejections AS r "
            "JOIN probe_commands AS p ON p.tenant_id = r.tenant_id AND p.command_id = r.command_id"
        )
    )
    for tenant, cid, key, first_json, replay_json, seq_before, seq_after in probes:
        check.examined += 1
        where: dict[str, Any] = {"tenant": tenant, "commandId": cid, "idempotencyKey": key}
        try:
            first = json.loads(first_json)
            replay = json.loads(replay_json)
        except (TypeError, ValueError):
            check.fail({**where, "problem": "the probe's answers are not JSON"})
            continue
        problems = []
        if replay != first:
            problems.append("the replay's answer differs from the first")
        if seq_before != seq_after:
            problems.append(f"the replay wrote events (head seq {seq_before} -> {seq_after})")
        status = first.get("status") if isinstance(first, dict) else None
        stretches = db.execute(
            "SELECT first_seq, last_seq FROM stretches WHERE tenant_id = ? AND causation_id = ?",
            (tenant, cid),
        ).fetchall()
        if status == "ACCEPTED":
            claimed = (first.get("firstSeq"), first.get("lastSeq"))
            if stretches != [claimed]:
                problems.append(
                    f"the log holds the command's events at {stretches}, not at {list(claimed)}"
                )
        elif status == "REJECTED":
            if stretches:
                problems.append(f"the rejected command has events at {stretches}")
            if (tenant, cid) not in recorded:
                problems.append("the log's rejections do not record the command")
        else:
            problems.append(f"the first answer has no known status ({status!r})")
        if problems:
            check.fail(
                {
                    **where,
                    "first": first,
                    "replay": replay,
                    "seqBefore": seq_before,
                    "seqAfter": seq_after,
                    "problem": "; ".join(problems),
                }
            )
