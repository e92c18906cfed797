"""The service over HTTP: batched postings per second, and unbatched command latency.

Starts `turingcore serve --store STORE` in its own process on a free loopback
port (the client runs in this process, as the twin would), sets up a fresh
tenant with N member accounts over the API, and measures:

- `batch`: two-leg PostEntry commands (card spends and salaries, built like
  benchmarks/bench_ledger.py) sent as batches of `--batch` through
  `POST /v1/tenants/{id}/commands/batch`; postings/s = 2 x entries / wall time.
  Bodies are encoded before the clock starts: the figure is the service's.
- `latency`: `--commands` single commands through `POST .../commands`, one
  at a time per client (`--clients` in parallel); p50/p95/p99 per request.
- `decode`: the per-command cost of `decode_envelope` (fast path) and of the
  reference decoder, in this process, on the same bodies.

    .venv/bin/python benchmarks/bench_http.py [--store memory|postgresql://...]
        [--mode all|batch|latency|decode] [--entries 100000] [--batch 2000]
        [--commands 2000] [--clients 1] [--repeat 3]

Targets for the PostgreSQL store (issue 4): >= 10,000 postings/s batched;
p95 < 100 ms and p99 < 500 ms unbatched.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ledger import entries  # noqa: E402

from turingcore.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER, SECRET_ENV, issue_token  # noqa: E402
from turingcore.contract import (  # noqa: E402
    Actor,
    Address,
    CreateCustomer,
    CreateTenant,
    Envelope,
    Interest,
    OpenAccount,
    Person,
    UpsertProduct,
    decode_envelope,
    decode_envelope_reference,
    encode_envelope,
)

ACTOR = Actor("SYSTEM", "bench-http")
TIMESTAMP = "2025-07-01T09:00:00+10:00"
_BORN = date(1980, 1, 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def service(store: str) -> Iterator[tuple[str, bytes]]:
    """`turingcore serve` in a child process; yields (base URL, JWT secret)."""
    secret = secrets.token_hex(32).encode()
    port = free_port()
    exe = Path(sys.executable).with_name("turingcore")
    env = {**os.environ, SECRET_ENV: secret.decode()}
    command = [str(exe), "serve", "--store", store, "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"turingcore serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("turingcore serve did not become ready in 60 s")
            time.sleep(0.1)
        yield url, secret
    finally:
        process.terminate()
        process.wait(timeout=30)


class Tenant:
    """A fresh tenant on the service, with its token and member accounts."""

    def __init__(self, http: httpx.Client, secret: bytes, members: int) -> None:
        self.id = f"bench-{secrets.token_hex(4)}"
        self.http = http
        token = issue_token(
            self.id, secret, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE, ttl_seconds=7200
        )
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.path = f"/v1/tenants/{self.id}"
        self.count = 0
        code = f"B_{self.id[6:].upper()}"
        self.submit(
            [
                self.envelope(
                    "CreateTenant", CreateTenant(code, "Bench", "AU", "AUD", "Australia/Sydney")
                ),
                self.envelope(
                    "UpsertProduct", UpsertProduct("TXN", "Everyday", "DEPOSIT", Interest())
                ),
            ]
        )
        people = [
            self.envelope(
                "CreateCustomer",
                CreateCustomer(
                    Person("A", f"B{i}", _BORN, f"m{i}@{self.id}.example", f"+6140{i:07d}"),
                    Address("1 St", "Sub", "NSW", "2000", "AU"),
                ),
            )
            for i in range(members)
        ]
        self.submit(people)
        customers = self.page("customers")
        self.submit(
            [
                self.envelope(
                    "OpenAccount", OpenAccount(c["customerId"], "TXN", "AUD", initial_deposit=10**9)
                )
                for c in customers
            ]
        )
        self.accounts = [a["accountId"] for a in self.page("accounts")]

    def envelope(self, command_type: str, payload: object) -> Envelope:
        self.count += 1
        return Envelope(f"setup-{self.count}", self.id, command_type, ACTOR, TIMESTAMP, payload)

    def submit(self, commands: list[Envelope]) -> None:
        for start in range(0, len(commands), 2000):
            answer = self.http.post(
                f"{self.path}/commands/batch",
                content=batch_body(commands[start : start + 2000]),
                headers=self.headers,
            )
            answer.raise_for_status()
            refused = [r for r in answer.json()["results"] if r["status"] != 202]
            if refused:
                raise SystemExit(f"set-up command refused: {refused[0]}")

    def page(self, what: str) -> list[dict]:
        rows: list[dict] = []
        while True:
            answer = self.http.get(
                f"{self.path}/{what}",
                params={"limit": 1000, "offset": len(rows)},
                headers=self.headers,
            )
            answer.raise_for_status()
            got = answer.json()[what]
            rows.extend(got)
            if len(got) < 1000:
                return rows


def batch_body(commands: list[Envelope]) -> bytes:
    return b'{"commands":[' + b",".join(encode_envelope(c) for c in commands) + b"]}"


def entry_bodies(tenant: Tenant, count: int, seed: int) -> list[Envelope]:
    """Two-leg PostEntry envelopes for the tenant's accounts (bench_ledger's mix)."""
    out = entries(tenant.accounts, count, seed=seed)
    for envelope in out:
        envelope.tenant_id = tenant.id
    return out


def measure_batch(url: str, secret: bytes, args: argparse.Namespace, seed: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=300) as http:
        tenant = Tenant(http, secret, args.members)
        commands = entry_bodies(tenant, args.entries, seed)
        bodies = [
            batch_body(commands[i : i + args.batch]) for i in range(0, len(commands), args.batch)
        ]
        refused = 0
        lock = threading.Lock()
        queue = iter(bodies)

        def client() -> None:
            nonlocal refused
            with httpx.Client(base_url=url, timeout=300) as own:
                while True:
                    with lock:
                        body = next(queue, None)
                    if body is None:
                        return
                    answer = own.post(
                        f"{tenant.path}/commands/batch", content=body, headers=tenant.headers
                    )
                    answer.raise_for_status()
                    bad = sum(1 for r in answer.json()["results"] if r["status"] != 202)
                    with lock:
                        refused += bad

        route = "/v1/tenants/{tenantId}/commands/batch"
        spent_before, _ = server_seconds(url, route)
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        spent, _ = server_seconds(url, route)
    return {
        "server_seconds": spent - spent_before,
        "entries_per_s": args.entries / elapsed,
        "postings_per_s": 2 * args.entries / elapsed,
        "refused": refused,
        "seconds": elapsed,
    }


def measure_latency(
    url: str, secret: bytes, args: argparse.Namespace, seed: int
) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=60) as http:
        tenant = Tenant(http, secret, args.members)
        bodies = [encode_envelope(e) for e in entry_bodies(tenant, args.commands, seed)]
        latencies: list[float] = []
        lock = threading.Lock()
        queue = iter(bodies)

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                mine: list[float] = []
                while True:
                    with lock:
                        body = next(queue, None)
                    if body is None:
                        break
                    sent = time.perf_counter()
                    answer = own.post(
                        f"{tenant.path}/commands", content=body, headers=tenant.headers
                    )
                    mine.append(time.perf_counter() - sent)
                    if answer.status_code != 202:
                        raise SystemExit(f"command refused: {answer.status_code} {answer.text}")
                with lock:
                    latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": 1000 * cuts[49],
        "p95_ms": 1000 * cuts[94],
        "p99_ms": 1000 * cuts[98],
        "max_ms": 1000 * max(latencies),
        "commands_per_s": len(latencies) / elapsed,
    }


def server_seconds(url: str, route: str) -> tuple[float, int]:
    """(total seconds, requests) the service itself spent on `route` (its latency histogram)."""
    text = httpx.get(f"{url}/metrics").text
    total, count = 0.0, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") != route or sample.labels.get("method") != "POST":
                continue
            if sample.name == "turingcore_http_request_duration_seconds_sum":
                total = sample.value
            elif sample.name == "turingcore_http_request_duration_seconds_count":
                count = int(sample.value)
    return total, count


def measure_decode(count: int) -> dict[str, float]:
    accounts = [f"0b04ff32-9c71-46e1-a000-{i:012x}" for i in range(1000)]
    bodies = [encode_envelope(e) for e in entries(accounts, count)]
    out = {}
    for label, decode in (
        ("fast_us", decode_envelope),
        ("reference_us", decode_envelope_reference),
    ):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for body in bodies:
                decode(body)
            best = min(best, (time.perf_counter() - started) / count * 1e6)
        out[label] = best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="memory", help="memory, or a postgresql:// URL")
    parser.add_argument("--mode", choices=["all", "batch", "latency", "decode"], default="all")
    parser.add_argument("--entries", type=int, default=100_000, help="entries per batch run")
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--commands", type=int, default=2_000, help="unbatched commands per run")
    parser.add_argument("--clients", type=int, default=1, help="concurrent HTTP clients")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    store_label = args.store.split("@")[-1] if "://" in args.store else args.store
    print(f"store {store_label}, {args.clients} client(s), median of {args.repeat}")
    if args.mode in ("all", "decode"):
        decode = measure_decode(20_000)
        print(
            f"decode_envelope       {decode['fast_us']:8.1f} us/command "
            f"(reference decoder {decode['reference_us']:.1f} us)"
        )
    if args.mode == "decode":
        return
    with service(args.store) as (url, secret):
        if args.mode in ("all", "batch"):
            runs = [measure_batch(url, secret, args, seed) for seed in range(1, args.repeat + 1)]
            share = statistics.median(r["server_seconds"] / r["seconds"] for r in runs)
            rate = statistics.median(r["postings_per_s"] for r in runs)
            entries_rate = statistics.median(r["entries_per_s"] for r in runs)
            refused = sum(r["refused"] for r in runs)
            print(
                f"batched ({args.batch:,}/batch)  {rate:>10,.0f} postings/s "
                f"({entries_rate:,.0f} entries/s, {args.entries:,} entries a run, "
                f"{refused} refused)"
            )
            print(
                f"  the service's own time (its latency histogram) is {share:.0%} of the wall time"
            )
        if args.mode in ("all", "latency"):
            runs = [measure_latency(url, secret, args, seed) for seed in range(1, args.repeat + 1)]
            keys = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "commands_per_s")
            median = {key: statistics.median(r[key] for r in runs) for key in keys}
            print(
                f"unbatched  p50 {median['p50_ms']:.1f} ms  p95 {median['p95_ms']:.1f} ms"
                f"  p99 {median['p99_ms']:.1f} ms  max {median['max_ms']:.1f} ms "
                f"({median['commands_per_s']:,.0f} commands/s, {args.commands:,} a run)"
            )


if __name__ == "__main__":
    main()
