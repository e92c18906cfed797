"""Embedded ledger throughput: the platform alone, one core, 2-leg entries.

Builds a tenant with N member accounts, pre-builds PostEntry envelopes (card
spends and salaries between members and GL clearing accounts) and submits
them in batches, with and without the SQLite event log. Prints entries/s,
postings/s (a posting is one leg) and ledger events/s.

    .venv/bin/python benchmarks/bench_ledger.py [--entries 600000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from fresh_process import measure_in_fresh_process

from turingcore.contract import (
    Actor,
    Address,
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
from turingcore.embedded import EmbeddedPlatform
from turingcore.eventlog import EventLogWriter

ACTOR = Actor("SYSTEM", "bench")
TIMESTAMP = "2025-07-01T09:00:00+10:00"


def _envelope(number: int, command_type: str, payload: object) -> Envelope:
    return Envelope(
        f"cmd-{number}", "bench", command_type, ACTOR, TIMESTAMP, payload, f"k-{number}"
    )


def build(platform: EmbeddedPlatform, members: int) -> list[str]:
    platform.submit(
        "bench",
        [
            _envelope(
                0, "CreateTenant", CreateTenant("BENCH", "Bench", "AU", "AUD", "Australia/Sydney")
            ),
            _envelope(1, "UpsertProduct", UpsertProduct("TXN", "Everyday", "DEPOSIT", Interest())),
        ],
    )
    customers = [
        _envelope(
            10 + i,
            "CreateCustomer",
            CreateCustomer(
                Person("A", f"B{i}", date(1980, 1, 1), f"m{i}@example.com", f"+6140{i:07d}"),
                Address("1 St", "Sub", "NSW", "2000", "AU"),
            ),
        )
        for i in range(members)
    ]
    platform.submit("bench", customers)
    state = platform.tenants["bench"]
    opens = [
        _envelope(10**7 + i, "OpenAccount", OpenAccount(cid, "TXN", "AUD", initial_deposit=10**9))
        for i, cid in enumerate(state.customers)
    ]
    platform.submit("bench", opens)
    return [a.account_id for a in state.accounts.values() if a.kind != "GL"]


def entries(accounts: list[str], count: int, seed: int = 1, days: int = 30) -> list[Envelope]:
    """Card spends and salaries spread evenly over `days` (realistic per-account rates:
    a fixed timestamp would trip the monitor's card-velocity rule on every account)."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, len(accounts), count).tolist()
    amount = rng.integers(100, 20000, count).tolist()
    salary = (rng.random(count) < 0.1).tolist()
    start = datetime(2025, 7, 1, tzinfo=timezone(timedelta(hours=10)))
    tags = {"channel": "CARD"}
    out = []
    for i in range(count):
        account = accounts[who[i]]
        if salary[i]:
            legs = [
                Leg(account, "DEBIT", amount[i]),
                Leg("GL_SALARY_CLEARING", "CREDIT", amount[i]),
            ]
        else:
            legs = [Leg(account, "CREDIT", amount[i]), Leg("GL_CARD_CLEARING", "DEBIT", amount[i])]
        moment = start + timedelta(seconds=i * days * 86400 // count)
        out.append(
            Envelope(
                f"cmd-{10**8 + i}",
                "bench",
                "PostEntry",
                ACTOR,
                moment.isoformat(),
                PostEntry(moment.date(), moment.date(), "AUD", legs, "bench", tags),
                f"k-{10**8 + i}",
            )
        )
    return out


def measure(log: Path | None, members: int, count: int, batch: int) -> dict[str, float]:
    """One measurement in this process: rates over the submit loop only."""
    writer = EventLogWriter(log) if log is not None else None
    platform = EmbeddedPlatform(writer)
    accounts = build(platform, members)
    commands = entries(accounts, count)
    seq_before = platform.tenants["bench"].seq
    started = time.perf_counter()
    for start in range(0, count, batch):
        platform.submit("bench", commands[start : start + batch])
    platform.close()
    elapsed = time.perf_counter() - started
    events = platform.tenants["bench"].seq - seq_before
    return {"entries": count / elapsed, "events": events / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=600_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", choices=["none", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        with tempfile.TemporaryDirectory() as folder:
            log = Path(folder) / "events.sqlite" if args.one == "sqlite" else None
            print(json.dumps(measure(log, args.members, args.entries, args.batch)))
        return
    print(
        f"{args.entries:,} two-leg entries, batches of {args.batch:,}, "
        f"median of {args.repeat} fresh processes"
    )
    for mode, label in (("none", "no event log"), ("sqlite", "SQLite event log")):
        runs = []
        for _ in range(args.repeat):
            options = {"entries": args.entries, "members": args.members, "batch": args.batch}
            runs.append(measure_in_fresh_process(__file__, mode, options))
        entries_rate = statistics.median(r["entries"] for r in runs)
        events_rate = statistics.median(r["events"] for r in runs)
        low = 2 * min(r["entries"] for r in runs)
        high = 2 * max(r["entries"] for r in runs)
        print(
            f"{label:<18} {entries_rate:>10,.0f} entries/s {2 * entries_rate:>10,.0f} postings/s "
            f"{events_rate:>10,.0f} events/s   (postings/s range {low:,.0f}-{high:,.0f})"
        )


if __name__ == "__main__":
    main()
