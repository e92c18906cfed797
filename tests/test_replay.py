"""Replaying a tenant's stored events: `analysis.replay` and `twin replay-events`.

The replay must rebuild exactly the balances the run's read model and the
twin's shadow book ended with; with a time window it must apply only events
up to its end and report changes since its start, which is checked here
against an independent fold of the stored balance updates.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analysis.replay import ReplayError, parse_timestamp, replay_tenant
from sim.cli import app
from turingcore.eventlog import EventLogReader
from turingcore.money import cents_text

runner = CliRunner()
FROM = "2025-07-02T12:00:00+10:00"
TO = "2025-07-04T09:30:00+10:00"


def snapshot(run_dir: Path, name: str, tenant: str) -> list[tuple[Any, ...]]:
    """One tenant's rows of a snapshot table, without the tenant column."""
    with EventLogReader(run_dir / "events.sqlite") as reader:
        return [row[1:] for row in reader.table(name) if row[0] == tenant]


def manual_fold(
    events: list[dict[str, Any]], start: datetime | None, end: datetime | None
) -> tuple[dict[str, tuple[int, int]], int]:
    """accountId -> (balance before `start`, balance at `end`), from balance deltas alone.

    Accounts are those created (by TenantCreated's GL list or AccountOpened)
    no later than `end`; also returns how many events fall within `end`.
    """
    before: dict[str, int] = defaultdict(int)
    after: dict[str, int] = defaultdict(int)
    accounts: list[str] = []
    applied = 0
    for event in events:
        moment = datetime.fromisoformat(event["occurredAt"])
        if end is not None and moment > end:
            continue
        applied += 1
        payload = event["payload"]
        if event["eventType"] == "TenantCreated":
            accounts.extend(payload["glAccounts"])
        elif event["eventType"] == "AccountOpened":
            accounts.append(payload["accountId"])
        elif event["eventType"] == "AccountBalanceUpdated":
            after[payload["accountId"]] += payload["deltaCents"]
            if start is None or moment < start:
                before[payload["accountId"]] += payload["deltaCents"]
    if start is None:
        before = defaultdict(int)
    return {account: (before[account], after[account]) for account in accounts}, applied


def test_full_replay_equals_the_read_model_snapshot(small_run) -> None:
    """Every member account's replayed balance and owner equal the read_model_accounts table."""
    for tenant in ("cu-a", "cu-b"):
        replay = replay_tenant(small_run.dir, tenant)
        replayed = {
            account.account_id: (account.customer_id, account.balance_at_end)
            for account in replay.accounts
            if account.customer_id is not None
        }
        stored = {
            row[0]: (row[1], row[2])
            for row in snapshot(small_run.dir, "read_model_accounts", tenant)
        }
        assert len(stored) > 50
        assert replayed == stored


def test_full_replay_equals_the_shadow_book(small_run) -> None:
    """Replayed balances of every account, GL included, equal the twin's shadow book."""
    for tenant in ("cu-a", "cu-b"):
        replay = replay_tenant(small_run.dir, tenant)
        replayed = {a.account_id: a.balance_at_end for a in replay.accounts if a.balance_at_end}
        shadow = {row[0]: row[1] for row in snapshot(small_run.dir, "shadow_accounts", tenant)}
        assert {account: cents for account, cents in shadow.items() if cents} == replayed
        assert sum(replayed.values()) == 0
        assert any(account.startswith("GL_") for account in replayed)


def test_full_replay_reaches_the_fingerprint(small_run) -> None:
    """All events are applied; the head seq and hash are the run's."""
    for tenant in ("cu-a", "cu-b"):
        replay = replay_tenant(small_run.dir, tenant)
        assert replay.tenant_id == tenant
        assert replay.events_applied == small_run.summary["tenants"][tenant]["head_seq"]
        assert replay.last_seq == replay.events_applied
        assert replay.head_hash == small_run.summary["fingerprint"][tenant]
        assert all(account.balance_at_start == 0 for account in replay.accounts)


def test_stored_events_are_in_time_order(small_events) -> None:
    """occurredAt never goes backwards along a chain (the windowed replay stops at `to`)."""
    for tenant, events in small_events.items():
        moments = [datetime.fromisoformat(event["occurredAt"]) for event in events]
        assert moments == sorted(moments), tenant


@pytest.mark.parametrize("tenant", ["cu-a", "cu-b"])
def test_windowed_replay_matches_a_manual_fold(small_run, small_events, tenant) -> None:
    """With from/to: events up to `to` applied, balances at `from` and `to` as folded by hand."""
    start, end = datetime.fromisoformat(FROM), datetime.fromisoformat(TO)
    replay = replay_tenant(small_run.dir, tenant, start, end)
    expected, applied = manual_fold(small_events[tenant], start, end)
    got = {a.account_id: (a.balance_at_start, a.balance_at_end) for a in replay.accounts}
    assert got == expected
    assert replay.events_applied == applied
    assert 0 < applied < len(small_events[tenant])
    assert replay.last_seq == applied
    changed = [a for a in replay.accounts if a.change]
    assert changed, "nothing happened in a window of almost two days"
    assert all(a.change == a.balance_at_end - a.balance_at_start for a in replay.accounts)


def test_replay_to_alone_starts_from_genesis(small_run, small_events) -> None:
    """Only `to`: balances at `to`, every start balance zero."""
    end = datetime.fromisoformat(TO)
    replay = replay_tenant(small_run.dir, "cu-a", None, end)
    expected, _applied = manual_fold(small_events["cu-a"], None, end)
    assert {a.account_id: (a.balance_at_start, a.balance_at_end) for a in replay.accounts} == (
        expected
    )


def test_parse_timestamp_needs_an_offset() -> None:
    """Timestamps must be ISO 8601 with an offset; errors name the option."""
    assert parse_timestamp(None, "--to-timestamp") is None
    assert parse_timestamp(FROM, "--from-timestamp") == datetime.fromisoformat(FROM)
    with pytest.raises(ReplayError, match="--to-timestamp: '2025-07-03' needs a UTC offset"):
        parse_timestamp("2025-07-03", "--to-timestamp")
    with pytest.raises(ReplayError, match="--from-timestamp: 'soon' is not an ISO 8601"):
        parse_timestamp("soon", "--from-timestamp")


def test_replay_of_unknown_tenant_or_folder_raises(small_run, tmp_path) -> None:
    """Unknown tenant, missing folder, folder without a log: ReplayError naming what is wrong."""
    with pytest.raises(ReplayError, match=r"tenant 'cu-zz' is not in .*\(tenants: cu-a, cu-b\)"):
        replay_tenant(small_run.dir, "cu-zz")
    with pytest.raises(ReplayError, match="no such run folder"):
        replay_tenant(tmp_path / "missing", "cu-a")
    with pytest.raises(ReplayError, match="events.sqlite"):
        replay_tenant(tmp_path, "cu-a")


# --------------------------------------------------------------------------- the CLI


def test_cli_replay_prints_head_and_deposits(small_run) -> None:
    """`twin replay-events RUN --tenant-id cu-b`: events applied, head, member deposits."""
    result = runner.invoke(app, ["replay-events", str(small_run.dir), "--tenant-id", "cu-b"])
    assert result.exit_code == 0, result.output
    head_seq = small_run.summary["tenants"]["cu-b"]["head_seq"]
    head = small_run.summary["fingerprint"]["cu-b"]
    rows = snapshot(small_run.dir, "read_model_accounts", "cu-b")
    deposits = cents_text(sum(row[2] for row in rows))
    lines = result.stdout.splitlines()
    assert lines[0] == f"cu-b: {head_seq:,} events applied, head seq {head_seq}, hash {head}"
    assert lines[1] == (
        f"member accounts {len(rows):,}; deposits at end {deposits} AUD; "
        f"change in window {deposits} AUD"
    )


def test_cli_replay_window_writes_csv(small_run, small_events, tmp_path) -> None:
    """--from/--to with --csv: one row per account with start and end cents as folded by hand."""
    out = tmp_path / "balances.csv"
    result = runner.invoke(
        app,
        [
            "replay-events",
            str(small_run.dir),
            "--tenant-id",
            "cu-a",
            "--from-timestamp",
            FROM,
            "--to-timestamp",
            TO,
            "--csv",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"balances written to {out}" in result.stdout
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "account_id",
        "customer_id",
        "product_code",
        "start_cents",
        "end_cents",
    ]
    expected, applied = manual_fold(
        small_events["cu-a"], datetime.fromisoformat(FROM), datetime.fromisoformat(TO)
    )
    got = {row["account_id"]: (int(row["start_cents"]), int(row["end_cents"])) for row in rows}
    assert got == expected
    members = [row for row in rows if row["customer_id"]]
    change = sum(int(row["end_cents"]) - int(row["start_cents"]) for row in members)
    assert f"change in window {cents_text(change)} AUD" in result.stdout
    assert result.stdout.startswith(f"cu-a: {applied:,} events applied, head seq {applied},")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tenant-id", "cu-zz"], "tenant 'cu-zz' is not in"),
        (["--tenant-id", "cu-a", "--to-timestamp", "2025-07-03"], "needs a UTC offset"),
        (["--tenant-id", "cu-a", "--from-timestamp", "tuesday"], "is not an ISO 8601 timestamp"),
        (
            ["--tenant-id", "cu-a", "--from-timestamp", TO, "--to-timestamp", FROM],
            "--from-timestamp is after --to-timestamp",
        ),
    ],
)
def test_cli_replay_bad_input_exits_2(small_run, options, message) -> None:
    """Unknown tenant, bad or inverted timestamps: exit 2 with a message saying which."""
    result = runner.invoke(app, ["replay-events", str(small_run.dir), *options])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("twin: error: ")
    assert message in result.stderr


def test_cli_replay_csv_into_a_missing_folder_exits_2(small_run, tmp_path) -> None:
    """--csv naming a file in a folder that does not exist: exit 2 naming it, no traceback."""
    target = tmp_path / "no-such-folder" / "balances.csv"
    result = runner.invoke(
        app, ["replay-events", str(small_run.dir), "--tenant-id", "cu-a", "--csv", str(target)]
    )
    assert result.exit_code == 2, repr(result.exception)
    assert result.stderr.startswith("twin: error: ")
    assert str(target) in result.stderr


def test_cli_replay_of_a_missing_run_exits_2(tmp_path) -> None:
    """A run folder that does not exist: exit 2 naming it."""
    missing = tmp_path / "gone"
    result = runner.invoke(app, ["replay-events", str(missing), "--tenant-id", "cu-a"])
    assert result.exit_code == 2
    assert f"{missing}: no such run folder" in result.stderr
