"""The PostgreSQL store of TuringCore: the ledger behind the HTTP service, with row-level security.

`PostgresLedger` implements `turingcore.ledger.Ledger`; `PostgresOutbox`
implements `turingcore.ledger.Outbox` for the Kafka relay. `migrate` applies
`turingcore/migrations/*.sql`; `catalogue_problems` is the check that the
database still holds tenants apart (`turingcore db check`).

Schema (`turingcore`, owned by the NOLOGIN role `turingcore_owner`):

- `events` (tenant_id, seq, event_id, event_type, entity_id, occurred_at,
  causation_id, prev_hash, hash, canonical): one row per sealed event; the
  canonical bytes are exactly what was hashed, so a row re-verifies by itself.
  Append-only: the service may INSERT and SELECT, nothing else.
- `chain_heads` (tenant_id, seq, hash): the lock row of each tenant's chain.
- `products`, `customers`, `accounts` (balance_cents): the read model, the
  fold of the events, written in the same transaction as they are.
- `idempotency` (tenant_id, idempotency_key) unique: the first answer to a
  key (and its day: keys are retained `idempotency_days` of command time,
  as the embedded shell retains them).
- `rejections`: commands refused by a business rule (audit, not state).
- `outbox`: one row per committed batch, its events' EventEnvelope JSON one
  per line (the relay still reads it event by event, in seq order; one row
  per batch costs the write path one insert instead of thousands);
  `outbox_marks` (tenant_id, sent_seq): how far the relay got.
- `tenant_codes` (platform level): which tenant holds which tenantCode.
- `schema_migrations` (version, name, checksum, applied_at).

Row-level security. Every tenant table has `tenant_id`, ENABLE and FORCE ROW
LEVEL SECURITY and the policy `tenant_isolation` (FOR ALL, USING and WITH
CHECK on `tenant_id = current_setting('app.tenant_id', true)`). The service
connects as `turingcore_app`: LOGIN, not owner, not superuser, NOBYPASSRLS,
member of no role. Each transaction starts with
`set_config('app.tenant_id', <authenticated tenant>, true)`: transaction-local,
so a pooled connection carries no tenant into the next request (the pool also
runs RESET ALL when a connection comes back). Unset, the setting reads as
NULL or '' and matches no row; a tenant string is only ever a bound
parameter compared for equality, so quotes, `%` or SQL in it match nothing.
What this does not defend against: arbitrary SQL run *as the service role*
can set the setting to any tenant (it is a session variable, not a
credential). RLS here holds against the service's own bugs: a query that
forgets its WHERE clause, a misrouted pooled connection, an injected
predicate. Per-tenant roles would be the next step and cost a pool per tenant.

TRUNCATE and foreign keys see past row security, so no role but the owner has
TRUNCATE, REFERENCES or TRIGGER on any table. `tenant_codes` has no row
security: it is platform data that neither login role may touch at all; the
SECURITY DEFINER functions `tenant_code_taken(code)` and
`claim_tenant_code(code)` answer for the caller's own tenant only. They reveal
one bit per code (taken or not), which TENANT_CODE_TAKEN tells anyway, and
never which tenant holds a code. The code is claimed in the transaction that
writes the TenantCreated; a tenant that loses a race for it (unique
violation) has its batch run again, and then sees the code taken.

The relay. It must list unsent events across tenants and publish every
tenant's events, so it necessarily reads all of them. Rather than give the
service role any way around its policy, the relay has its own role,
`turingcore_relay` (same restrictions), with policies of its own on the two
outbox tables only: SELECT on `outbox`, SELECT and UPDATE of `sent_seq` on
`outbox_marks`. It can read no customer, account or event row and write no
ledger row. (The alternative, per-tenant transactions over a tenant list,
would still need a cross-tenant list of tenants and costs a transaction per
tenant per poll.) `mark_sent` only ever raises `sent_seq` (GREATEST) and never
past the last written seq; `mark_unsent_from` lowers it, for a broker that
came back empty. Because sent-ness is one mark per tenant, marking 100,000
events sent is one row update, and the write path never touches a row the
relay updates (no lock contention between them).

The write path. A process keeps one `EmbeddedPlatform` as a cache of tenant
state (`_TenantCache`): `decide` needs counts, uniqueness sets and balances,
and the transaction monitor is stateful. For each batch, in one transaction:

1. set the tenant; lock its chain head (`SELECT ... FOR UPDATE` of its
   `chain_heads` row) -- the lock that keeps seq gap-free whatever the number
   of threads and processes, and that tenants never share;
2. if the stored head differs from the cache's, catch the cache up by folding
   the stored events after the cache's seq through `evolve` (every hash
   re-verified) and re-warming the monitor from the stored EntryPosted
   events; the alerts it re-derives must equal the stored ones, else the
   processes run different monitor settings and the store refuses to go on;
3. look up the batch's idempotency keys in one query: the table is
   authoritative; commands answered there are not run again (keys expire
   after `idempotency_days` of command time, like the embedded shell's);
4. run the rest through the cache (duplicates inside the batch are answered
   by the cache's per-batch key table), capturing sealed events and refusals;
5. write events (binary COPY into a session temp table, then one INSERT ...
   SELECT: COPY FROM is refused on tables with row security, and the INSERT
   applies WITH CHECK to every row), the outbox row, the read model (one
   UPDATE ... FROM json_to_recordset for every balance the batch moved: one
   JSON text parameter, since psycopg dumps Python lists into arrays element
   by element in Python), idempotency answers (COPY as well) and refusals;
   move the chain head; commit.

On any failure the tenant is evicted from the cache, so the next batch
reloads it from the database: the database is always the truth. The same
commands in the same order give the same events, byte for byte, as the
embedded platform (tested by comparing chain heads).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any, NamedTuple

import msgspec
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from turingcore.contract import CommandResult, Envelope, Leg
from turingcore.domain import Pending, PlatformState, TenantState, evolve
from turingcore.embedded import EmbeddedPlatform, IdempotencyKeys
from turingcore.events import GENESIS_HASH, GENESIS_RAW, Event, SealedEvent, envelope_json
from turingcore.ledger import NotFound, OutboxRow
from turingcore.money import format_cents
from turingcore.monitor import MONITOR_EVENT_TYPES, MonitorConfig, TransactionMonitor

SCHEMA = "turingcore"
OWNER_ROLE = "turingcore_owner"
APP_ROLE = "turingcore_app"
RELAY_ROLE = "turingcore_relay"
TENANT_SETTING = "app.tenant_id"
#: The tenant predicate as PostgreSQL prints a policy expression back.
TENANT_PREDICATE = "(tenant_id = current_setting('app.tenant_id'::text, true))"
#: Tables every migrated database has; all but the platform ones are tenant tables.
TENANT_TABLES = (
    "chain_heads",
    "events",
    "products",
    "customers",
    "accounts",
    "idempotency",
    "rejections",
    "outbox",
    "outbox_marks",
)
#: Platform-level tables: they hold a tenant_id, have no row security, and no
#: login role may have any privilege on them (the catalogue check enforces it).
PLATFORM_TABLES = frozenset({"tenant_codes"})
#: Tables on which the relay role has policies of its own (cross-tenant by design).
RELAY_TABLES = frozenset({"outbox", "outbox_marks"})

_MIGRATION_LOCK = 0x7475_7269_6E67  # pg_advisory_xact_lock key of `db migrate` ("turing")
_SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
_GL = "GL"


class StoreError(RuntimeError):
    """The database cannot be used as asked (unreachable, not migrated, unsafe)."""


class UnsafeDatabase(StoreError):
    """The catalogue lets a login role past row-level security; the store refuses to serve."""


class ChainMismatch(StoreError):
    """The stored chain does not verify, or does not replay to the same monitor alerts."""


# --------------------------------------------------------------------------- connecting


def describe(dsn: str) -> str:
    """`user@host:port/dbname` of a DSN, for messages (never the password).

    Raises:
        StoreError: the DSN does not parse.
    """
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"--dsn is not a PostgreSQL connection string: {exc}") from None
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    return (
        f"{parts.get('user', '')}@{host}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
    ).lstrip("@")


def connect(dsn: str, *, user: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    """A connection, with unusable DSNs and unreachable servers as `StoreError`.

    Args:
        dsn: a libpq connection string or URI.
        user: connect as this role instead of the DSN's.
        autocommit: psycopg's autocommit mode.
    """
    where = describe(dsn)
    extra: dict[str, Any] = {"connect_timeout": 5}
    if user is not None:
        extra["user"] = user
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **extra)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {reason}") from None


# --------------------------------------------------------------------------- migrations


class Migration(NamedTuple):
    """One versioned migration file: `NNNN_name.sql`."""

    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The versioned migrations shipped in `turingcore/migrations`, in version order."""
    folder = resources.files("turingcore").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append(Migration(int(name[:4]), name[:-4], entry.read_text(encoding="utf-8")))
    return sorted(found)


def _roles_sql() -> str:
    return resources.files("turingcore").joinpath("migrations/roles.sql").read_text("utf-8")


def migrate(dsn: str) -> list[str]:
    """Create the roles and apply every migration not yet applied; the names applied.

    Run as a role that may create roles (e.g. `postgres`). Idempotent: a
    second run applies nothing. Safe when two sessions migrate at once: the
    roles go in their own short transaction (see roles.sql), and the versioned
    migrations run under a transaction-level advisory lock of the database.

    Raises:
        StoreError: unreachable database, insufficient privilege, or an
            applied migration whose file has changed since.
    """
    with connect(dsn) as conn:
        try:
            with conn.transaction():
                conn.execute(_roles_sql())
            with conn.transaction():
                return _apply_migrations(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(
                f"{describe(dsn)} may not migrate (run as a role that can create roles, "
                f"e.g. postgres): {exc}"
            ) from None


def _apply_migrations(conn: psycopg.Connection) -> list[str]:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    conn.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(SCHEMA), sql.Identifier(OWNER_ROLE)
        )
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS turingcore.schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    conn.execute(
        sql.SQL("ALTER TABLE turingcore.schema_migrations OWNER TO {}").format(
            sql.Identifier(OWNER_ROLE)
        )
    )
    applied = {
        version: (name, checksum)
        for version, name, checksum in conn.execute(
            "SELECT version, name, checksum FROM turingcore.schema_migrations"
        )
    }
    done = []
    for migration in migrations():
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                raise StoreError(
                    f"migration {migration.name} was applied as {name} with another content "
                    f"(checksum {checksum[:12]}, file {migration.checksum[:12]}): "
                    "migrations are never edited once applied; add a new one"
                )
            continue
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute(migration.text)
        conn.execute("RESET ROLE")
        conn.execute(
            "INSERT INTO turingcore.schema_migrations (version, name, checksum)"
            " VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        done.append(migration.name)
    # the session temp tables of the write path (and nothing else)
    conn.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(APP_ROLE), sql.Identifier(RELAY_ROLE)
        )
    )
    return done


# --------------------------------------------------------------------------- catalogue check

_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_DANGEROUS_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")
_ALL_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
#: Predefined roles whose members read or write every table regardless of grants.
_ALL_DATA_ROLES = ("pg_read_all_data", "pg_write_all_data")


def _normalise(expression: str | None) -> str:
    return " ".join((expression or "").split())


def catalogue_problems(
    conn: psycopg.Connection,
    *,
    schema: str = SCHEMA,
    service_role: str = APP_ROLE,
    relay_role: str | None = RELAY_ROLE,
    platform_tables: frozenset[str] = PLATFORM_TABLES,
    relay_tables: frozenset[str] = RELAY_TABLES,
    expected_tables: Sequence[str] = TENANT_TABLES,
) -> list[str]:
    """Everything in the catalogue that would let a login role past row-level security.

    Empty when the database holds tenants apart. Checked:

    - every table of `schema` with a `tenant_id` column (except the platform
      tables) has row security enabled *and* forced, has policies, and every
      permissive policy that applies to the service role has USING and (for
      writes) WITH CHECK equal to the tenant predicate; policies that do not
      apply to it are the relay's own, on the relay tables only;
    - no login role has TRUNCATE, REFERENCES or TRIGGER on a tenant table (they
      see past row security), nor any privilege on a platform table;
    - the service and relay roles exist, are not superuser, have no BYPASSRLS,
      cannot become (are not members of) a role that is superuser, bypasses
      RLS, reads or writes all data, or owns a table of the schema; own no
      table or view anywhere in the database; and may not CREATE in the schema.

    Args:
        conn: any connection (catalogue reads need no privilege).
        schema: the schema to check.
        service_role: the role the service connects as.
        relay_role: the relay's role, or None when there is none.
        platform_tables: tables allowed to hold tenant_id without row security.
        relay_tables: tables on which the relay role may have its own policies.
        expected_tables: tables that must exist in the schema (a missing one
            means an unmigrated database).
    """
    problems: list[str] = []
    roles = [service_role] + ([relay_role] if relay_role else [])
    found_roles = {
        name: (oid, superuser, bypass)
        for oid, name, superuser, bypass in conn.execute(
            "SELECT oid, rolname, rolsuper, rolbypassrls FROM pg_catalog.pg_roles"
            " WHERE rolname = ANY(%s)",
            (roles,),
        )
    }
    for role in roles:
        if role not in found_roles:
            problems.append(f"role {role} does not exist (run turingcore db migrate)")
            continue
        _oid, superuser, bypass = found_roles[role]
        if superuser:
            problems.append(f"role {role} is a superuser")
        if bypass:
            problems.append(f"role {role} has BYPASSRLS")
    present = {role for role in roles if role in found_roles}
    tables = conn.execute(
        """SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  pg_catalog.pg_get_userbyid(c.relowner)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                           AND NOT a.attisdropped)
           ORDER BY c.relname""",
        (schema,),
    ).fetchall()
    names = {row[1] for row in tables}
    for missing in (name for name in expected_tables if name not in names):
        problems.append(f"table {schema}.{missing} does not exist (run turingcore db migrate)")
    owners = {row[4] for row in tables}
    for oid, name, enabled, forced, _owner in tables:
        where = f"{schema}.{name}"
        if name in platform_tables:
            for role in present:
                if _has_any_privilege(conn, role, oid):
                    problems.append(f"{where} is platform data, but {role} has privileges on it")
            continue
        if not enabled:
            problems.append(f"{where} has a tenant_id but row level security is not enabled")
        if not forced:
            problems.append(f"{where} has a tenant_id but row level security is not forced")
        problems.extend(
            _policy_problems(conn, oid, where, name, service_role, relay_role, relay_tables)
        )
        for role in present:
            for privilege in _DANGEROUS_PRIVILEGES:
                if conn.execute(
                    "SELECT pg_catalog.has_table_privilege(%s, %s::oid, %s)",
                    (role, oid, privilege),
                ).fetchone()[0]:
                    problems.append(f"{role} has {privilege} on {where} (it sees past RLS)")
    for role in present:
        problems.extend(_role_problems(conn, role, schema, sorted(owners)))
    return problems


def _has_any_privilege(conn: psycopg.Connection, role: str, oid: int) -> bool:
    row = conn.execute(
        "SELECT pg_catalog.has_table_privilege(%s, %s::oid, %s)"
        " OR pg_catalog.has_any_column_privilege(%s, %s::oid,"
        " 'SELECT, INSERT, UPDATE, REFERENCES')",
        (role, oid, _ALL_PRIVILEGES, role, oid),
    ).fetchone()
    return bool(row[0])


def _policy_problems(
    conn: psycopg.Connection,
    oid: int,
    where: str,
    name: str,
    service_role: str,
    relay_role: str | None,
    relay_tables: frozenset[str],
) -> list[str]:
    policies = conn.execute(
        """SELECT p.polname, p.polcmd, p.polpermissive,
                  0 = ANY(p.polroles)
                    OR EXISTS (SELECT 1 FROM unnest(p.polroles) r
                               WHERE pg_catalog.pg_has_role(%s, r, 'MEMBER')),
                  ARRAY(SELECT pg_catalog.pg_get_userbyid(r) FROM unnest(p.polroles) r
                        WHERE r <> 0 ORDER BY 1),
                  pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                  pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
           FROM pg_catalog.pg_policy p WHERE p.polrelid = %s ORDER BY p.polname""",
        (service_role, oid),
    ).fetchall()
    if not policies:
        return [f"{where} has a tenant_id but no row level security policy"]
    problems = []
    for policy, command, permissive, applies, named, using, check in policies:
        label = f"{where} policy {policy} ({_POLICY_COMMANDS.get(command, command)})"
        if not applies:
            if relay_role is not None and named == [relay_role] and name in relay_tables:
                continue  # the relay's own cross-tenant policy
            if _normalise(using) in ("", TENANT_PREDICATE) and _normalise(check) in (
                "",
                TENANT_PREDICATE,
            ):
                continue
            problems.append(f"{label} is not the tenant predicate and is not the relay's")
            continue
        if not permissive:
            continue  # a restrictive policy can only narrow what is visible
        if command in ("*", "r", "w", "d") and _normalise(using) != TENANT_PREDICATE:
            problems.append(f"{label}: USING is {using!r}, not the tenant predicate")
        if command in ("*", "a", "w") and _normalise(check) != TENANT_PREDICATE:
            problems.append(
                f"{label}: WITH CHECK is {check!r}, not the tenant predicate"
                if check
                else f"{label} has no WITH CHECK"
            )
    return problems


def _role_problems(
    conn: psycopg.Connection, role: str, schema: str, owners: list[str]
) -> list[str]:
    problems = []
    owned = conn.execute(
        """SELECT n.nspname || '.' || c.relname
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't'
           ORDER BY 1""",
        (role,),
    ).fetchall()
    problems.extend(f"{role} owns {name}" for (name,) in owned)
    risky = conn.execute(
        """SELECT r.rolname FROM pg_catalog.pg_roles r
           WHERE r.rolname <> %s
             AND (r.rolsuper OR r.rolbypassrls OR r.rolname = ANY(%s) OR r.rolname = ANY(%s))
             AND pg_catalog.pg_has_role(%s, r.oid, 'MEMBER')
           ORDER BY 1""",
        (role, list(_ALL_DATA_ROLES), owners, role),
    ).fetchall()
    problems.extend(
        f"{role} is a member of {other}, which can read past row security" for (other,) in risky
    )
    schema_create = conn.execute(
        """SELECT pg_catalog.has_schema_privilege(%s, n.oid, 'CREATE')
           FROM pg_catalog.pg_namespace n WHERE n.nspname = %s""",
        (role, schema),
    ).fetchone()
    if schema_create is not None and schema_create[0]:
        problems.append(f"{role} may CREATE in schema {schema} (it could own tables)")
    return problems


def check_catalogue(dsn: str) -> list[str]:
    """`catalogue_problems` of the database at `dsn` (for `turingcore db check`)."""
    with connect(dsn, autocommit=True) as conn:
        return catalogue_problems(conn)


# --------------------------------------------------------------------------- write path helpers


class _Capture:
    """The cache's EventSink: holds what one batch sealed and refused, per tenant.

    Only one thread works on a tenant at a time (it holds the tenant's chain
    lock), so a dict per tenant needs no lock of its own.
    """

    def __init__(self) -> None:
        self.sealed: dict[str, list[SealedEvent]] = {}
        self.refused: dict[str, list[tuple[Envelope, CommandResult]]] = {}

    def append(self, tenant_id: str, events: Sequence[SealedEvent]) -> None:
        self.sealed.setdefault(tenant_id, []).extend(events)

    def rejected(self, tenant_id: str, envelope: Envelope, result: CommandResult) -> None:
        self.refused.setdefault(tenant_id, []).append((envelope, result))

    def take(
        self, tenant_id: str
    ) -> tuple[list[SealedEvent], list[tuple[Envelope, CommandResult]]]:
        return self.sealed.pop(tenant_id, []), self.refused.pop(tenant_id, [])

    def close(self) -> None:
        """Nothing to close: the ledger writes what was captured."""


class _ReplayedEntry(NamedTuple):
    """What the monitor reads of a PostEntry, rebuilt from its stored EntryPosted."""

    tags: dict[str, str] | None
    legs: list[Leg]


_DECODE = msgspec.json.Decoder()


class _OutboxLine(msgspec.Struct):
    """The two fields the relay needs from an outbox line (the rest is not decoded)."""

    entity_id: str = msgspec.field(name="entityId")
    seq: int = 0


_DECODE_LINE = msgspec.json.Decoder(_OutboxLine)

_KEY_COLUMNS = (
    "tenant_id",
    "idempotency_key",
    "key_day",
    "command_id",
    "status",
    "correlation_id",
    "accepted_at",
    "rule",
    "error",
    "message",
    "first_seq",
    "last_seq",
)
_KEY_TYPES = ["text"] * 10 + ["int8", "int8"]
_EVENT_TYPES = ["text", "int8", "text", "text", "text", "text", "text", "text", "text", "bytea"]
_ENCODE_JSON = msgspec.json.Encoder()


_TEMP_TABLES = f"""
CREATE TEMP TABLE IF NOT EXISTS tc_events_in (
    tenant_id text, seq bigint, event_id text, event_type text, entity_id text,
    occurred_at text, causation_id text, prev_hash text, hash text, canonical bytea
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tc_keys_in (
    {", ".join(f"{name} {'bigint' if name.endswith('seq') else 'text'}" for name in _KEY_COLUMNS)}
) ON COMMIT DELETE ROWS;
"""


def _cutoff(day: str, days: int) -> str:
    """The oldest key day still honoured for a command of `day` (the embedded rule)."""
    try:
        return (date.fromisoformat(day) - timedelta(days=days)).isoformat()
    except ValueError:
        return ""


def _check_tenant(tenant_id: str) -> None:
    if not isinstance(tenant_id, str) or not tenant_id or len(tenant_id) > 128:
        raise ValueError("tenant_id must be a non-empty string of at most 128 characters")
    if "\x00" in tenant_id:
        raise ValueError("tenant_id must not contain a NUL character")


def _require_tenant(cur: psycopg.Cursor[Any], tenant_id: str) -> None:
    """NotFound unless the tenant exists: its chain starts with TenantCreated (seq >= 1)."""
    row = cur.execute(
        "SELECT seq FROM turingcore.chain_heads WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    if row is None or row[0] < 1:
        raise NotFound(f"tenant {tenant_id} not found")


def _page(limit: int, offset: int, most: int = 1000) -> None:
    if not 1 <= limit <= most:
        raise ValueError(f"limit must be between 1 and {most}")
    if offset < 0:
        raise ValueError("offset must not be negative")


@dataclass(slots=True)
class _Touched:
    """What a batch's events changed in the read model, by id."""

    customers: list[tuple[str, int]]
    products: dict[str, int]
    new_accounts: dict[str, int]
    accounts: set[str]
    codes: list[str]


def _touched(sealed: Sequence[SealedEvent]) -> _Touched:
    """Walk a batch's events once: which rows of the read model they create or change."""
    found = _Touched([], {}, {}, set(), [])
    touched = found.accounts
    for item in sealed:
        event = item.event
        kind = event.event_type
        if kind == "AccountBalanceUpdated":
            touched.add(event.entity_id)
        elif kind == "EntryPosted" or kind in MONITOR_EVENT_TYPES or kind == "FundsPosted":
            continue
        elif kind == "AccountOpened":
            found.new_accounts[event.entity_id] = event.seq
        elif kind == "LoanFacilityCreated":
            touched.add(event.entity_id)
        elif kind == "CustomerCreated":
            found.customers.append((event.entity_id, event.seq))
        elif kind in ("ProductCreated", "ProductUpdated"):
            found.products[event.entity_id] = event.seq
        elif kind == "TenantCreated":
            for code in event.payload["glAccounts"]:
                found.new_accounts[code] = event.seq
            found.codes.append(event.payload["tenantCode"])
    touched.difference_update(found.new_accounts)
    return found


class _TenantCache:
    """A process's cache of tenant state: an `EmbeddedPlatform`, reached only through here.

    `decide` needs the tenant's counts, uniqueness sets and balances, and the
    transaction monitor is stateful; the embedded platform keeps exactly
    that. The store needs four things the embedded shell has no method for
    (install a tenant folded from the database, drop one, empty its key table
    before a batch, tell it which tenant codes other processes hold); they
    touch the platform's attributes, all of them in this class, so a change
    of the embedded shell's internals is a change here only.
    """

    def __init__(
        self, sink: _Capture, idempotency_days: int, monitor: MonitorConfig | None
    ) -> None:
        self.platform = EmbeddedPlatform(sink, idempotency_days, monitor)
        self.days = idempotency_days
        self._lock = threading.Lock()

    def state(self, tenant_id: str) -> TenantState | None:
        """The cached tenant state (the embedded read model), or None."""
        return self.platform.tenants.get(tenant_id)

    def monitor(self, tenant_id: str) -> TransactionMonitor:
        return self.platform.monitors[tenant_id]

    def new_monitor(self, state: TenantState) -> TransactionMonitor:
        """A monitor for `state`, built as the embedded shell builds one."""
        return TransactionMonitor(state.ident, Pending, self.platform.monitor_config)

    @property
    def platform_state(self) -> PlatformState:
        """What `evolve` updates across tenants (which tenant codes are taken)."""
        return self.platform.platform

    def install(self, state: TenantState, monitor: TransactionMonitor) -> None:
        """Make a tenant folded from the database the cached one."""
        tenant_id = state.tenant_id
        with self._lock:
            self.platform.tenants[tenant_id] = state
            self.platform.monitors[tenant_id] = monitor
            self.platform.keys[tenant_id] = IdempotencyKeys(self.days)

    def evict(self, tenant_id: str) -> None:
        """Forget a tenant, and the codes the cache thinks it holds."""
        platform = self.platform
        with self._lock:
            platform.tenants.pop(tenant_id, None)
            platform.keys.pop(tenant_id, None)
            platform.monitors.pop(tenant_id, None)
            codes = platform.platform.tenant_codes
            for code, owner in list(codes.items()):
                if owner == tenant_id:
                    codes.pop(code, None)

    def code_held_elsewhere(self, code: str, tenant_id: str, taken: bool) -> None:
        """Record what the database says of `code`: held by another tenant, or free."""
        codes = self.platform.platform.tenant_codes
        with self._lock:
            if taken:
                codes.setdefault(code, "")  # a tenant this process may never have seen
            elif codes.get(code) != tenant_id:
                codes.pop(code, None)

    def submit(self, tenant_id: str, commands: list[Envelope]) -> list[CommandResult]:
        """Decide and seal a batch in the cache; idempotency keys start empty.

        The database's key table already answered every key stored before
        this batch; the cache's own table then only catches duplicates
        inside the batch (with the embedded shell's retention rule).
        """
        self.platform.keys[tenant_id] = IdempotencyKeys(self.days)
        return self.platform.submit(tenant_id, commands)


# --------------------------------------------------------------------------- the ledger


class PostgresLedger:
    """`turingcore.ledger.Ledger` on PostgreSQL, tenants held apart by row-level security.

    Args:
        dsn: libpq connection string of the migrated database.
        user: the role to connect as (`turingcore_app`); None keeps the DSN's.
        min_size: connections the pool keeps open.
        max_size: at most this many connections (one per concurrent request).
        idempotency_days: days of command time a key is honoured (as embedded).
        monitor: the transaction monitor's thresholds; every process writing
            to one database must use the same (a reload checks it).
        verify_catalogue: run `catalogue_problems` at start and refuse to
            serve a database that would let this role past row security.

    Raises:
        StoreError: unreachable database, or `UnsafeDatabase` when the role is
            superuser / BYPASSRLS / an owner, or a tenant table is unprotected.
    """

    def __init__(
        self,
        dsn: str,
        *,
        user: str | None = APP_ROLE,
        min_size: int = 1,
        max_size: int = 4,
        idempotency_days: int = 2,
        monitor: MonitorConfig | None = None,
        verify_catalogue: bool = True,
    ) -> None:
        self.capture = _Capture()
        self.cache = _TenantCache(self.capture, idempotency_days, monitor)
        self.idempotency_days = idempotency_days
        with connect(dsn, user=user, autocommit=True) as probe:
            role = probe.execute("SELECT current_user").fetchone()[0]
            problems = catalogue_problems(probe, service_role=role) if verify_catalogue else []
            attributes = probe.execute(
                "SELECT rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = %s",
                (role,),
            ).fetchone()
        if attributes is not None and (attributes[0] or attributes[1]):
            problems.insert(0, f"{role} is a superuser or has BYPASSRLS")
        if problems:
            raise UnsafeDatabase(
                f"refusing to serve {describe(dsn)} as {role}: " + "; ".join(problems)
            )
        self.role = role
        kwargs: dict[str, Any] = {
            "connect_timeout": 5,
            "application_name": "turingcore-ledger",
            "autocommit": True,  # every unit of work is an explicit transaction
        }
        if user is not None:
            kwargs["user"] = user
        self.pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            configure=self._configure,
            reset=self._reset,
            open=True,
            name="turingcore-ledger",
        )

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute(_TEMP_TABLES)

    @staticmethod
    def _reset(conn: psycopg.Connection) -> None:
        """A connection back in the pool carries no session setting into the next request."""
        conn.execute("RESET ALL")

    @contextmanager
    def _tenant(self, tenant_id: str) -> Iterator[psycopg.Cursor]:
        """A cursor in a transaction whose `app.tenant_id` is `tenant_id` (and only it)."""
        _check_tenant(tenant_id)
        with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            cur.execute(_SET_TENANT, (tenant_id,))
            yield cur

    # ------------------------------------------------------------------ write side

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """Process a batch in order as `tenant_id`: one answer per command, same order.

        All of the batch's writes commit together or not at all. A batch that
        lost the race for a tenantCode to another tenant is run again (it
        then sees the code taken).

        Raises:
            ValueError: a bad tenant id, or text PostgreSQL cannot store (NUL).
            ChainMismatch: the stored chain does not verify or replay.
            psycopg.Error: the database failed; nothing of the batch was written.
        """
        _check_tenant(tenant_id)
        commands = list(commands)
        if not commands:
            return []
        for attempt in range(3):
            try:
                return self._submit_once(tenant_id, commands)
            except psycopg.errors.UniqueViolation as exc:
                diag = exc.diag
                if diag.table_name != "tenant_codes" or attempt == 2:
                    raise
            except psycopg.DataError as exc:
                text = str(exc)
                refused_by_server = isinstance(exc, psycopg.errors.CharacterNotInRepertoire)
                if not (refused_by_server and "0x00" in text) and "NUL" not in text:
                    raise
                raise ValueError(
                    "a command holds a NUL character, which PostgreSQL cannot store as text "
                    "(nothing was written)"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _submit_once(self, tenant_id: str, commands: list[Envelope]) -> list[CommandResult]:
        try:
            with self._tenant(tenant_id) as cur:
                seq, head = self._lock_head(cur, tenant_id)
                self._catch_up(cur, tenant_id, seq, head)
                answered = self._known_answers(cur, tenant_id, commands)
                fresh = [c for i, c in enumerate(commands) if i not in answered]
                fresh_results: list[CommandResult] = []
                if fresh:
                    self._prepare_codes(cur, tenant_id, fresh)
                    fresh_results = self.cache.submit(tenant_id, fresh)
                    sealed, refused = self.capture.take(tenant_id)
                    self._write(cur, tenant_id, seq, fresh, fresh_results, sealed, refused)
        except BaseException:
            self._evict(tenant_id)
            raise
        answers = iter(fresh_results)
        return [answered[i] if i in answered else next(answers) for i in range(len(commands))]

    def _lock_head(self, cur: psycopg.Cursor, tenant_id: str) -> tuple[int, str]:
        """Take the tenant's chain lock; its stored (seq, hash)."""
        query = "SELECT seq, hash FROM turingcore.chain_heads WHERE tenant_id = %s FOR UPDATE"
        row = cur.execute(query, (tenant_id,)).fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO turingcore.chain_heads (tenant_id, seq, hash) VALUES (%s, 0, %s)"
                " ON CONFLICT (tenant_id) DO NOTHING",
                (tenant_id, GENESIS_HASH),
            )
            row = cur.execute(query, (tenant_id,)).fetchone()
        return row[0], row[1]

    def _evict(self, tenant_id: str) -> None:
        """Forget a tenant's cached state (the next batch reloads it from the database)."""
        self.cache.evict(tenant_id)
        self.capture.take(tenant_id)

    def _catch_up(self, cur: psycopg.Cursor, tenant_id: str, seq: int, head: str) -> None:
        """Bring the cached tenant to the stored head by folding the events it has not seen.

        A cache behind the database (another process wrote) folds only the
        newer events; a cache that is ahead, forked, or fails to catch up is
        dropped and the tenant reloaded from its first event.
        """
        state = self.cache.state(tenant_id)
        if state is not None and state.seq == seq and state.head == head:
            return
        if state is not None and state.seq < seq:
            try:
                self._fold_into(cur, state, self.cache.monitor(tenant_id), seq, head)
                return
            except ChainMismatch:
                pass  # not a prefix of the stored chain: reload from genesis below
        self._evict(tenant_id)
        if seq == 0:
            return
        state = TenantState(tenant_id)
        monitor = self.cache.new_monitor(state)
        self._fold_into(cur, state, monitor, seq, head)
        self.cache.install(state, monitor)

    def _fold_into(
        self,
        cur: psycopg.Cursor,
        state: TenantState,
        monitor: TransactionMonitor,
        seq: int,
        head: str,
    ) -> None:
        try:
            _fold_stored(cur, state, monitor, self.cache.platform_state)
            if (state.seq, state.head) != (seq, head):
                raise ChainMismatch(
                    f"tenant {state.tenant_id}: stored events end at seq {state.seq} "
                    f"{state.head[:12]}, its chain head says {seq} {head[:12]}"
                )
        except BaseException:
            self._evict(state.tenant_id)
            raise

    def _known_answers(
        self, cur: psycopg.Cursor, tenant_id: str, commands: list[Envelope]
    ) -> dict[int, CommandResult]:
        """Commands the idempotency table already answered (within the key window), by index."""
        keys = {
            c.idempotency_key
            for c in commands
            if c.idempotency_key is not None and c.tenant_id == tenant_id
        }
        if not keys:
            return {}
        stored = {
            row[0]: row[1:]
            for row in cur.execute(
                "SELECT idempotency_key, key_day, command_id, status, correlation_id, accepted_at,"
                " rule, error, message, first_seq, last_seq FROM turingcore.idempotency"
                " WHERE tenant_id = %s AND idempotency_key = ANY(ARRAY("
                " SELECT json_array_elements_text(%s::json)))",
                (tenant_id, _ENCODE_JSON.encode(list(keys)).decode()),
            )
        }
        if not stored:
            return {}
        answered: dict[int, CommandResult] = {}
        for index, command in enumerate(commands):
            found = stored.get(command.idempotency_key) if command.tenant_id == tenant_id else None
            if found is None:
                continue
            key_day, *result = found
            if key_day >= _cutoff(command.timestamp[:10], self.idempotency_days):
                answered[index] = CommandResult(*result)
        return answered

    def _prepare_codes(self, cur: psycopg.Cursor, tenant_id: str, commands: list[Envelope]) -> None:
        """Tell the cache which tenantCodes other tenants hold (it cannot know across processes)."""
        state = self.cache.state(tenant_id)
        if state is not None and state.exists:
            return  # CreateTenant is refused as TENANT_EXISTS before the code matters
        for command in commands:
            if command.command_type != "CreateTenant" or command.tenant_id != tenant_id:
                continue
            code = getattr(command.payload, "tenant_code", None)
            if not isinstance(code, str):
                continue
            taken = cur.execute("SELECT turingcore.tenant_code_taken(%s)", (code,)).fetchone()[0]
            self.cache.code_held_elsewhere(code, tenant_id, taken)

    def _write(
        self,
        cur: psycopg.Cursor,
        tenant_id: str,
        seq_before: int,
        commands: list[Envelope],
        results: list[CommandResult],
        sealed: list[SealedEvent],
        refused: list[tuple[Envelope, CommandResult]],
    ) -> None:
        """STORE: the batch's events, outbox row, read model, answers and refusals."""
        if sealed:
            state = self.cache.state(tenant_id)
            assert state is not None  # the cache just sealed these events
            envelopes = []
            add_envelope = envelopes.append
            with cur.copy("COPY pg_temp.tc_events_in FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_EVENT_TYPES)
                write = copy.write_row
                for item in sealed:
                    e, digest, canonical = item.event, item.hash, item.canonical
                    write(
                        (
                            tenant_id,
                            e.seq,
                            e.event_id,
                            e.event_type,
                            e.entity_id,
                            e.occurred_at,
                            e.causation_id,
                            e.prev_hash,
                            digest,
                            canonical,
                        )
                    )
                    add_envelope(item.to_json_bytes())
            cur.execute("INSERT INTO turingcore.events SELECT * FROM pg_temp.tc_events_in")
            cur.execute(
                "INSERT INTO turingcore.outbox (tenant_id, first_seq, last_seq, events)"
                " VALUES (%s, %s, %s, %s)",
                (tenant_id, sealed[0].event.seq, sealed[-1].event.seq, b"\n".join(envelopes)),
            )
            if seq_before == 0:
                cur.execute(
                    "INSERT INTO turingcore.outbox_marks (tenant_id) VALUES (%s)"
                    " ON CONFLICT (tenant_id) DO NOTHING",
                    (tenant_id,),
                )
            touched = _touched(sealed)
            for code in touched.codes:  # unique_violation if another tenant got there first
                cur.execute("SELECT turingcore.claim_tenant_code(%s)", (code,))
            self._write_read_model(cur, tenant_id, state, touched)
            cur.execute(
                "UPDATE turingcore.chain_heads SET seq = %s, hash = %s WHERE tenant_id = %s",
                (state.seq, state.head, tenant_id),
            )
        self._write_answers(cur, tenant_id, commands, results)
        if refused:
            cur.executemany(
                "INSERT INTO turingcore.rejections (tenant_id, command_id, command_type,"
                " idempotency_key, occurred_at, rule, message) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        tenant_id,
                        envelope.command_id,
                        envelope.command_type,
                        envelope.idempotency_key,
                        envelope.timestamp,
                        result.rule,
                        result.message,
                    )
                    for envelope, result in refused
                ],
            )

    def _write_read_model(
        self, cur: psycopg.Cursor, tenant_id: str, state: TenantState, touched: _Touched
    ) -> None:
        """The read model rows the batch created or changed, from the folded state."""
        if touched.products:
            cur.executemany(
                "INSERT INTO turingcore.products (tenant_id, product_code, product_type, active,"
                " definition, last_seq) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, product_code) DO UPDATE SET"
                " product_type = EXCLUDED.product_type, active = EXCLUDED.active,"
                " definition = EXCLUDED.definition, last_seq = EXCLUDED.last_seq",
                [
                    (tenant_id, code, p.product_type, p.active, Jsonb(p.definition), seq)
                    for code, seq in touched.products.items()
                    for p in (state.products[code],)
                ],
            )
        if touched.customers:
            cur.executemany(
                "INSERT INTO turingcore.customers (tenant_id, customer_id, external_ref, full_name,"
                " email, mobile, segment, kyc_status, created_at, status, created_seq, last_seq)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        tenant_id,
                        c.customer_id,
                        c.external_ref,
                        c.full_name,
                        c.email,
                        c.mobile,
                        c.segment,
                        c.kyc_status,
                        c.created_at,
                        c.status,
                        seq,
                        c.last_seq,
                    )
                    for customer_id, seq in touched.customers
                    for c in (state.customers[customer_id],)
                ],
            )
        accounts = state.accounts
        if touched.new_accounts:
            cur.executemany(
                "INSERT INTO turingcore.accounts (tenant_id, account_id, customer_id, product_code,"
                " kind, currency, alias, opened_at, floor_cents, ceiling_cents, status,"
                " balance_cents, opened_seq, last_seq)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        tenant_id,
                        a.account_id,
                        a.customer_id,
                        a.product_code,
                        a.kind,
                        a.currency,
                        a.alias,
                        a.opened_at,
                        a.floor,
                        a.ceiling,
                        a.status,
                        a.balance,
                        seq,
                        a.last_seq,
                    )
                    for account_id, seq in touched.new_accounts.items()
                    for a in (accounts[account_id],)
                ],
            )
        if touched.accounts:
            balances = [
                {"id": i, "balance": a.balance, "seq": a.last_seq}
                for i in touched.accounts
                for a in (accounts[i],)
            ]
            cur.execute(
                "UPDATE turingcore.accounts AS a SET balance_cents = v.balance, last_seq = v.seq"
                " FROM json_to_recordset(%s::json) AS v(id text, balance bigint, seq bigint)"
                " WHERE a.tenant_id = %s AND a.account_id = v.id",
                (_ENCODE_JSON.encode(balances).decode(), tenant_id),
            )

    def _write_answers(
        self,
        cur: psycopg.Cursor,
        tenant_id: str,
        commands: list[Envelope],
        results: list[CommandResult],
    ) -> None:
        """The answer to each idempotency key the batch ran (an expired key's is replaced).

        A duplicate the cache answered from its batch key table carries the
        very result object of the command that ran, so it changes nothing;
        a key run again after its retention (a new result) replaces the row
        with its own day, as the embedded shell's key table does.
        """
        ran: dict[str, tuple[str, CommandResult]] = {}
        for command, result in zip(commands, results, strict=True):
            key = command.idempotency_key
            if key is None or command.tenant_id != tenant_id:
                continue
            before = ran.get(key)
            if before is None or before[1] is not result:
                ran[key] = (command.timestamp[:10], result)
        rows = [
            (
                tenant_id,
                key,
                day,
                result.command_id,
                result.status,
                result.correlation_id,
                result.accepted_at,
                result.rule,
                result.error,
                result.message,
                result.first_seq,
                result.last_seq,
            )
            for key, (day, result) in ran.items()
        ]
        if not rows:
            return
        with cur.copy("COPY pg_temp.tc_keys_in FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_KEY_TYPES)
            write = copy.write_row
            for row in rows:
                write(row)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _KEY_COLUMNS[2:])
        cur.execute(
            f"INSERT INTO turingcore.idempotency SELECT * FROM pg_temp.tc_keys_in"
            f" ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET {updates}"
        )

    # ------------------------------------------------------------------ read side

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """`{customers: [CustomerSummary], total, limit, offset}` for this tenant only.

        Raises:
            NotFound: the tenant does not exist (for this caller).
        """
        _page(limit, offset)
        with self._tenant(tenant_id) as cur:
            _require_tenant(cur, tenant_id)
            total = cur.execute(
                "SELECT count(*) FROM turingcore.customers WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()[0]
            rows = cur.execute(
                "SELECT customer_id, external_ref, full_name, email, segment, kyc_status,"
                " created_at FROM turingcore.customers WHERE tenant_id = %s"
                " ORDER BY created_seq LIMIT %s OFFSET %s",
                (tenant_id, limit, offset),
            ).fetchall()
        names = ("customerId", "externalRef", "fullName", "email", "segment", "kycStatus")
        return {
            "customers": [dict(zip((*names, "createdAt"), row, strict=True)) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """`{accounts: [AccountSummary], total}` for this tenant only (balances as decimals).

        Raises:
            NotFound: the tenant does not exist, or `customer_id` is not its customer
                (another tenant's customer looks exactly like a missing one).
        """
        _page(limit, offset)
        where = "tenant_id = %s AND kind <> 'GL'"
        params: list[Any] = [tenant_id]
        if customer_id is not None:
            where += " AND customer_id = %s"
            params.append(customer_id)
        with self._tenant(tenant_id) as cur:
            _require_tenant(cur, tenant_id)
            if customer_id is not None and (
                cur.execute(
                    "SELECT 1 FROM turingcore.customers WHERE tenant_id = %s AND customer_id = %s",
                    (tenant_id, customer_id),
                ).fetchone()
                is None
            ):
                raise NotFound(f"no customer {customer_id}")
            total = cur.execute(
                f"SELECT count(*) FROM turingcore.accounts WHERE {where}", params
            ).fetchone()[0]
            rows = cur.execute(
                "SELECT account_id, customer_id, product_code, alias, balance_cents, currency,"
                f" status, opened_at FROM turingcore.accounts WHERE {where}"
                " ORDER BY opened_seq LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return {
            "accounts": [
                {
                    "accountId": account_id,
                    "customerId": owner,
                    "productCode": product,
                    "accountAlias": alias,
                    "balance": format_cents(balance),
                    "currency": currency,
                    "status": status,
                    "openedAt": opened,
                }
                for account_id, owner, product, alias, balance, currency, status, opened in rows
            ],
            "total": total,
        }

    def account_events(self, tenant_id: str, account_id: str, limit: int = 100) -> list[bytes]:
        """EventEnvelope JSON of the events whose entity is `account_id`, in seq order.

        Raises:
            NotFound: the account is not this tenant's (another tenant's id
                looks exactly like a missing one).
        """
        _page(limit, 0, most=10_000)
        with self._tenant(tenant_id) as cur:
            found = cur.execute(
                "SELECT 1 FROM turingcore.accounts WHERE tenant_id = %s AND account_id = %s",
                (tenant_id, account_id),
            ).fetchone()
            if found is None:
                raise NotFound(f"account {account_id} not found")
            rows = cur.execute(
                "SELECT canonical, hash FROM turingcore.events"
                " WHERE tenant_id = %s AND entity_id = %s AND event_type <> 'EntryPosted'"
                " ORDER BY seq LIMIT %s",  # the partial index events_by_entity
                (tenant_id, account_id, limit),
            ).fetchall()
        return [envelope_json(canonical, digest) for canonical, digest in rows]

    def tenant_events(self, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[bytes]:
        """EventEnvelope JSON of the tenant's events with seq > `after_seq`, in seq order."""
        _page(limit, 0, most=10_000)
        with self._tenant(tenant_id) as cur:
            rows = cur.execute(
                "SELECT canonical, hash FROM turingcore.events"
                " WHERE tenant_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (tenant_id, after_seq, limit),
            ).fetchall()
        return [envelope_json(canonical, digest) for canonical, digest in rows]

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's chain head; (0, 64 zeros) before its first event."""
        with self._tenant(tenant_id) as cur:
            row = cur.execute(
                "SELECT seq, hash FROM turingcore.chain_heads WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
        return (row[0], row[1]) if row is not None else (0, GENESIS_HASH)

    def close(self) -> None:
        """Close the pool (waits for connections in use to come back)."""
        self.pool.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fold_stored(
    cur: psycopg.Cursor, state: TenantState, monitor: TransactionMonitor, platform: PlatformState
) -> None:
    """Fold the stored events after `state.seq` into `state`, re-warming `monitor`.

    Every event is re-hashed from its stored canonical bytes and must chain
    onto the previous one. Each stored EntryPosted is screened again; the
    alerts and reports that gives must be exactly the stored ones that follow
    it (same type, id and payload), or the monitor would diverge from here on.

    Raises:
        ChainMismatch: a hash, seq or alert that does not match.
    """
    tenant_id = state.tenant_id
    head_raw = state.head_raw if state.seq else GENESIS_RAW
    expected_alerts: list[Pending] = []
    with cur.connection.cursor(name="tc_fold") as rows:
        rows.itersize = 20_000
        rows.execute(
            "SELECT seq, hash, canonical FROM turingcore.events"
            " WHERE tenant_id = %s AND seq > %s ORDER BY seq",
            (tenant_id, state.seq),
        )
        for seq, digest, canonical in rows:
            canonical = bytes(canonical)
            body = _DECODE.decode(canonical)
            raw = hashlib.sha256(head_raw + canonical).digest()
            if raw.hex() != digest or body.get("seq") != seq or body.get("prevHash") != state.head:
                raise ChainMismatch(f"tenant {tenant_id}: stored event {seq} does not verify")
            event = Event(
                event_id=body["eventId"],
                event_type=body["eventType"],
                tenant_id=body["tenantId"],
                entity_id=body["entityId"],
                payload=body["payload"],
                occurred_at=body["occurredAt"],
                causation_id=body["causationId"],
                seq=seq,
                prev_hash=body["prevHash"],
            )
            kind = event.event_type
            if kind in MONITOR_EVENT_TYPES:
                if not expected_alerts or not _same_alert(expected_alerts.pop(0), event):
                    raise ChainMismatch(
                        f"tenant {tenant_id}: stored {kind} at seq {seq} is not what the "
                        "monitor derives again (are the processes' monitor settings equal?)"
                    )
            elif kind == "EntryPosted":
                _unmatched(expected_alerts, tenant_id, seq)
                payload = event.payload
                entry = _ReplayedEntry(
                    payload.get("tags"),
                    [
                        Leg(leg["accountId"], leg["direction"], leg["amountCents"])
                        for leg in payload["legs"]
                    ],
                )
                decision = [Pending("EntryPosted", event.entity_id, None)]
                monitor.screen(event.occurred_at, entry, decision)
                expected_alerts = decision[1:]
            evolve(state, event, digest, platform)
            head_raw = raw
    _unmatched(expected_alerts, tenant_id, state.seq)


def _same_alert(pending: Pending, event: Event) -> bool:
    return (
        pending.event_type == event.event_type
        and pending.entity_id == event.entity_id
        and msgspec.to_builtins(pending.payload) == event.payload
    )


def _unmatched(expected: list[Pending], tenant_id: str, seq: int) -> None:
    if expected:
        raise ChainMismatch(
            f"tenant {tenant_id}: the monitor derives {expected[0].event_type} again "
            f"before seq {seq + 1}, but it is not stored (are the monitor settings equal?)"
        )


# --------------------------------------------------------------------------- the relay's outbox


class PostgresOutbox:
    """`turingcore.ledger.Outbox` for the Kafka relay, as the relay role.

    Args:
        dsn: libpq connection string of the migrated database.
        user: the role to connect as (`turingcore_relay`); None keeps the DSN's.
        max_size: pool size (the relay needs one or two).
    """

    def __init__(self, dsn: str, *, user: str | None = RELAY_ROLE, max_size: int = 2) -> None:
        with connect(dsn, user=user, autocommit=True) as probe:
            row = probe.execute(
                "SELECT current_user, rolsuper, rolbypassrls FROM pg_catalog.pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
        if row is not None and (row[1] or row[2]):
            raise UnsafeDatabase(f"refusing to relay as {row[0]}: superuser or BYPASSRLS")
        kwargs: dict[str, Any] = {
            "connect_timeout": 5,
            "application_name": "turingcore-relay",
            "autocommit": True,
        }
        if user is not None:
            kwargs["user"] = user
        self.pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            kwargs=kwargs,
            reset=PostgresLedger._reset,
            open=True,
            name="turingcore-relay",
        )

    def tenants_with_unsent(self) -> list[str]:
        """Tenants with at least one unsent outbox row, in name order."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT m.tenant_id FROM turingcore.outbox_marks m WHERE EXISTS ("
                " SELECT 1 FROM turingcore.outbox o"
                " WHERE o.tenant_id = m.tenant_id AND o.last_seq > m.sent_seq)"
                " ORDER BY m.tenant_id"
            ).fetchall()
        return [tenant for (tenant,) in rows]

    def unsent(self, tenant_id: str, limit: int = 5000) -> list[OutboxRow]:
        """The tenant's unsent events in seq order (at most `limit`)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        found: list[OutboxRow] = []
        with self.pool.connection() as conn, conn.transaction():
            mark = conn.execute(
                "SELECT sent_seq FROM turingcore.outbox_marks WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
            if mark is None:
                return []
            sent = mark[0]
            with conn.cursor(name="tc_outbox") as rows:
                rows.itersize = 4
                rows.execute(
                    "SELECT first_seq, events FROM turingcore.outbox"
                    " WHERE tenant_id = %s AND last_seq > %s ORDER BY first_seq",
                    (tenant_id, sent),
                )
                for first_seq, blob in rows:
                    for offset, value in enumerate(bytes(blob).split(b"\n")):
                        seq = first_seq + offset
                        if seq <= sent:
                            continue
                        line = _DECODE_LINE.decode(value)
                        if line.seq != seq:
                            raise ChainMismatch(
                                f"tenant {tenant_id}: outbox line {seq} holds seq {line.seq}"
                            )
                        found.append(OutboxRow(tenant_id, seq, line.entity_id, value))
                        if len(found) >= limit:
                            return found
        return found

    def mark_sent(self, tenant_id: str, through_seq: int) -> None:
        """Every event with seq <= `through_seq` was acknowledged: the mark only moves forward.

        It never passes the last event written, whatever the caller claims.
        """
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE turingcore.outbox_marks SET sent_seq = GREATEST(sent_seq, LEAST(%s,"
                " (SELECT coalesce(max(last_seq), 0) FROM turingcore.outbox WHERE tenant_id = %s)))"
                " WHERE tenant_id = %s",
                (through_seq, tenant_id, tenant_id),
            )

    def mark_unsent_from(self, tenant_id: str, first_seq: int) -> int:
        """Events with seq >= `first_seq` are unsent again (the broker lost them); how many."""
        if first_seq < 1:
            raise ValueError("first_seq must be at least 1")
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT sent_seq FROM turingcore.outbox_marks WHERE tenant_id = %s FOR UPDATE",
                (tenant_id,),
            ).fetchone()
            if row is None or row[0] < first_seq:
                return 0
            conn.execute(
                "UPDATE turingcore.outbox_marks SET sent_seq = %s WHERE tenant_id = %s",
                (first_seq - 1, tenant_id),
            )
            return row[0] - (first_seq - 1)

    def head(self, tenant_id: str) -> tuple[int, str]:
        """(seq, hash) of the tenant's last event in the outbox: the chain head in the store."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT last_seq, substring(events FROM octet_length(events) - 65 FOR 64)"
                " FROM turingcore.outbox WHERE tenant_id = %s ORDER BY first_seq DESC LIMIT 1",
                (tenant_id,),
            ).fetchone()
        if row is None:
            return 0, GENESIS_HASH
        return row[0], bytes(row[1]).decode("ascii")

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PostgresOutbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_outbox(dsn: str) -> PostgresOutbox:
    """The store's outbox for the Kafka relay (`turingcore relay --dsn`), as the relay role."""
    return PostgresOutbox(dsn)
