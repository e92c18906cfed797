"""PostgreSQL for the tests: a fresh database per test session, migrated, dropped at the end.

Registered in conftest.py (`pytest_plugins`), so any test module can ask for
`pg_database` (the migrated scratch database) or `pg_ledger` (a
`PostgresLedger` on it, connected as the service role). When the server is
unreachable the tests that need it are skipped locally and fail in CI
(`services.service_missing`).

The admin DSN defaults to the local trust-auth superuser;
`TURINGCORE_TEST_PG_DSN` points the suite elsewhere. Each session (each
xdist worker) gets its own database, named after its pid and a random
suffix. Roles are cluster-wide and shared by every session (migrations
create them idempotently), so they are never dropped here; tests that need
roles of their own create uniquely named ones and drop them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from services import service_missing

from turingcore.pgstore import APP_ROLE, PostgresLedger, migrate

ADMIN_DSN = os.environ.get(
    "TURINGCORE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class PgDatabase:
    """The session's scratch database: its name and an admin DSN into it."""

    name: str
    dsn: str

    def admin(self) -> psycopg.Connection:
        """An autocommit connection as the admin (superuser: sees every tenant)."""
        return psycopg.connect(self.dsn, autocommit=True)

    def as_app(self, autocommit: bool = True) -> psycopg.Connection:
        """A raw connection as the service role, as an attacker holding its login would have."""
        return psycopg.connect(self.dsn, user=APP_ROLE, autocommit=autocommit)


def admin_connection() -> psycopg.Connection:
    """An autocommit connection to the admin DSN, or skip/fail when PostgreSQL is missing."""
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", f"{ADMIN_DSN}: {' '.join(str(exc).split())}")


def create_database(admin: psycopg.Connection, prefix: str) -> str:
    """Create an empty, uniquely named database; its name."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin: psycopg.Connection, name: str) -> None:
    """Drop a database this session made, closing whatever is still connected to it."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def dsn_of(name: str) -> str:
    """The admin DSN pointed at database `name`."""
    return make_conninfo(ADMIN_DSN, dbname=name)


@contextmanager
def migrated_database(prefix: str) -> Iterator[PgDatabase]:
    """A new database named after `prefix`, migrated; dropped on the way out."""
    admin = admin_connection()
    name = create_database(admin, prefix)
    try:
        dsn = dsn_of(name)
        migrate(dsn)
        yield PgDatabase(name, dsn)
    finally:
        drop_database(admin, name)
        admin.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A fresh database for this session, migrated; dropped when the session ends."""
    with migrated_database("tc_test") as database:
        yield database


@pytest.fixture
def fresh_pg_database() -> Iterator[PgDatabase]:
    """A database of this test's own, migrated; dropped after it.

    For tests that create tenants with fixed ids or codes (a scenario's
    `cu-a`/`CU_A`): tenant codes are unique on the platform, so such runs
    cannot share the session database.
    """
    with migrated_database("tc_fresh") as database:
        yield database


@pytest.fixture
def pg_ledger(pg_database: PgDatabase) -> Iterator[PostgresLedger]:
    """A `PostgresLedger` on the session database as `turingcore_app`, closed after the test."""
    ledger = PostgresLedger(pg_database.dsn)
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def new_tenant() -> Callable[[], tuple[str, str]]:
    """Makes (tenant id, tenant code) pairs unique in the session database.

    Tenant codes are unique on the platform, and the database is shared by
    every test of the session, so each test names its tenants afresh.
    """

    def make() -> tuple[str, str]:
        tag = secrets.token_hex(4)
        return f"cu-{tag}", f"CU_{tag.upper()}"

    return make
