"""The PostgreSQL store (`turingcore.pgstore`) against a real server.

Four kinds of test: the row-level security attack matrix, run as the
service's own role on a raw connection (what someone holding its login, or
an injected query, could do); the catalogue check, on the migrated schema
and on deliberately broken scratch schemas and roles; parity with the
embedded platform (the same commands give the same answers and the same
bytes, also when another process wrote in between); and concurrency (threads,
separate caches, separate processes; tenants never wait for each other).
Plus migrations, the `turingcore db` commands and the relay's outbox.

Every test names its tenants afresh (`new_tenant`): the database is shared
by the whole session and tenant codes are unique on the platform.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from pg_fixtures import (
    ADMIN_DSN,
    PgDatabase,
    admin_connection,
    create_database,
    drop_database,
    dsn_of,
)
from platform_builders import DAY, Commands, Recorder, stamp
from psycopg import sql
from typer.testing import CliRunner

from turingcore import pgstore
from turingcore.cli import app as turingcore_app
from turingcore.contract import CommandResult, Constraints, Envelope, Interest, Leg, PostEntry
from turingcore.domain import RULES
from turingcore.embedded import EmbeddedPlatform
from turingcore.events import GENESIS_HASH, verify_chain
from turingcore.ledger import NotFound
from turingcore.monitor import MonitorConfig
from turingcore.pgstore import (
    APP_ROLE,
    RELAY_ROLE,
    TENANT_TABLES,
    ChainMismatch,
    PostgresLedger,
    PostgresOutbox,
    StoreError,
    UnsafeDatabase,
    catalogue_problems,
    migrate,
)

RLS_REFUSED = psycopg.errors.InsufficientPrivilege
ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def rows_of(db: PgDatabase, tenant: str) -> dict[str, int]:
    """How many rows `tenant` has in every tenant table (as the admin, who sees all)."""
    with db.admin() as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM turingcore.{} WHERE tenant_id = %s").format(
                    sql.Identifier(table)
                ),
                (tenant,),
            ).fetchone()[0]
            for table in TENANT_TABLES
        }


def bank(
    ledger: Any, tenant: str, code: str, customers: int = 2, deposit: int = 50_000
) -> tuple[Commands, list[str], list[str]]:
    """A tenant with a SAVER product, customers and a funded account each, via `ledger`."""
    cmd = Commands(tenant)
    results = ledger.submit(tenant, [cmd.create_tenant(code), cmd.product("SAVER")])
    results += ledger.submit(tenant, [cmd.customer(i) for i in range(customers)])
    assert all(r.accepted for r in results), results
    ids = [row["customerId"] for row in ledger.customers(tenant)["customers"]]
    opened = ledger.submit(tenant, [cmd.open_account(c, "SAVER", deposit) for c in ids])
    assert all(r.accepted for r in opened), opened
    accounts = [row["accountId"] for row in ledger.accounts(tenant)["accounts"]]
    return cmd, ids, accounts


def salary(cmd: Commands, account: str, cents: int, **kw: Any) -> Envelope:
    return cmd.post([(account, "DEBIT", cents), ("GL_SALARY_CLEARING", "CREDIT", cents)], **kw)


def tagged(
    cmd: Commands, legs: list[tuple[str, str, int]], tags: dict[str, str], at: str, **kw: Any
) -> Envelope:
    """A PostEntry with tags (what the transaction monitor reads) at time `at`."""
    day = date.fromisoformat(at[:10])
    payload = PostEntry(day, day, "AUD", [Leg(*leg) for leg in legs], "tagged", tags)
    return cmd.envelope("PostEntry", payload, timestamp=at, **kw)


def verified(ledger: PostgresLedger, tenant: str) -> list[bytes]:
    """Every stored event of `tenant`; the chain must verify from genesis to the head."""
    events: list[bytes] = []
    while True:
        page = ledger.tenant_events(tenant, after_seq=len(events), limit=10_000)
        if not page:
            break
        events.extend(page)
    assert list(verify_chain(tenant, events)) == []
    seq, head = ledger.head(tenant)
    assert seq == len(events)
    assert head == (msgspec.json.decode(events[-1])["hash"] if events else GENESIS_HASH)
    return events


# --------------------------------------------------------------------------- migrations, CLI

runner = CliRunner()


def test_migrate_is_idempotent_and_records_each_migration(pg_database: PgDatabase) -> None:
    """A second migrate applies nothing; schema_migrations holds each shipped file once."""
    assert migrate(pg_database.dsn) == []
    with pg_database.admin() as conn:
        stored = conn.execute(
            "SELECT version, name, checksum FROM turingcore.schema_migrations ORDER BY version"
        ).fetchall()
    assert stored == [(m.version, m.name, m.checksum) for m in pgstore.migrations()]
    assert stored[0][1] == "0001_ledger"


def test_migrate_refuses_a_migration_edited_after_it_was_applied(pg_database: PgDatabase) -> None:
    """A stored checksum that differs from the file stops migrate with a message naming it."""
    with pg_database.admin() as conn:
        (checksum,) = conn.execute(
            "SELECT checksum FROM turingcore.schema_migrations WHERE version = 1"
        ).fetchone()
        conn.execute("UPDATE turingcore.schema_migrations SET checksum = 'x' WHERE version = 1")
        try:
            with pytest.raises(StoreError, match="0001_ledger.*never edited"):
                migrate(pg_database.dsn)
        finally:
            conn.execute(
                "UPDATE turingcore.schema_migrations SET checksum = %s WHERE version = 1",
                (checksum,),
            )


def test_migrations_of_two_databases_at_once_both_succeed() -> None:
    """Two fresh databases migrated in parallel threads both end up clean."""
    admin = admin_connection()
    names = [create_database(admin, "tc_pair"), create_database(admin, "tc_pair")]
    try:
        errors: list[BaseException] = []

        def run(name: str) -> None:
            try:
                migrate(dsn_of(name))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(name,)) for name in names * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        for name in names:
            with psycopg.connect(dsn_of(name), autocommit=True) as conn:
                assert catalogue_problems(conn) == []
    finally:
        for name in names:
            drop_database(admin, name)
        admin.close()


def test_role_creation_racing_another_session_is_caught() -> None:
    """roles.sql waiting on another session's uncommitted CREATE ROLE succeeds after it commits.

    Run with scratch role names: session one creates them and holds its
    transaction open; session two, in a thread, must block on them (seen in
    pg_stat_activity) and, once one commits, finish without an error.
    """
    tag = secrets.token_hex(3)
    script = pgstore._roles_sql().replace("turingcore_", f"tcrace{tag}_")
    names = [f"tcrace{tag}_{suffix}" for suffix in ("owner", "app", "relay")]
    admin = admin_connection()
    first = psycopg.connect(ADMIN_DSN)
    second = psycopg.connect(ADMIN_DSN)
    errors: list[BaseException] = []
    try:
        first.execute(script)  # uncommitted

        def race() -> None:
            try:
                second.execute(script)
                second.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=race)
        thread.start()
        pid = second.info.backend_pid
        wait_until(
            lambda: admin.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()[0],
            "the second session to wait for the first one's roles",
        )
        first.commit()
        thread.join(30)
        assert not thread.is_alive()
        assert errors == []
        found = admin.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles"
            " WHERE rolname = ANY(%s) ORDER BY rolname",
            (names,),
        ).fetchall()
        assert found == [
            (f"tcrace{tag}_app", True, False, False),
            (f"tcrace{tag}_owner", False, False, False),
            (f"tcrace{tag}_relay", True, False, False),
        ]
    finally:
        first.close()
        second.close()
        for name in names:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


def test_migrate_makes_a_role_found_with_dangerous_attributes_safe_again() -> None:
    """A service role someone made BYPASSRLS, or a member of the owner, is repaired by roles.sql."""
    tag = secrets.token_hex(3)
    script = pgstore._roles_sql().replace("turingcore_", f"tcfix{tag}_")
    app, owner = f"tcfix{tag}_app", f"tcfix{tag}_owner"
    admin = admin_connection()
    try:
        admin.execute(script)
        admin.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(app)))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(app)))
        admin.execute(script)
        assert admin.execute(
            "SELECT rolbypassrls, pg_has_role(%s, %s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
            (app, owner, app),
        ).fetchone() == (False, False)
    finally:
        for suffix in ("app", "relay", "owner"):
            admin.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"tcfix{tag}_{suffix}"))
            )
        admin.close()


def test_db_migrate_and_check_commands(pg_database: PgDatabase) -> None:
    """`turingcore db migrate` on a migrated database says up to date; `db check` passes."""
    result = runner.invoke(turingcore_app, ["db", "migrate", "--dsn", pg_database.dsn])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    result = runner.invoke(turingcore_app, ["db", "check", "--dsn", pg_database.dsn])
    assert result.exit_code == 0, result.output
    assert "row-level security holds" in result.output


def test_db_check_fails_on_an_unmigrated_database() -> None:
    """`db check` on an empty database exits 1 and names the missing tables."""
    admin = admin_connection()
    name = create_database(admin, "tc_empty")
    try:
        result = runner.invoke(turingcore_app, ["db", "check", "--dsn", dsn_of(name)])
        assert result.exit_code == 1, result.output
        assert "turingcore.events does not exist (run turingcore db migrate)" in result.output
    finally:
        drop_database(admin, name)
        admin.close()


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/x",
            "cannot connect to PostgreSQL at postgres@127.0.0.1:1/x",
        ),
        ("color=blue", "--dsn is not a PostgreSQL connection string"),
        ("postgresql://postgres@127.0.0.1:5432/tc_no_such_database", "does not exist"),
    ],
)
@pytest.mark.parametrize("command", ["migrate", "check"])
def test_db_commands_exit_2_on_an_unusable_dsn(command: str, dsn: str, message: str) -> None:
    """A bad or unreachable DSN: exit 2 with a message naming it (nothing else happens)."""
    if "5432" in dsn:
        admin_connection().close()  # the server must be up for "no such database"
    result = runner.invoke(turingcore_app, ["db", command, "--dsn", dsn])
    assert result.exit_code == 2, result.output
    assert "turingcore: error:" in result.output
    assert message in result.output


def test_migrate_as_a_role_that_cannot_create_roles_exits_2(pg_database: PgDatabase) -> None:
    """Migrating as the service role itself is refused with a message saying who may."""
    dsn = psycopg.conninfo.make_conninfo(pg_database.dsn, user=APP_ROLE)
    result = runner.invoke(turingcore_app, ["db", "migrate", "--dsn", dsn])
    assert result.exit_code == 2, result.output
    assert "may not migrate" in result.output


# --------------------------------------------------------------------------- catalogue check


def test_catalogue_of_the_migrated_database_is_clean(pg_database: PgDatabase) -> None:
    """The shipped schema and roles pass every check (for the service and the relay)."""
    with pg_database.admin() as conn:
        assert catalogue_problems(conn) == []
        forced = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'turingcore' AND c.relrowsecurity AND c.relforcerowsecurity"
        ).fetchone()[0]
    assert forced == len(TENANT_TABLES)


@pytest.fixture(scope="module")
def scratch(pg_database: PgDatabase) -> Iterator[dict[str, str]]:
    """A scratch schema with one well-protected tenant table, and scratch roles of its own."""
    tag = secrets.token_hex(3)
    names = {
        "schema": f"scratch_{tag}",
        "app": f"tcscratch{tag}_app",
        "owner": f"tcscratch{tag}_owner",
    }
    with pg_database.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(names["app"])))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(names["owner"])))
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(names["schema"]), sql.Identifier(names["owner"])
            )
        )
        conn.execute(
            sql.SQL(
                "SET ROLE {owner}; CREATE TABLE {schema}.good (tenant_id text NOT NULL, v int);"
                " ALTER TABLE {schema}.good ENABLE ROW LEVEL SECURITY;"
                " ALTER TABLE {schema}.good FORCE ROW LEVEL SECURITY;"
                " CREATE POLICY t ON {schema}.good"
                " USING (tenant_id = current_setting('app.tenant_id', true))"
                " WITH CHECK (tenant_id = current_setting('app.tenant_id', true));"
                " GRANT USAGE ON SCHEMA {schema} TO {app};"
                " GRANT SELECT, INSERT, UPDATE ON {schema}.good TO {app}; RESET ROLE"
            ).format(**{key: sql.Identifier(value) for key, value in names.items()})
        )
    try:
        yield names
    finally:
        with pg_database.admin() as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(names["schema"])))
            for role in ("app", "owner"):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(names[role])))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(names[role])))


def scratch_problems(conn: psycopg.Connection, names: dict[str, str]) -> list[str]:
    return catalogue_problems(
        conn,
        schema=names["schema"],
        service_role=names["app"],
        relay_role=None,
        platform_tables=frozenset({"codes"}),
        expected_tables=("good",),
    )


BREAKAGES = {
    "not enabled": (
        "CREATE TABLE {schema}.bad (tenant_id text)",
        "row level security is not enabled",
    ),
    "not forced": (
        "CREATE TABLE {schema}.bad (tenant_id text);"
        " ALTER TABLE {schema}.bad ENABLE ROW LEVEL SECURITY",
        "row level security is not forced",
    ),
    "no policy": (
        "CREATE TABLE {schema}.bad (tenant_id text);"
        " ALTER TABLE {schema}.bad ENABLE ROW LEVEL SECURITY;"
        " ALTER TABLE {schema}.bad FORCE ROW LEVEL SECURITY",
        "no row level security policy",
    ),
    "USING true": (
        "CREATE POLICY open ON {schema}.good FOR SELECT USING (true)",
        "policy open (SELECT): USING is 'true', not the tenant predicate",
    ),
    "no WITH CHECK": (
        "DROP POLICY t ON {schema}.good; CREATE POLICY t ON {schema}.good"
        " USING (tenant_id = current_setting('app.tenant_id', true))",
        "policy t (ALL) has no WITH CHECK",
    ),
    "widened WITH CHECK": (
        "DROP POLICY t ON {schema}.good; CREATE POLICY t ON {schema}.good"
        " USING (tenant_id = current_setting('app.tenant_id', true))"
        " WITH CHECK (tenant_id = current_setting('app.tenant_id', true) OR v > 0)",
        "policy t (ALL): WITH CHECK is",
    ),
    "policy for another role": (
        "CREATE POLICY peek ON {schema}.good FOR SELECT TO {owner} USING (true)",
        "policy peek (SELECT) is not the tenant predicate and is not the relay's",
    ),
    "service owns a table": ("ALTER TABLE {schema}.good OWNER TO {app}", "owns {schema}.good"),
    "service owns a view": (
        "CREATE VIEW {schema}.peek AS SELECT 1 AS one; ALTER VIEW {schema}.peek OWNER TO {app}",
        "owns {schema}.peek",
    ),
    "superuser": ("ALTER ROLE {app} SUPERUSER", "{app} is a superuser"),
    "bypassrls": ("ALTER ROLE {app} BYPASSRLS", "{app} has BYPASSRLS"),
    "member of the owner": ("GRANT {owner} TO {app}", "{app} is a member of {owner}"),
    "reads all data": ("GRANT pg_read_all_data TO {app}", "is a member of pg_read_all_data"),
    "TRUNCATE": ("GRANT TRUNCATE ON {schema}.good TO {app}", "has TRUNCATE on {schema}.good"),
    "REFERENCES": ("GRANT REFERENCES ON {schema}.good TO {app}", "has REFERENCES on"),
    "platform table readable": (
        "CREATE TABLE {schema}.codes (code text, tenant_id text);"
        " GRANT SELECT (code) ON {schema}.codes TO {app}",
        "{schema}.codes is platform data, but {app} has privileges on it",
    ),
    "CREATE in the schema": (
        "GRANT CREATE ON SCHEMA {schema} TO {app}",
        "may CREATE in schema {schema}",
    ),
    "table missing": ("ALTER TABLE {schema}.good RENAME TO moved", "{schema}.good does not exist"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_catalogue_check_catches_each_breakage(
    pg_database: PgDatabase, scratch: dict[str, str], breakage: str
) -> None:
    """Each way of breaking row security in a scratch schema is reported (then rolled back)."""
    statement, expected = BREAKAGES[breakage]
    idents = {key: sql.Identifier(value) for key, value in scratch.items()}
    with psycopg.connect(pg_database.dsn) as conn:  # one transaction, rolled back
        assert scratch_problems(conn, scratch) == []
        conn.execute(sql.SQL(statement).format(**idents))
        problems = scratch_problems(conn, scratch)
        conn.rollback()
    wanted = expected.format(**scratch)
    assert any(wanted in problem for problem in problems), (wanted, problems)


def test_the_ledger_refuses_to_serve_as_a_superuser(pg_database: PgDatabase) -> None:
    """Connecting the store as postgres (superuser, BYPASSRLS) is refused before serving."""
    with pytest.raises(UnsafeDatabase, match="postgres is a superuser"):
        PostgresLedger(pg_database.dsn, user=None)
    with pytest.raises(UnsafeDatabase, match="superuser or BYPASSRLS"):
        PostgresOutbox(pg_database.dsn, user=None)


# --------------------------------------------------------------------------- RLS attack matrix


@pytest.fixture(scope="module")
def two_tenants(pg_database: PgDatabase) -> dict[str, Any]:
    """Tenants A and B with rows in every tenant table, written through the store."""
    tags = [secrets.token_hex(4) for _ in range(2)]
    found: dict[str, Any] = {}
    with PostgresLedger(pg_database.dsn) as ledger:
        for name, tag in zip("AB", tags, strict=True):
            tenant, code = f"cu-{tag}", f"CU_{tag.upper()}"
            cmd, customers, accounts = bank(ledger, tenant, code)
            results = ledger.submit(
                tenant,
                [
                    salary(cmd, accounts[0], 1_000, key="pay-1"),
                    cmd.post([(accounts[0], "DEBIT", 5)], key="one-leg"),  # refused: a rejection
                ],
            )
            assert [r.status for r in results] == ["ACCEPTED", "REJECTED"]
            found[name] = {
                "tenant": tenant,
                "code": code,
                "customers": customers,
                "accounts": accounts,
            }
    for name in "AB":
        counts = rows_of(pg_database, found[name]["tenant"])
        assert all(counts.values()), counts  # every table has rows of both tenants
    return found


def visible(conn: psycopg.Connection, tenant: str) -> dict[str, tuple[int, int]]:
    """table -> (rows visible in total, rows of `tenant` visible) on this connection."""
    return {
        table: conn.execute(
            sql.SQL("SELECT count(*), count(*) FILTER (WHERE tenant_id = %s) FROM {}").format(
                sql.Identifier("turingcore", table)
            ),
            (tenant,),
        ).fetchone()
        for table in TENANT_TABLES
    }


#: Tenant strings an attacker might try; `{a}` is tenant A's id (the rows being looked for).
HOSTILE_SETTINGS = [
    "",
    "x' OR '1'='1",
    "%",
    "*",
    "cu-%",
    "' OR tenant_id IS NOT NULL --",
    "{a}' OR '1'='1",
    "{a}'; SELECT 1; --",
    "{a} ",
    " {a}",
    "{a}\n",
    "{A}",
]


def test_no_tenant_set_sees_no_rows(pg_database: PgDatabase, two_tenants: dict[str, Any]) -> None:
    """A connection that never set a tenant sees zero rows in every tenant table."""
    with pg_database.as_app() as conn:
        assert set(visible(conn, two_tenants["A"]["tenant"]).values()) == {(0, 0)}
        with conn.transaction():
            assert set(visible(conn, two_tenants["B"]["tenant"]).values()) == {(0, 0)}


@pytest.mark.parametrize("setting", HOSTILE_SETTINGS)
def test_hostile_tenant_strings_see_no_rows(
    pg_database: PgDatabase, two_tenants: dict[str, Any], setting: str
) -> None:
    """Quotes, wildcards, SQL, case and whitespace games in the tenant string match nothing."""
    a = two_tenants["A"]["tenant"]
    value = setting.format(a=a, A=a.upper())
    with pg_database.as_app() as conn, conn.transaction():
        conn.execute(pgstore._SET_TENANT, (value,))
        assert set(visible(conn, a).values()) == {(0, 0)}, value


def test_the_wrong_tenant_sees_only_its_own_rows(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """As B, every table shows B's rows (all of them) and none of A's."""
    a, b = two_tenants["A"]["tenant"], two_tenants["B"]["tenant"]
    expected = rows_of(pg_database, b)
    with pg_database.as_app() as conn, conn.transaction():
        conn.execute(pgstore._SET_TENANT, (b,))
        assert {t: seen[1] for t, seen in visible(conn, a).items()} == dict.fromkeys(
            TENANT_TABLES, 0
        )
        assert {t: seen[0] for t, seen in visible(conn, b).items()} == expected
        with conn.cursor().copy("COPY turingcore.events TO STDOUT") as copy:
            copied = b"".join(bytes(block) for block in copy)
    assert copied.count(b"\n") == expected["events"]
    assert a.encode() not in copied


def test_a_nul_byte_in_the_tenant_is_refused(
    pg_database: PgDatabase, pg_ledger: PostgresLedger
) -> None:
    """A NUL byte never reaches a query: the driver and the ledger both refuse it."""
    with pg_database.as_app() as conn, pytest.raises(psycopg.DataError):
        conn.execute(pgstore._SET_TENANT, ("cu-a\x00' OR '1'='1",))
    for call in (
        lambda: pg_ledger.submit("cu-a\x00", [Commands("cu-a").create_tenant("CU_NUL")]),
        lambda: pg_ledger.customers("cu-a\x00"),
        lambda: pg_ledger.head("\x00"),
    ):
        with pytest.raises(ValueError, match="NUL"):
            call()


def forged_rows(tenant: str, account: str) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """An INSERT for every tenant table with a row of `tenant` (valid but for its tenant)."""
    digest = "0" * 64
    return {
        "chain_heads": ("(tenant_id, seq, hash) VALUES (%s, 0, %s)", (tenant, digest)),
        "events": (
            "VALUES (%s, 999999, 'e', 'EntryPosted', %s, 'now', 'c', %s, %s, '\\x7b7d')",
            (tenant, account, digest, digest),
        ),
        "products": ("VALUES (%s, 'FORGED', 'DEPOSIT', true, '{}', 1)", (tenant,)),
        "customers": (
            "VALUES (%s, 'forged', NULL, 'F', 'f@x.example', '+61400000999', NULL, NULL,"
            " 'now', 'ACTIVE', 1, 1)",
            (tenant,),
        ),
        "accounts": (
            "VALUES (%s, 'forged', NULL, 'SAVER', 'DEPOSIT', 'AUD', NULL, 'now', 0, NULL,"
            " 'ACTIVE', 100000000, 1, 1)",
            (tenant,),
        ),
        "idempotency": (
            "VALUES (%s, 'forged', '2025-07-01', 'c', 'ACCEPTED', 'c', 'now', NULL, NULL, NULL,"
            " 1, 1)",
            (tenant,),
        ),
        "rejections": ("VALUES (%s, 'c', 'PostEntry', NULL, 'now', 'R', NULL)", (tenant,)),
        "outbox": ("VALUES (%s, 999999, 999999, '\\x7b7d')", (tenant,)),
        "outbox_marks": ("(tenant_id) VALUES (%s)", (tenant + "-x",)),
    }


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("as_tenant", ["A", None])
def test_inserting_another_tenants_row_is_refused(
    pg_database: PgDatabase, two_tenants: dict[str, Any], table: str, as_tenant: str | None
) -> None:
    """As A (or as nobody), a row for B is refused by WITH CHECK, in every tenant table."""
    b = two_tenants["B"]
    columns, params = forged_rows(b["tenant"], b["accounts"][0])[table]
    before = rows_of(pg_database, b["tenant"])
    with pg_database.as_app(autocommit=False) as conn:
        if as_tenant is not None:
            conn.execute(pgstore._SET_TENANT, (two_tenants[as_tenant]["tenant"],))
        with pytest.raises(RLS_REFUSED, match="row-level security"):
            conn.execute(f"INSERT INTO turingcore.{table} {columns}", params)
    assert rows_of(pg_database, b["tenant"]) == before


UPDATABLE = {
    "chain_heads": "seq = 0",
    "products": "active = false",
    "customers": "status = 'CLOSED'",
    "accounts": "balance_cents = 100000000",
    "idempotency": "status = 'REJECTED'",
}


@pytest.mark.parametrize("table", sorted(UPDATABLE))
def test_updates_never_reach_or_move_rows_into_another_tenant(
    pg_database: PgDatabase, two_tenants: dict[str, Any], table: str
) -> None:
    """As A: updating B's rows touches none; moving A's rows to B is refused by WITH CHECK."""
    a, b = two_tenants["A"]["tenant"], two_tenants["B"]["tenant"]
    before = rows_of(pg_database, b)
    with pg_database.as_app(autocommit=False) as conn:
        conn.execute(pgstore._SET_TENANT, (a,))
        changed = conn.execute(
            f"UPDATE turingcore.{table} SET {UPDATABLE[table]} WHERE tenant_id = %s", (b,)
        )
        assert changed.rowcount == 0
        changed = conn.execute(f"UPDATE turingcore.{table} SET {UPDATABLE[table]}")
        assert changed.rowcount == rows_of(pg_database, a)[table]  # A's own rows only
        conn.rollback()
        conn.execute(pgstore._SET_TENANT, (a,))
        with pytest.raises(RLS_REFUSED, match="row-level security"):
            conn.execute(f"UPDATE turingcore.{table} SET tenant_id = %s", (b,))
    assert rows_of(pg_database, b) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE turingcore.events SET canonical = '\\x7b7d'",
        "UPDATE turingcore.outbox SET events = '\\x7b7d'",
        "UPDATE turingcore.outbox_marks SET sent_seq = 0",
        "UPDATE turingcore.rejections SET rule = 'X'",
        "DELETE FROM turingcore.events",
        "DELETE FROM turingcore.accounts",
        "TRUNCATE turingcore.events",
        "TRUNCATE turingcore.accounts",
        "SELECT * FROM turingcore.tenant_codes",
        "INSERT INTO turingcore.tenant_codes VALUES ('X', 'x')",
        "SELECT * FROM turingcore.schema_migrations",
        "SET ROLE turingcore_owner",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "ALTER TABLE turingcore.events DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE turingcore.accounts NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON turingcore.accounts",
        "CREATE POLICY everyone ON turingcore.accounts USING (true)",
        "CREATE TABLE turingcore.mine (tenant_id text)",
        # a foreign key would tell which ids exist past row security: no table to put it in
        "CREATE TABLE public.probe (t text, a text,"
        " FOREIGN KEY (t, a) REFERENCES turingcore.accounts (tenant_id, account_id))",
        "ALTER ROLE turingcore_app BYPASSRLS",
        "GRANT turingcore_owner TO turingcore_app",
    ],
)
def test_privilege_games_are_refused(
    pg_database: PgDatabase, two_tenants: dict[str, Any], statement: str
) -> None:
    """Deleting, truncating, rewriting the ledger, escaping the role or the policy: all refused."""
    a = two_tenants["A"]["tenant"]
    before = rows_of(pg_database, a)
    with pg_database.as_app(autocommit=False) as conn:
        conn.execute(pgstore._SET_TENANT, (a,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert rows_of(pg_database, a) == before


def test_switching_row_security_off_is_an_error_not_a_bypass(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """SET row_security = off makes a protected query fail instead of showing every row."""
    with pg_database.as_app(autocommit=False) as conn:
        conn.execute("SET row_security = off")
        with pytest.raises(RLS_REFUSED, match="row-level security"):
            conn.execute("SELECT count(*) FROM turingcore.accounts")


def test_resetting_the_tenant_inside_a_transaction_shows_nothing(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """After set_config(A) then RESET (or an empty string), the transaction sees no rows."""
    a = two_tenants["A"]["tenant"]
    with pg_database.as_app() as conn:
        for undo in ("RESET app.tenant_id", "SELECT set_config('app.tenant_id', '', true)"):
            with conn.transaction():
                conn.execute(pgstore._SET_TENANT, (a,))
                assert visible(conn, a)["accounts"][1] > 0
                conn.execute(undo)
                assert set(visible(conn, a).values()) == {(0, 0)}


def test_the_tenant_setting_ends_with_its_transaction(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """set_config(..., true) is transaction-local: after commit (or rollback) no rows again."""
    a = two_tenants["A"]["tenant"]
    with pg_database.as_app() as conn:
        with conn.transaction():
            conn.execute(pgstore._SET_TENANT, (a,))
            assert visible(conn, a)["events"][1] > 0
        assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] == ""
        assert set(visible(conn, a).values()) == {(0, 0)}
        with conn.transaction(force_rollback=True):
            conn.execute(pgstore._SET_TENANT, (a,))
        assert set(visible(conn, a).values()) == {(0, 0)}


def test_a_pooled_connection_carries_no_tenant_into_the_next_request(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """One pooled connection serves A then B: B sees only B; between them, no tenant at all.

    Also when a bug ran a session-level SET of A on it: the pool resets the
    connection when it comes back, so the next request starts with no tenant.
    """
    a, b = two_tenants["A"], two_tenants["B"]
    with PostgresLedger(pg_database.dsn, min_size=1, max_size=1) as ledger:
        cmd = Commands(a["tenant"], tag=f"pool{secrets.token_hex(2)}")
        assert ledger.submit(a["tenant"], [salary(cmd, a["accounts"][0], 7)])[0].accepted
        assert ledger.customers(a["tenant"])["total"] == len(a["customers"])
        with ledger.pool.connection() as conn:
            pid = conn.info.backend_pid
            assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] == ""
            assert set(visible(conn, a["tenant"]).values()) == {(0, 0)}
            conn.execute(
                sql.SQL("SET app.tenant_id = {}").format(sql.Literal(a["tenant"]))
            )  # a bug
        listed = ledger.customers(b["tenant"])
        assert sorted(c["customerId"] for c in listed["customers"]) == sorted(b["customers"])
        with pytest.raises(NotFound):  # A's customer is no customer of B's
            ledger.accounts(b["tenant"], customer_id=a["customers"][0])
        with ledger.pool.connection() as conn:
            assert conn.info.backend_pid == pid  # the same connection all along
            assert set(visible(conn, a["tenant"]).values()) == {(0, 0)}


def test_the_ledger_api_never_answers_with_another_tenants_rows(
    pg_ledger: PostgresLedger, two_tenants: dict[str, Any]
) -> None:
    """B asking for A's account gets NotFound; B's entry naming A's account is refused."""
    a, b = two_tenants["A"], two_tenants["B"]
    with pytest.raises(NotFound):
        pg_ledger.account_events(b["tenant"], a["accounts"][0])
    assert pg_ledger.account_events(a["tenant"], a["accounts"][0])
    before = rows_of_ledger(pg_ledger, a["tenant"])
    cmd = Commands(b["tenant"], tag=f"x{secrets.token_hex(2)}")
    (result,) = pg_ledger.submit(b["tenant"], [salary(cmd, a["accounts"][0], 100)])
    assert result.rule == "ACCOUNT_NOT_FOUND"
    forged = salary(cmd, a["accounts"][0], 100, tenant_id=a["tenant"])
    (result,) = pg_ledger.submit(b["tenant"], [forged])
    assert result.rule == "TENANT_MISMATCH"
    assert rows_of_ledger(pg_ledger, a["tenant"]) == before


def test_listings_of_a_tenant_that_does_not_exist_are_not_found(
    pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A tenant with no chain (never created, or only refused commands) has no listings.

    The service turns NotFound into its one 404, so a missing tenant and
    another tenant's look the same; head and the event feed answer genesis.
    """
    ghost, _code = new_tenant()
    cmd = Commands(ghost, tag="ghost")
    (refused,) = pg_ledger.submit(ghost, [cmd.product("SAVER")])
    assert refused.rule == "TENANT_NOT_FOUND"
    with pytest.raises(NotFound):
        pg_ledger.customers(ghost)
    with pytest.raises(NotFound):
        pg_ledger.accounts(ghost)
    assert pg_ledger.head(ghost) == (0, GENESIS_HASH)
    assert pg_ledger.tenant_events(ghost) == []


def rows_of_ledger(ledger: PostgresLedger, tenant: str) -> tuple[Any, ...]:
    """What a tenant's readers see through the ledger (head, listings, events)."""
    return (
        ledger.head(tenant),
        ledger.customers(tenant, limit=1000),
        ledger.accounts(tenant, limit=1000),
        ledger.tenant_events(tenant, limit=10_000),
    )


def test_tenant_codes_reveal_one_bit_and_never_the_holder(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """The code functions say whether a code is another's; claiming without a tenant is refused."""
    a, b = two_tenants["A"], two_tenants["B"]
    with pg_database.as_app(autocommit=False) as conn:
        conn.execute(pgstore._SET_TENANT, (a["tenant"],))
        taken = "SELECT turingcore.tenant_code_taken(%s)"
        assert conn.execute(taken, (b["code"],)).fetchone()[0] is True
        assert conn.execute(taken, (a["code"],)).fetchone()[0] is False  # its own
        assert conn.execute(taken, ("CU_NOBODY",)).fetchone()[0] is False
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("SELECT turingcore.claim_tenant_code(%s)", (b["code"],))
        conn.rollback()
        with pytest.raises(RLS_REFUSED, match="no tenant"):
            conn.execute("SELECT turingcore.claim_tenant_code('CU_NOBODY')")


def test_the_relay_role_reads_the_outbox_only(
    pg_database: PgDatabase, two_tenants: dict[str, Any]
) -> None:
    """The relay sees every tenant's outbox (by design) and nothing else; it moves marks only."""
    with psycopg.connect(pg_database.dsn, user=RELAY_ROLE, autocommit=False) as conn:
        tenants = {row[0] for row in conn.execute("SELECT tenant_id FROM turingcore.outbox")}
        assert {two_tenants["A"]["tenant"], two_tenants["B"]["tenant"]} <= tenants
        conn.rollback()
        for statement in (
            "SELECT count(*) FROM turingcore.events",
            "SELECT count(*) FROM turingcore.customers",
            "SELECT count(*) FROM turingcore.accounts",
            "INSERT INTO turingcore.outbox VALUES ('x', 1, 1, '\\x7b7d')",
            "UPDATE turingcore.outbox_marks SET tenant_id = 'x'",
            "DELETE FROM turingcore.outbox",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


# --------------------------------------------------------------------------- parity with embedded


class Twins:
    """The same commands fed to an EmbeddedPlatform and to PostgreSQL ledgers, compared."""

    def __init__(self, ledgers: list[PostgresLedger]) -> None:
        self.embedded = EmbeddedPlatform()
        self.recorder = Recorder()
        self.embedded.subscribe(self.recorder)
        self.ledgers = ledgers
        self.rules: set[str] = set()

    def submit(self, tenant: str, batch: list[Envelope], via: int = 0) -> list[CommandResult]:
        """Submit to both (PostgreSQL through ledger `via`); the answers must be equal."""
        expected = self.embedded.submit(tenant, batch)
        actual = self.ledgers[via].submit(tenant, batch)
        assert actual == expected
        self.rules.update(r.rule for r in expected if r.rule)
        return expected

    def ids(self, tenant: str, listing: str) -> list[str]:
        key = {"customers": "customerId", "accounts": "accountId"}[listing]
        return [row[key] for row in getattr(self.embedded, listing)(tenant, limit=1000)[listing]]

    def assert_same(self, tenant: str) -> None:
        """Heads, every event's bytes, and the read model agree."""
        ledger = self.ledgers[0]
        assert ledger.head(tenant) == self.embedded.head(tenant)
        expected = [e.to_json_bytes() for e in self.recorder.events(tenant)]
        assert verified(ledger, tenant) == expected
        for listing in ("customers", "accounts"):
            assert getattr(ledger, listing)(tenant, limit=1000) == getattr(self.embedded, listing)(
                tenant, limit=1000
            )
        for account in self.ids(tenant, "accounts"):
            mine = [
                e.to_json_bytes()
                for e in self.recorder.events(tenant)
                if e.event.entity_id == account
            ]
            assert ledger.account_events(tenant, account, limit=10_000) == mine


def at(day: int, clock: str) -> str:
    return stamp(DAY + timedelta(days=day), clock)


def test_a_mixed_command_stream_gives_the_embedded_answers_and_bytes(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Every rule and every event kind, through three ledgers taking turns (caches reloading).

    The third ledger starts cold in the middle of a card burst: it must
    rebuild the tenant from the stored events and re-warm the monitor, or
    the sixth card payment raises no alert and the chains part.
    """
    (tenant, code), (other, other_code) = new_tenant(), new_tenant()
    with (
        PostgresLedger(pg_database.dsn) as first,
        PostgresLedger(pg_database.dsn) as second,
        PostgresLedger(pg_database.dsn) as third,
    ):
        twins = Twins([first, second, third])
        twins.submit(other, [Commands(other).create_tenant(other_code)])
        cmd = Commands(tenant)
        setup = twins.submit(
            tenant,
            [
                cmd.post([("GL_CARD_CLEARING", "DEBIT", 1), ("GL_SALARY_CLEARING", "CREDIT", 1)]),
                cmd.create_tenant(other_code),
                cmd.create_tenant(code, currency="USD"),
                cmd.create_tenant(code, region="au"),
                cmd.create_tenant(code, time_zone="Mars/Olympus_Mons"),
                cmd.create_tenant(code, key="tenant"),
                cmd.create_tenant(code),
                cmd.create_tenant(code, key="tenant"),
                cmd.create_tenant(other_code, tenant_id=other),
            ],
        )
        assert [r.rule for r in setup] == [
            "TENANT_NOT_FOUND",
            "TENANT_CODE_TAKEN",
            "UNSUPPORTED_CURRENCY",
            "INVALID_REGION",
            "INVALID_TIME_ZONE",
            None,
            "TENANT_EXISTS",
            None,
            "TENANT_MISMATCH",
        ]
        saver = Constraints(min_balance=1_000, max_balance=100_000_000)
        twins.submit(
            tenant,
            [
                cmd.product("SAVER", constraints=saver),
                cmd.product(
                    "EVERYDAY",
                    constraints=Constraints(allow_overdraft=True, overdraft_limit=50_000),
                ),
                cmd.product("HOMELOAN", "LOAN"),
                cmd.product("BAD", interest=Interest(rate=Decimal("-0.01"))),
                cmd.product("BAD", constraints=Constraints(min_balance=5, max_balance=5)),
                cmd.product("SAVER", "LOAN"),
                cmd.product("SAVER", name="Saver Plus", constraints=saver),
            ],
            via=1,
        )
        twins.submit(
            tenant,
            [
                cmd.customer(1, external_ref="X1", key="c1"),
                cmd.customer(2),
                cmd.customer(3, email=f"m1@{tenant}.example"),
                cmd.customer(4, mobile="+61400000002"),
                cmd.customer(5, external_ref="X1"),
                cmd.customer(6, born=date(2010, 1, 1)),
                cmd.customer(7, key="c1"),
            ],
        )
        c1, c2 = twins.ids(tenant, "customers")
        twins.submit(
            tenant,
            [
                cmd.open_account(c1, "SAVER", 100_000, key="a1"),
                cmd.open_account(c1, "EVERYDAY"),
                cmd.open_account(c2, "EVERYDAY", 20_000),
                cmd.open_account(c2, "HOMELOAN"),
                cmd.open_account("nobody", "SAVER"),
                cmd.open_account(c1, "NOPE"),
                cmd.open_account(c1, "SAVER", 100_000, currency="NZD"),
                cmd.open_account(c1, "SAVER", 10),
                cmd.open_account(c1, "SAVER", 10**9),
                cmd.open_account(c2, "HOMELOAN", 500),
                cmd.open_account(c1, "EVERYDAY", -5),
            ],
            via=1,
        )
        s1, e1, e2, loan = twins.ids(tenant, "accounts")
        twins.submit(
            tenant,
            [
                salary(cmd, e1, 1_000, key="p1"),
                cmd.post([(e1, "DEBIT", 5)], key="bad1"),
                salary(cmd, e1, 1_000, currency="NZD"),
                salary(cmd, e1, 1_000, value=DAY - timedelta(days=1)),
                salary(cmd, e1, 0),
                salary(cmd, "nowhere", 10),
                cmd.post([(e1, "DEBIT", 10), ("GL_SALARY_CLEARING", "CREDIT", 9)]),
                cmd.post([(e1, "SIDEWAYS", 10), ("GL_SALARY_CLEARING", "CREDIT", 10)]),
                cmd.post([(e1, "CREDIT", 10**7), ("GL_CARD_CLEARING", "DEBIT", 10**7)]),
                salary(cmd, s1, 10**8),
                cmd.post([(loan, "CREDIT", 50_000), (e2, "DEBIT", 50_000)]),
                cmd.envelope("CloseAccount", {"accountId": e1}),
            ],
        )
        # replays: the first answers, whatever the body now says
        twins.submit(
            tenant,
            [
                salary(cmd, e1, 1_000, key="p1"),
                cmd.open_account(c2, "SAVER", 5_000, key="a1"),
                salary(cmd, e1, 5, key="bad1"),
                cmd.customer(8, key="c1"),
            ],
            via=1,
        )
        card = [(e2, "CREDIT", 500), ("GL_CARD_CLEARING", "DEBIT", 500)]
        burst = [tagged(cmd, card, {"channel": "CARD"}, at(1, f"10:0{m}:00")) for m in range(6)]
        twins.submit(tenant, burst[:3], via=0)
        twins.submit(tenant, burst[3:], via=2)  # a cold cache: rebuilt, monitor re-warmed
        cash = [(e1, "DEBIT", 1_000_000), ("GL_NPP_CLEARING", "CREDIT", 1_000_000)]
        npp = [(e1, "CREDIT", 600_000), ("GL_NPP_CLEARING", "DEBIT", 600_000)]
        twins.submit(
            tenant,
            [
                tagged(cmd, cash, {"channel": "CASH"}, at(1, "11:00:00")),
                tagged(
                    cmd, npp, {"channel": "NPP", "counterparty": "062-000 1"}, at(1, "12:00:00")
                ),
                *(
                    tagged(
                        cmd,
                        [(s1, "DEBIT", 900_000), ("GL_NPP_CLEARING", "CREDIT", 900_000)],
                        {"channel": "CASH"},
                        at(day, "13:00:00"),
                    )
                    for day in (2, 3, 4)
                ),
            ],
            via=0,  # behind by the burst's second half: folds only what it missed
        )
        # key "p1" after its retention: runs again; within it: replayed
        later = twins.submit(
            tenant,
            [salary(cmd, e1, 2_000, key="p1", timestamp=at(5, "09:00:00"))] * 2,
            via=1,
        )
        assert later[0].accepted
        assert later[0].first_seq > 0
        assert later[0] == later[1]
        twins.assert_same(tenant)
        twins.assert_same(other)
    unreachable = {"CUSTOMER_NOT_ACTIVE", "PRODUCT_NOT_ACTIVE", "ACCOUNT_NOT_ACTIVE"}
    assert twins.rules == (set(RULES) - unreachable) | {"TENANT_MISMATCH"}
    kinds = {e.event.event_type for e in twins.recorder.events(tenant)}
    assert {"FraudAlertRaised", "ThresholdTransactionReported", "LoanFacilityCreated"} <= kinds
    assert {"ProductUpdated", "FundsPosted"} <= kinds
    rules = {
        e.event.payload.rule
        for e in twins.recorder.events(tenant)
        if e.event.event_type == "FraudAlertRaised"
    }
    assert rules == {"VELOCITY", "NEW_PAYEE_LARGE", "STRUCTURING"}


def test_quotes_tabs_and_backslashes_in_ids_are_stored_exactly(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Client-chosen text (tenant, command ids, keys, timestamps) with COPY's and SQL's
    special characters round-trips byte for byte, replays included."""
    tenant_tag, code = new_tenant()
    tenant = f"{tenant_tag}-o'd\"d\\\t"
    with PostgresLedger(pg_database.dsn) as ledger:
        twins = Twins([ledger])
        cmd = Commands(tenant, tag="q'\t\\n\n%s")
        twins.submit(tenant, [cmd.create_tenant(code, key="k\t\\'\"\n"), cmd.product()])
        twins.submit(tenant, [cmd.customer(1, key="\\N")])
        (customer,) = twins.ids(tenant, "customers")
        twins.submit(tenant, [cmd.open_account(customer, "SAVER", 700, key="\\.")])
        twins.submit(tenant, [cmd.create_tenant(code, key="k\t\\'\"\n")])  # a replay
        twins.assert_same(tenant)


def test_a_key_run_again_after_its_retention_answers_with_the_later_run(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """One key on day 0 and day 5 of one batch runs twice; on day 6 it replays day 5's answer.

    The key table is the database's (each batch starts with an empty one in
    the cache), so this checks what the store wrote, against embedded.
    """
    tenant, code = new_tenant()
    with PostgresLedger(pg_database.dsn) as ledger:
        twins = Twins([ledger])
        cmd, _customers, accounts = bank(twins.embedded, tenant, code)
        bank(ledger, tenant, code)
        twice = [
            salary(cmd, accounts[0], 10 + d, key="k", timestamp=at(d, "09:00:00")) for d in (0, 5)
        ]
        first, again = twins.submit(tenant, [twice[0], twice[0], twice[1], twice[1]])[1:3]
        assert first.first_seq != again.first_seq
        (replayed,) = twins.submit(
            tenant, [salary(cmd, accounts[0], 99, key="k", timestamp=at(6, "09:00:00"))]
        )
        assert replayed == again
        twins.assert_same(tenant)


def test_an_idempotent_replay_returns_the_first_answer_and_writes_nothing(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Replaying accepted and refused keyed commands (one batch, twice) changes no row."""
    tenant, code = new_tenant()
    cmd, _customers, accounts = bank(pg_ledger, tenant, code)
    batch = [
        salary(cmd, accounts[0], 300, key="k1"),
        cmd.post([(accounts[0], "DEBIT", 1)], key="k2"),
        salary(cmd, accounts[1], 400, key="k3"),
    ]
    first = pg_ledger.submit(tenant, batch)
    assert [r.status for r in first] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    before = rows_of(pg_database, tenant), rows_of_ledger(pg_ledger, tenant)
    changed = [salary(cmd, accounts[1], 999_999, key=k) for k in ("k1", "k2", "k3")]
    for replay in (batch, changed, batch[::-1]):
        answers = pg_ledger.submit(tenant, replay)
        by_key = {c.idempotency_key: r for c, r in zip(batch, first, strict=True)}
        assert answers == [by_key[c.idempotency_key] for c in replay]
    assert (rows_of(pg_database, tenant), rows_of_ledger(pg_ledger, tenant)) == before


def test_a_refusal_writes_no_event_no_outbox_and_no_read_model(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A business refusal is kept as one rejections row (audit) and changes nothing else.

    An envelope naming another tenant writes nothing at all.
    """
    tenant, code = new_tenant()
    cmd, _customers, accounts = bank(pg_ledger, tenant, code)
    before, seen = rows_of(pg_database, tenant), rows_of_ledger(pg_ledger, tenant)
    (result,) = pg_ledger.submit(tenant, [salary(cmd, accounts[0], 0)])
    assert result.rule == "NON_POSITIVE_AMOUNT"
    after = rows_of(pg_database, tenant)
    assert after == {**before, "rejections": before["rejections"] + 1}
    assert rows_of_ledger(pg_ledger, tenant) == seen
    (result,) = pg_ledger.submit(tenant, [salary(cmd, accounts[0], 5, tenant_id="cu-else")])
    assert result.rule == "TENANT_MISMATCH"
    assert rows_of(pg_database, tenant) == after


def test_a_nul_character_in_a_command_is_refused_and_writes_nothing(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A NUL in client text (here a command id) is a ValueError; the batch leaves no row."""
    tenant, code = new_tenant()
    cmd, _customers, accounts = bank(pg_ledger, tenant, code)
    before = rows_of(pg_database, tenant)
    bad = salary(cmd, accounts[0], 5)
    bad.command_id = "cmd\x00x"
    with pytest.raises(ValueError, match="NUL"):
        pg_ledger.submit(tenant, [salary(cmd, accounts[0], 5), bad])
    assert rows_of(pg_database, tenant) == before
    assert pg_ledger.submit(tenant, [salary(cmd, accounts[0], 5)])[0].accepted


def test_a_failed_write_rolls_back_everything_and_the_next_batch_is_right(
    pg_database: PgDatabase,
    pg_ledger: PostgresLedger,
    new_tenant: Callable[[], tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure after the events were inserted leaves no row behind; the cache is dropped.

    The same batch then goes through and gives the answers embedded gives.
    """
    tenant, code = new_tenant()
    embedded = EmbeddedPlatform()
    cmd, _c, accounts = bank(embedded, tenant, code)
    cmd2, _c2, accounts2 = bank(pg_ledger, tenant, code)
    assert accounts == accounts2
    batch = [salary(cmd, accounts[0], 100 + i) for i in range(5)]
    before = rows_of(pg_database, tenant)

    def broken(*_args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pg_ledger, "_write_read_model", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        pg_ledger.submit(tenant, batch)
    assert rows_of(pg_database, tenant) == before
    assert pg_ledger.cache.state(tenant) is None
    monkeypatch.undo()
    assert pg_ledger.submit(tenant, batch) == embedded.submit(tenant, batch)
    assert pg_ledger.head(tenant) == embedded.head(tenant)


def test_tenant_codes_are_unique_across_processes(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A code taken through one ledger is refused through another that never saw it."""
    (x, code), (y, _unused) = new_tenant(), new_tenant()
    with PostgresLedger(pg_database.dsn) as one, PostgresLedger(pg_database.dsn) as two:
        assert one.submit(x, [Commands(x).create_tenant(code)])[0].accepted
        (result,) = two.submit(y, [Commands(y).create_tenant(code)])
    assert result.rule == "TENANT_CODE_TAKEN"


def test_losing_the_race_for_a_tenant_code_is_retried_and_refused(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Another session claims the code between check and claim: the batch runs again, refused.

    The other session's claim is held uncommitted, so the ledger's check
    says free, its claim waits on the unique index, and fails once the
    other commits; the retry then sees the code taken.
    """
    (tenant, code), (rival, _unused) = new_tenant(), new_tenant()
    with pg_database.admin() as admin, psycopg.connect(pg_database.dsn) as holder:
        holder.execute(
            "INSERT INTO turingcore.tenant_codes (code, tenant_id) VALUES (%s, %s)", (code, rival)
        )
        answers: list[list[CommandResult]] = []
        thread = threading.Thread(
            target=lambda: answers.append(
                pg_ledger.submit(tenant, [Commands(tenant).create_tenant(code)])
            )
        )
        thread.start()
        wait_until(
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND usename = %s AND wait_event_type = 'Lock'",
                    (pg_database.name, APP_ROLE),
                ).fetchone()[0]
                > 0
            ),
            "the ledger's claim to wait for the rival's",
        )
        holder.commit()
        thread.join(30)
    assert [r.rule for r in answers[0]] == ["TENANT_CODE_TAKEN"]
    assert pg_ledger.head(tenant) == (0, GENESIS_HASH)
    with pg_database.admin() as admin:
        admin.execute("DELETE FROM turingcore.tenant_codes WHERE tenant_id = %s", (rival,))


def test_a_tampered_stored_event_stops_a_reload(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """A changed byte in a stored event is found when a cold cache folds the chain."""
    tenant, code = new_tenant()
    with PostgresLedger(pg_database.dsn) as ledger:
        cmd, _c, accounts = bank(ledger, tenant, code)
    with pg_database.admin() as admin:
        admin.execute(
            "UPDATE turingcore.events SET canonical = convert_to(replace("
            "convert_from(canonical, 'UTF8'), '50000', '90000'), 'UTF8')"
            " WHERE tenant_id = %s AND event_type = 'AccountBalanceUpdated'",
            (tenant,),
        )
    with PostgresLedger(pg_database.dsn) as cold:
        with pytest.raises(ChainMismatch, match="does not verify"):
            cold.submit(tenant, [salary(cmd, accounts[0], 1)])
        assert cold.cache.state(tenant) is None


def test_a_process_with_other_monitor_settings_is_stopped(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Re-warming the monitor under other thresholds derives other alerts: refused, not forked."""
    tenant, code = new_tenant()
    with PostgresLedger(pg_database.dsn) as ledger:
        cmd, _c, accounts = bank(ledger, tenant, code)
        card = [(accounts[0], "CREDIT", 100), ("GL_CARD_CLEARING", "DEBIT", 100)]
        burst = [tagged(cmd, card, {"channel": "CARD"}, at(1, f"10:0{m}:00")) for m in range(6)]
        ledger.submit(tenant, burst)
    strict = MonitorConfig(card_velocity_limit=2)
    with (
        PostgresLedger(pg_database.dsn, monitor=strict) as other,
        pytest.raises(ChainMismatch, match="monitor"),
    ):
        other.submit(tenant, [salary(cmd, accounts[0], 1)])


# --------------------------------------------------------------------------- reads


def test_reads_page_like_embedded_and_unknown_tenants_are_not_found(
    pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Limits and offsets as embedded; out-of-range limits refused; unknown tenants NotFound."""
    tenant, code = new_tenant()
    embedded = EmbeddedPlatform()
    bank(embedded, tenant, code, customers=5)
    bank(pg_ledger, tenant, code, customers=5)
    for limit, offset in ((2, 0), (2, 4), (1000, 0), (3, 10)):
        assert pg_ledger.customers(tenant, limit, offset) == embedded.customers(
            tenant, limit, offset
        )
        assert pg_ledger.accounts(tenant, None, limit, offset) == embedded.accounts(
            tenant, None, limit, offset
        )
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            pg_ledger.customers(tenant, limit=bad)
        with pytest.raises(ValueError, match="limit"):
            pg_ledger.accounts(tenant, limit=bad)
    nobody = f"cu-nobody-{secrets.token_hex(3)}"
    with pytest.raises(NotFound):
        pg_ledger.customers(nobody)
    with pytest.raises(NotFound):
        pg_ledger.accounts(nobody)
    assert pg_ledger.head(nobody) == (0, GENESIS_HASH)
    assert pg_ledger.tenant_events(nobody) == []
    with pytest.raises(NotFound):
        pg_ledger.account_events(nobody, "GL_CARD_CLEARING")


# --------------------------------------------------------------------------- concurrency


def post_many(
    ledger: PostgresLedger, tenant: str, tag: str, accounts: list[str], batches: int, size: int
) -> list[CommandResult]:
    """`batches` batches of `size` salaries, command ids unique by `tag`."""
    cmd = Commands(tenant, tag=tag)
    results: list[CommandResult] = []
    for b in range(batches):
        batch = [salary(cmd, accounts[(b + i) % len(accounts)], 100 + i) for i in range(size)]
        results += ledger.submit(tenant, batch)
    return results


def assert_gap_free(
    pg_ledger: PostgresLedger, tenant: str, seq_before: int, results: list[CommandResult]
) -> None:
    """Every answer accepted; their seq stretches tile seq_before+1..head with no gap or overlap."""
    assert all(r.accepted for r in results)
    stretches = sorted((r.first_seq, r.last_seq) for r in results)
    expected_next = seq_before + 1
    for first, last in stretches:
        assert first == expected_next
        expected_next = last + 1
    events = verified(pg_ledger, tenant)
    assert len(events) == expected_next - 1
    assert [msgspec.json.decode(e)["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("shared", [True, False], ids=["one-ledger", "a-ledger-each"])
def test_threads_on_one_tenant_keep_seq_gap_free(
    pg_database: PgDatabase,
    pg_ledger: PostgresLedger,
    new_tenant: Callable[[], tuple[str, str]],
    shared: bool,
) -> None:
    """Four threads submitting to one tenant (sharing a ledger, or one each): seq 1..N.

    With a ledger each, every thread's cache falls behind the others' and
    catches up under the lock; balances must still be the sums posted.
    """
    tenant, code = new_tenant()
    _cmd, _customers, accounts = bank(pg_ledger, tenant, code, customers=3, deposit=1_000)
    seq_before = pg_ledger.head(tenant)[0]
    ledgers = [pg_ledger] * 4 if shared else [PostgresLedger(pg_database.dsn) for _ in range(4)]
    results: list[CommandResult] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results.extend(post_many(ledgers[n], tenant, f"t{n}", accounts, 8, 5))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        if not shared:
            for ledger in ledgers:
                ledger.close()
    assert errors == []
    assert len(results) == 4 * 8 * 5
    assert_gap_free(pg_ledger, tenant, seq_before, results)
    posted = {a: 1_000 for a in accounts}
    for b in range(8):
        for i in range(5):
            posted[accounts[(b + i) % 3]] += 4 * (100 + i)
    balances = {a["accountId"]: a["balance"] for a in pg_ledger.accounts(tenant)["accounts"]}
    assert balances == {a: Decimal(c) / 100 for a, c in posted.items()}


WORKER = """
import json, sys
from test_pgstore import post_many
from turingcore.pgstore import PostgresLedger
dsn, tenant, tag, *accounts = sys.argv[1:]
with PostgresLedger(dsn) as ledger:
    ledger.head(tenant)  # connected: ready
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\\n"
    results = post_many(ledger, tenant, tag, accounts, 10, 5)
print(json.dumps([[r.status, r.first_seq, r.last_seq] for r in results]))
"""


def test_processes_on_one_tenant_keep_seq_gap_free(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """Two OS processes (each its own cache and pool) and this one write one tenant at once."""
    tenant, code = new_tenant()
    _cmd, _customers, accounts = bank(pg_ledger, tenant, code, customers=3)
    seq_before = pg_ledger.head(tenant)[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_database.dsn, tenant, f"p{n}", *accounts],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for worker in workers:  # all three start writing together
        assert worker.stdout.readline() == "ready\n", worker.stderr.read()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = post_many(pg_ledger, tenant, "here", accounts, 10, 5)
    for worker in workers:
        out, err = worker.communicate(timeout=120)  # closes stdin
        assert worker.returncode == 0, err
        results += [
            CommandResult("", status, "", "", first_seq=first, last_seq=last)
            for status, first, last in json.loads(out)
        ]
    assert len(results) == 3 * 10 * 5
    assert_gap_free(pg_ledger, tenant, seq_before, results)


def test_two_tenants_do_not_wait_for_each_other(
    pg_database: PgDatabase, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """While A's chain lock is held, B's batches go through and A's waits (seen as a lock wait)."""
    (a, code_a), (b, code_b) = new_tenant(), new_tenant()
    with PostgresLedger(pg_database.dsn, max_size=4) as ledger:
        cmd_a, _ca, accounts_a = bank(ledger, a, code_a)
        cmd_b, _cb, accounts_b = bank(ledger, b, code_b)
        with pg_database.as_app(autocommit=False) as holder, pg_database.admin() as admin:
            holder.execute(pgstore._SET_TENANT, (a,))
            holder.execute(
                "SELECT seq FROM turingcore.chain_heads WHERE tenant_id = %s FOR UPDATE", (a,)
            )
            done: dict[str, list[CommandResult]] = {}

            def submit(tenant: str, batch: list[Envelope]) -> None:
                done[tenant] = ledger.submit(tenant, batch)

            for tenant, cmd, accounts in ((a, cmd_a, accounts_a), (b, cmd_b, accounts_b)):
                batch = [salary(cmd, accounts[0], 10)]
                threading.Thread(target=submit, args=(tenant, batch), daemon=True).start()
            wait_until(lambda: b in done, "B's batch while A's lock is held")
            wait_until(
                lambda: (
                    admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s"
                        " AND wait_event_type = 'Lock' AND query LIKE %s",
                        (pg_database.name, APP_ROLE, "%chain_heads%FOR UPDATE%"),
                    ).fetchone()[0]
                    == 1
                ),
                "A's batch to wait on A's chain lock",
            )
            assert a not in done
            holder.rollback()
            wait_until(lambda: a in done, "A's batch after the lock was released")
        assert done[a][0].accepted
        assert done[b][0].accepted


# --------------------------------------------------------------------------- the relay's outbox


def test_outbox_rows_in_seq_order_and_marks_that_only_move_forward(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """unsent() pages across batch rows in seq order; mark_sent never goes back or past the head."""
    tenant, code = new_tenant()
    cmd, _customers, accounts = bank(pg_ledger, tenant, code)
    post_many(pg_ledger, tenant, "o", accounts, 3, 4)
    events = verified(pg_ledger, tenant)
    head = pg_ledger.head(tenant)
    with PostgresOutbox(pg_database.dsn) as outbox:
        assert tenant in outbox.tenants_with_unsent()
        assert outbox.head(tenant) == head
        rows = outbox.unsent(tenant)
        assert [r.seq for r in rows] == list(range(1, head[0] + 1))
        assert [r.value for r in rows] == events
        assert all(r.tenant_id == tenant for r in rows)
        assert [r.entity_id for r in rows] == [msgspec.json.decode(e)["entityId"] for e in events]
        assert [r.seq for r in outbox.unsent(tenant, limit=5)] == [1, 2, 3, 4, 5]
        outbox.mark_sent(tenant, 7)
        assert outbox.unsent(tenant)[0].seq == 8
        outbox.mark_sent(tenant, 3)  # backwards: ignored
        assert outbox.unsent(tenant)[0].seq == 8
        outbox.mark_sent(tenant, head[0] + 1_000)  # beyond the head: only to the head
        assert outbox.unsent(tenant) == []
        assert tenant not in outbox.tenants_with_unsent()
        assert outbox.mark_unsent_from(tenant, head[0] - 2) == 3
        assert [r.seq for r in outbox.unsent(tenant)] == [head[0] - 2, head[0] - 1, head[0]]
        assert outbox.mark_unsent_from(tenant, head[0] + 5) == 0
        with pytest.raises(ValueError, match="first_seq"):
            outbox.mark_unsent_from(tenant, 0)
        assert outbox.mark_unsent_from(tenant, 1) == head[0] - 3
        assert len(outbox.unsent(tenant)) == head[0]
        pg_ledger.submit(tenant, [salary(cmd, accounts[0], 5)])
        assert outbox.head(tenant) == pg_ledger.head(tenant)
        assert outbox.unsent(tenant)[-1].value == verified(pg_ledger, tenant)[-1]
        nobody = f"cu-nobody-{secrets.token_hex(3)}"
        assert outbox.unsent(nobody) == []
        assert outbox.head(nobody) == (0, GENESIS_HASH)


def test_an_empty_batch_touches_nothing(
    pg_database: PgDatabase, pg_ledger: PostgresLedger, new_tenant: Callable[[], tuple[str, str]]
) -> None:
    """submit with no commands answers [] and writes no row, not even a chain head."""
    tenant, _code = new_tenant()
    assert pg_ledger.submit(tenant, []) == []
    assert set(rows_of(pg_database, tenant).values()) == {0}


def test_the_store_reads_an_admin_dsn_with_the_service_role(pg_database: PgDatabase) -> None:
    """Given the admin's DSN, the ledger connects as turingcore_app (never as the admin)."""
    with PostgresLedger(pg_database.dsn) as ledger, ledger.pool.connection() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == APP_ROLE
        assert ledger.role == APP_ROLE
