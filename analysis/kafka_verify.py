"""The five invariants, and the balance rebuild, from the Kafka topics alone.

`twin verify --source kafka://HOST:PORT` and `twin replay-events --source
kafka://HOST:PORT` read each tenant's topic `ledger_events.<tenantId>` from
offset 0 (`assign()`, no consumer group), put it back into its chain
(`turingcore.topics.TopicChain`: duplicates dropped and counted, events
ahead of a gap held until it fills, a same-seq different-hash named by
tenant and seq) and run the very per-tenant checker the live run and
`twin verify RUN_DIR` use (`analysis.invariants.TenantChecker`).

A topic carries events, not command records, read models or the twin's
shadow book, so it decides some invariants fully and others in part.
`TOPIC_SCOPE` says exactly what is checked, and the command prints it:

- event_integrity (full): each chain re-derived from the messages alone
  (canonical bytes, hashes, seq gap-free from genesis) and, with a
  fingerprint, its head compared with the run's.
- tenant_isolation (the stream part): every event on `ledger_events.T`
  names tenant T, and every account and customer it refers to was opened
  or created on T's own topic.
- balance_derivability (the stream part): every AccountBalanceUpdated equals
  the fold of the account's entries, and a tenant's balances sum to zero.
- idempotency (the stream part): no command's events appear twice (a
  re-sent command that wrote again would show its causationId in two
  separate stretches); the re-send probes and their answers are not on
  the topic.
- audit_completeness (the stream part): every event names the command that
  caused it and carries what its type needs; whether that command was
  accepted is in the command records, not on the topic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analysis.invariants import CheckSet, InvariantReport, TenantChecker
from analysis.replay import Replay, replay_events
from turingcore.ledger import topic_for
from turingcore.topics import TopicChain, TopicMissing, TopicReader, chained_events

FULL = "full"
PARTIAL = "partial"

#: invariant -> (how much the topics decide, what exactly is checked)
TOPIC_SCOPE: dict[str, tuple[str, str]] = {
    "balance_derivability": (
        PARTIAL,
        "every AccountBalanceUpdated equals the fold of its account's entries, and each "
        "tenant's balances sum to zero; the read model and the shadow book are not on the "
        "topics (twin verify RUN_DIR compares them)",
    ),
    "event_integrity": (
        FULL,
        "each tenant's chain re-derived from its topic alone: canonical bytes, hashes, seq "
        "gap-free from genesis; copies (same seq, same hash) dropped and counted, the same "
        "seq with another hash reported; heads compared with --fingerprint when given",
    ),
    "tenant_isolation": (
        PARTIAL,
        "every event on ledger_events.T names tenant T, and every account and customer it "
        "refers to was opened or created on T's own topic; API answers are not on the topics",
    ),
    "idempotency": (
        PARTIAL,
        "no command's events appear twice (a re-sent command that wrote again would show "
        "its causationId in two separate stretches); the re-send probes are command records",
    ),
    "audit_completeness": (
        PARTIAL,
        "every event names its causing command (causationId) and carries what its type "
        "needs; whether each command was accepted needs the command records",
    ),
}


@dataclass(frozen=True)
class TopicSummary:
    """What one tenant's topic held."""

    tenant_id: str
    messages: int
    events: int
    duplicates: int
    held_back: int
    head: tuple[int, str]


@dataclass
class TopicsVerification:
    """The verdicts from the topics, in `INVARIANT_NAMES` order, and what each topic held."""

    reports: dict[str, InvariantReport]
    topics: list[TopicSummary] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.reports.values())


class _Stretches:
    """Every command's stretch of events, on disk, to find a command whose events appear
    twice without holding every command id in memory."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # a private temporary database
        self.db.execute("CREATE TABLE stretches (tenant_id TEXT, cid TEXT, first INT, last INT)")
        self.rows: list[tuple[str, str, int, int]] = []

    def sink(self, tenant_id: str) -> Any:  # noqa: ANN401 - a StretchSink
        rows = self.rows

        def add(cid: str, first: int, last: int) -> None:
            rows.append((tenant_id, cid, first, last))
            if len(rows) >= 50_000:
                self.flush()

        return add

    def flush(self) -> None:
        self.db.executemany("INSERT INTO stretches VALUES (?, ?, ?, ?)", self.rows)
        self.rows.clear()

    def repeated(self) -> Iterator[tuple[str, str, list[tuple[int, int]]]]:
        """(tenant, commandId, its stretches) for every command seen in more than one."""
        self.flush()
        self.db.execute("CREATE INDEX by_command ON stretches (tenant_id, cid)")
        query = (
            "SELECT tenant_id, cid, group_concat(first || ':' || last) FROM stretches "
            "GROUP BY tenant_id, cid HAVING count(*) > 1 ORDER BY tenant_id, min(first)"
        )
        for tenant, cid, spans in self.db.execute(query):
            stretches = sorted(
                (int(first), int(last))
                for first, last in (span.split(":") for span in spans.split(","))
            )
            yield tenant, cid, stretches

    def commands(self) -> int:
        self.flush()
        query = "SELECT count(*) FROM (SELECT DISTINCT tenant_id, cid FROM stretches)"
        return int(self.db.execute(query).fetchone()[0])

    def close(self) -> None:
        self.db.close()


def verify_topics(
    bootstrap: str,
    tenants: list[str] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> TopicsVerification:
    """Check the five invariants, as far as the topics decide them (`TOPIC_SCOPE`).

    Args:
        bootstrap: `HOST:PORT[,...]` of the brokers.
        tenants: whose topics (when None: every `ledger_events.*` topic and
            every tenant of `fingerprint`).
        fingerprint: tenant -> expected head hash (a run's summary.json
            fingerprint); each topic's verified head must equal it.
        timeout: seconds to wait for the broker's answers.

    Raises:
        turingcore.topics.BrokerUnreachable: no broker answered.
        turingcore.topics.TopicMissing: a named tenant has no topic, or there
            are no ledger topics at all.
    """
    checks = CheckSet()
    stretches = _Stretches()
    summaries: list[TopicSummary] = []
    with TopicReader(bootstrap, timeout) as reader:
        # a tenant the run's fingerprint names must have its topic too
        names = sorted(tenants or set(reader.tenants()) | set(fingerprint or {}))
        if not names:
            raise TopicMissing(f"kafka://{bootstrap}: there are no {topic_for('*')} topics")
        try:
            for tenant_id in names:
                summaries.append(_verify_one(reader, tenant_id, checks, stretches, fingerprint))
            _check_repeated_commands(stretches, checks)
        finally:
            stretches.close()
    return TopicsVerification(checks.reports(), summaries)


def _verify_one(
    reader: TopicReader,
    tenant_id: str,
    checks: CheckSet,
    stretches: _Stretches,
    fingerprint: Mapping[str, Any] | None,
) -> TopicSummary:
    checker = TenantChecker(tenant_id, checks, stretches.sink(tenant_id))
    chain = TopicChain(tenant_id)
    events = 0
    for event in chained_events(reader, tenant_id, chain):
        checker.stored(event.claimed, event.canonical, event.body["seq"])
        events += 1
    checker.close_stretch()
    checks.audit.examined += events
    for problem in chain.problems:
        checks.integrity.fail({"tenant": tenant_id, "seq": problem.seq, "problem": problem.problem})
    if fingerprint is not None:
        checker.compare_head(None, fingerprint.get(tenant_id), "the run's fingerprint")
    total = sum(checker.fold.values()) + sum(checker.foreign.values())
    checks.balance.examined += 1
    if total != 0:
        checks.balance.fail(
            {
                "tenant": tenant_id,
                "expected": 0,
                "actual": total,
                "problem": "the tenant's folded balances do not sum to zero",
            },
            abs(total),
        )
    return TopicSummary(
        tenant_id, chain.messages, events, chain.duplicates, chain.held_back, checker.head
    )


def _check_repeated_commands(stretches: _Stretches, checks: CheckSet) -> None:
    check = checks.idempotency
    check.examined += stretches.commands()
    for tenant, cid, spans in stretches.repeated():
        check.fail(
            {
                "tenant": tenant,
                "seq": spans[1][0],
                "commandId": cid,
                "actual": [list(span) for span in spans[:10]],
                "problem": f"the command's events appear {len(spans)} times, apart "
                "(a re-sent command that wrote again)",
            },
            float(len(spans)),
        )


def replay_topic(
    bootstrap: str,
    tenant_id: str,
    from_timestamp: datetime | None = None,
    to_timestamp: datetime | None = None,
    timeout: float = 10.0,
) -> Replay:
    """Rebuild a tenant's balances from its topic alone (`analysis.replay` over Kafka).

    Raises:
        turingcore.topics.BrokerUnreachable, turingcore.topics.TopicMissing.
        analysis.replay.ReplayError: an event on the topic cannot be folded.
    """
    chain = TopicChain(tenant_id)
    with TopicReader(bootstrap, timeout) as reader:
        events = (
            (event.canonical, event.claimed) for event in chained_events(reader, tenant_id, chain)
        )
        replay = replay_events(
            tenant_id,
            events,
            f"kafka://{bootstrap} topic {topic_for(tenant_id)}",
            from_timestamp,
            to_timestamp,
        )
        events.close()
    problems = [
        f"tenant {problem.tenant_id} seq {problem.seq}: {problem.problem}"
        for problem in chain.problems
    ]
    return Replay(
        replay.tenant_id,
        replay.events_applied,
        replay.last_seq,
        replay.head_hash,
        replay.accounts,
        (*problems, *replay.problems),
    )
