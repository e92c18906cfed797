"""PostgreSQL store throughput: `PostgresLedger.submit` alone, 2-leg entries in batches.

Creates a scratch database (as the admin DSN's role), migrates it, sets up
one tenant per writer with M member accounts through the ledger itself, then
submits pre-built PostEntry envelopes (card spends and salaries, spread over
30 days, each with an idempotency key: `bench_ledger.entries`) in batches.
Every batch is one transaction as `turingcore_app` under row-level security:
events, outbox row, balances, idempotency answers. Prints entries/s and
postings/s (a posting is one leg) over the submit loop only, the median of
fresh processes, then drops the database. Each process also measures the
embedded ledger alone on the same number of entries right before (the pure
core's speed at that moment: on a shared machine, the ratio of the two says
more than either figure).

    .venv/bin/python benchmarks/bench_pg.py [--entries 100000] [--batch 2000] [--tenants 1]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

With `--tenants N` each tenant has its own thread (and connection), all in
one process: the figure is the total over tenants.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ledger import ACTOR, TIMESTAMP, entries  # noqa: E402
from bench_ledger import measure as measure_embedded  # noqa: E402
from fresh_process import measure_in_fresh_process  # noqa: E402

from turingcore.contract import (  # noqa: E402
    Address,
    CreateCustomer,
    CreateTenant,
    Envelope,
    Interest,
    OpenAccount,
    Person,
    UpsertProduct,
)
from turingcore.pgstore import PostgresLedger, migrate  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _envelope(tenant: str, number: int, command_type: str, payload: object) -> Envelope:
    return Envelope(
        f"{tenant}-cmd-{number}", tenant, command_type, ACTOR, TIMESTAMP, payload, f"k-{number}"
    )


def build(ledger: PostgresLedger, tenant: str, members: int) -> list[str]:
    """A tenant with `members` funded accounts, set up through the ledger; their ids."""
    code = tenant.upper().replace("-", "_")
    ledger.submit(
        tenant,
        [
            _envelope(
                tenant,
                0,
                "CreateTenant",
                CreateTenant(code, "Bench", "AU", "AUD", "Australia/Sydney"),
            ),
            _envelope(
                tenant, 1, "UpsertProduct", UpsertProduct("TXN", "Everyday", "DEPOSIT", Interest())
            ),
        ],
    )
    for start in range(0, members, 2000):
        ledger.submit(
            tenant,
            [
                _envelope(
                    tenant,
                    10 + i,
                    "CreateCustomer",
                    CreateCustomer(
                        Person("A", f"B{i}", _BORN, f"m{i}@example.com", f"+6140{i:07d}"),
                        Address("1 St", "Sub", "NSW", "2000", "AU"),
                    ),
                )
                for i in range(start, min(members, start + 2000))
            ],
        )
    customers = _all(ledger.customers, tenant, "customers", "customerId")
    for start in range(0, len(customers), 2000):
        ledger.submit(
            tenant,
            [
                _envelope(
                    tenant,
                    10**7 + i,
                    "OpenAccount",
                    OpenAccount(cid, "TXN", "AUD", initial_deposit=10**9),
                )
                for i, cid in enumerate(customers[start : start + 2000], start)
            ],
        )
    return _all(ledger.accounts, tenant, "accounts", "accountId")


_BORN = date(1980, 1, 1)


def _all(listing, tenant: str, field: str, key: str) -> list[str]:  # noqa: ANN001
    ids: list[str] = []
    while True:
        page = listing(tenant, limit=1000, offset=len(ids))[field]
        if not page:
            return ids
        ids.extend(row[key] for row in page)


def measure(dsn: str, members: int, count: int, batch: int, tenants: int) -> dict[str, float]:
    """One measurement in this process: entries/s over the submit loops only."""
    with PostgresLedger(dsn, max_size=tenants + 1) as ledger:
        names = [f"bench-{os.getpid()}-{n}" for n in range(tenants)]
        work = {}
        for name in names:
            accounts = build(ledger, name, members)
            commands = entries(accounts, count)
            work[name] = [
                Envelope(
                    c.command_id.replace("cmd-", f"{name}-"),
                    name,
                    c.command_type,
                    c.actor,
                    c.timestamp,
                    c.payload,
                    c.idempotency_key,
                )
                for c in commands
            ]
        seq_before = {name: ledger.head(name)[0] for name in names}
        failures: list[BaseException] = []

        def run(name: str) -> None:
            try:
                commands = work[name]
                for start in range(0, count, batch):
                    results = ledger.submit(name, commands[start : start + batch])
                    assert all(r.accepted for r in results)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(name,)) for name in names]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise failures[0]
        events = sum(ledger.head(name)[0] - seq_before[name] for name in names)
    total = count * tenants
    return {"entries": total / elapsed, "events": events / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=ADMIN_DSN, help="admin DSN (creates/drops a database)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries per tenant")
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        embedded = measure_embedded(None, args.members, args.entries, args.batch)
        result = measure(args.one, args.members, args.entries, args.batch, args.tenants)
        print(json.dumps({**result, "embedded": embedded["entries"]}))
        return
    database = f"bench_pg_{os.getpid()}"
    admin = psycopg.connect(args.dsn, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    target = psycopg.conninfo.make_conninfo(args.dsn, dbname=database)
    try:
        migrate(target)
        print(
            f"{args.entries:,} two-leg entries per tenant, {args.tenants} tenant(s), "
            f"batches of {args.batch:,}, {args.members:,} members, median of {args.repeat}"
        )
        runs = []
        for _ in range(args.repeat):
            options = {
                "entries": args.entries,
                "members": args.members,
                "batch": args.batch,
                "tenants": args.tenants,
            }
            runs.append(measure_in_fresh_process(__file__, target, options))
            run = runs[-1]
            print(
                f"  run: {run['entries']:,.0f} entries/s in {run['seconds']:.1f} s"
                f" (embedded alone just before: {run['embedded']:,.0f} entries/s)"
            )
        entries_rate = statistics.median(r["entries"] for r in runs)
        events_rate = statistics.median(r["events"] for r in runs)
        embedded_rate = statistics.median(r["embedded"] for r in runs)
        print(
            f"PostgresLedger {entries_rate:>10,.0f} entries/s "
            f"{2 * entries_rate:>10,.0f} postings/s {events_rate:>10,.0f} events/s"
        )
        print(
            f"embedded alone {embedded_rate:>10,.0f} entries/s "
            f"{2 * embedded_rate:>10,.0f} postings/s (same processes, same entries)"
        )
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.close()


if __name__ == "__main__":
    main()
