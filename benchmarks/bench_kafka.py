"""Kafka path throughput: outbox -> relay -> Tansu, and reading a topic back with verification.

Seals ~N events of one tenant on an EmbeddedPlatform into a MemoryOutbox
(two-leg entries from bench_ledger), starts a local Tansu broker (in memory,
or on S3-on-moto storage), and measures in a fresh process per run:

- relay: events/s from the outbox to acknowledged and marked sent
  (`OutboxRelay.run_until_idle`, idempotent producer, acks=all);
- read: events/s reading the topic from offset 0 with assign() (no checks);
- read+verify: events/s for `verify_topic` (re-order/dedupe, re-derive the
  canonical bytes from each JSON message, re-hash the chain).

    .venv/bin/python benchmarks/bench_kafka.py [--events 100000] [--storage memory s3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench_ledger import build, entries
from fresh_process import measure_in_fresh_process

from turingcore.broker import MotoServer, TansuBroker
from turingcore.embedded import EmbeddedPlatform
from turingcore.relay import MemoryOutbox, OutboxRelay
from turingcore.topics import TopicReader, verify_topic


def measure(storage: str, events: int, batch_size: int) -> dict[str, float]:
    """One measurement in this process."""
    outbox = MemoryOutbox()
    platform = EmbeddedPlatform(outbox)
    accounts = build(platform, 2_000)
    commands = entries(accounts, events // 3)
    for start in range(0, len(commands), 2_000):
        platform.submit("bench", commands[start : start + 2_000])
    sealed = outbox.head("bench")[0]
    with tempfile.TemporaryDirectory() as folder:
        moto = None
        if storage == "s3":
            moto = MotoServer(log_path=Path(folder) / "moto.log")
            moto.start()
            broker = TansuBroker.on_s3(moto, "bench", log_path=Path(folder) / "tansu.log")
        else:
            broker = TansuBroker(log_path=Path(folder) / "tansu.log")
        broker.start()
        try:
            relay = OutboxRelay(outbox, broker.bootstrap, batch_size=batch_size)
            started = time.perf_counter()
            relayed = relay.run_until_idle(timeout=600)
            relay_s = time.perf_counter() - started
            relay.close()
            if relayed != sealed or outbox.tenants_with_unsent():
                raise RuntimeError(f"relayed {relayed} of {sealed} events")
            with TopicReader(broker.bootstrap) as reader:
                started = time.perf_counter()
                read = sum(1 for _ in reader.messages("bench"))
                read_s = time.perf_counter() - started
            started = time.perf_counter()
            verdict = verify_topic(broker.bootstrap, "bench")
            verify_s = time.perf_counter() - started
            if read != sealed or not verdict.verified or verdict.head != outbox.head("bench"):
                raise RuntimeError(f"read {read} of {sealed}; verdict {verdict.to_dict()}")
        finally:
            broker.stop()
            if moto is not None:
                moto.stop()
    return {
        "events": sealed,
        "relay": sealed / relay_s,
        "read": sealed / read_s,
        "verify": sealed / verify_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--storage", nargs="+", choices=["memory", "s3"], default=["memory", "s3"])
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", choices=["memory", "s3"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.events, args.batch_size)))
        return
    print(
        f"~{args.events:,} events of one tenant, relay batches of {args.batch_size:,}, "
        f"median of {args.repeat} fresh processes"
    )
    for storage in args.storage:
        runs = []
        for _ in range(args.repeat):
            options = {"events": args.events, "batch_size": args.batch_size}
            runs.append(measure_in_fresh_process(__file__, storage, options))
        label = "Tansu, memory" if storage == "memory" else "Tansu, S3 on moto"
        figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"{label:<18} {figures['events']:>9,.0f} events: relay {figures['relay']:>9,.0f}/s "
            f"read {figures['read']:>9,.0f}/s  read+verify {figures['verify']:>9,.0f}/s"
        )


if __name__ == "__main__":
    main()
