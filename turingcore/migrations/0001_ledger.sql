-- 0001: the ledger, its read model, idempotency, refusals and the outbox, with
-- row-level security on every tenant table. Run by `turingcore db migrate` as
-- turingcore_owner (SET LOCAL ROLE), inside one transaction.
--
-- Every tenant table: tenant_id NOT NULL and non-empty, ENABLE and FORCE ROW
-- LEVEL SECURITY (FORCE: the owner is held too), and the policy
-- `tenant_isolation` with USING and WITH CHECK on
--     tenant_id = current_setting('app.tenant_id', true)
-- An unset setting is NULL and an empty one matches no tenant: no rows.

-- ------------------------------------------------------------ the chain

CREATE TABLE turingcore.chain_heads (
    tenant_id text PRIMARY KEY CHECK (tenant_id <> ''),
    seq bigint NOT NULL CHECK (seq >= 0),
    hash text NOT NULL CHECK (length(hash) = 64)
);

CREATE TABLE turingcore.events (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    seq bigint NOT NULL CHECK (seq >= 1),
    event_id text NOT NULL,
    event_type text NOT NULL,
    entity_id text NOT NULL,
    occurred_at text NOT NULL,
    causation_id text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    canonical bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
-- the read API's "events of this account", in seq order. EntryPosted (a third
-- of all events) is left out: its entity is the entry, never an account, and
-- an index entry fewer per posting is a third off this index's write cost.
CREATE INDEX events_by_entity ON turingcore.events (tenant_id, entity_id, seq)
    WHERE event_type <> 'EntryPosted';

-- ------------------------------------------------------------ read model

CREATE TABLE turingcore.products (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    product_code text NOT NULL,
    product_type text NOT NULL,
    active boolean NOT NULL,
    definition jsonb NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, product_code)
);

CREATE TABLE turingcore.customers (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    customer_id text NOT NULL,
    external_ref text,
    full_name text NOT NULL,
    email text NOT NULL,
    mobile text NOT NULL,
    segment text,
    kyc_status text,
    created_at text NOT NULL,
    status text NOT NULL,
    created_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, customer_id),
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, mobile),
    UNIQUE (tenant_id, external_ref)
);
CREATE INDEX customers_in_order ON turingcore.customers (tenant_id, created_seq);

-- fillfactor leaves room on each page so balance updates stay HOT
CREATE TABLE turingcore.accounts (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    account_id text NOT NULL,
    customer_id text,
    product_code text NOT NULL,
    kind text NOT NULL,
    currency text NOT NULL,
    alias text,
    opened_at text NOT NULL,
    floor_cents bigint,
    ceiling_cents bigint,
    status text NOT NULL,
    balance_cents bigint NOT NULL,
    opened_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
) WITH (fillfactor = 70);
CREATE INDEX accounts_in_order ON turingcore.accounts (tenant_id, opened_seq);
CREATE INDEX accounts_by_customer ON turingcore.accounts (tenant_id, customer_id, opened_seq);

-- ------------------------------------------------------------ commands

-- The first answer to each (tenant, idempotencyKey); key_day is the command's
-- day (timestamp[:10]) for the retention window the embedded shell applies.
CREATE TABLE turingcore.idempotency (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    idempotency_key text NOT NULL,
    key_day text NOT NULL,
    command_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('ACCEPTED', 'REJECTED')),
    correlation_id text NOT NULL,
    accepted_at text NOT NULL,
    rule text,
    error text,
    message text,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- Commands refused by a business rule: not state changes (not in the chain),
-- kept for audit and KPIs.
CREATE TABLE turingcore.rejections (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    command_id text NOT NULL,
    command_type text NOT NULL,
    idempotency_key text,
    occurred_at text NOT NULL,
    rule text NOT NULL,
    message text
);
CREATE INDEX rejections_by_tenant ON turingcore.rejections (tenant_id);

-- ------------------------------------------------------------ outbox

-- One row per committed batch: its events' EventEnvelope JSON, one per line,
-- seq first_seq..last_seq. STORAGE EXTERNAL: stored out of line, uncompressed
-- (compressing megabytes inside the write transaction would cost more than
-- it saves).
CREATE TABLE turingcore.outbox (
    tenant_id text NOT NULL CHECK (tenant_id <> ''),
    first_seq bigint NOT NULL CHECK (first_seq >= 1),
    last_seq bigint NOT NULL,
    events bytea NOT NULL,
    PRIMARY KEY (tenant_id, first_seq),
    CHECK (last_seq >= first_seq)
);
ALTER TABLE turingcore.outbox ALTER COLUMN events SET STORAGE EXTERNAL;

-- How far the relay has published each tenant (every seq <= sent_seq was
-- acknowledged by the broker). Only the relay moves it.
CREATE TABLE turingcore.outbox_marks (
    tenant_id text PRIMARY KEY CHECK (tenant_id <> ''),
    sent_seq bigint NOT NULL DEFAULT 0 CHECK (sent_seq >= 0)
);

-- ------------------------------------------------------------ platform level

-- CreateTenant's "tenantCode is unique on the platform". Not readable by the
-- service or the relay at all (no privilege): the two functions below answer
-- the one question the contract needs, for the caller's own tenant only.
CREATE TABLE turingcore.tenant_codes (
    code text PRIMARY KEY,
    tenant_id text NOT NULL UNIQUE CHECK (tenant_id <> '')
);

-- Whether `p_code` is held by a tenant other than the caller's: the one bit
-- TENANT_CODE_TAKEN tells anyway; never which tenant holds it.
CREATE FUNCTION turingcore.tenant_code_taken(p_code text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM turingcore.tenant_codes
        WHERE code = p_code
          AND tenant_id IS DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')
    )
$$;

-- Claim `p_code` for the caller's tenant (in the transaction that writes its
-- TenantCreated). Raises unique_violation when another tenant holds it.
CREATE FUNCTION turingcore.claim_tenant_code(p_code text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller text := nullif(current_setting('app.tenant_id', true), '');
BEGIN
    IF caller IS NULL THEN
        RAISE EXCEPTION 'no tenant is set for this transaction' USING ERRCODE = '42501';
    END IF;
    INSERT INTO turingcore.tenant_codes (code, tenant_id) VALUES (p_code, caller);
END
$$;

REVOKE ALL ON FUNCTION turingcore.tenant_code_taken(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION turingcore.claim_tenant_code(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION turingcore.tenant_code_taken(text) TO turingcore_app;
GRANT EXECUTE ON FUNCTION turingcore.claim_tenant_code(text) TO turingcore_app;

-- ------------------------------------------------------------ row security

DO $rls$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'chain_heads', 'events', 'products', 'customers', 'accounts',
        'idempotency', 'rejections', 'outbox', 'outbox_marks'
    ] LOOP
        EXECUTE format('ALTER TABLE turingcore.%I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE turingcore.%I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON turingcore.%I FOR ALL TO PUBLIC'
            ' USING (tenant_id = current_setting(''app.tenant_id'', true))'
            ' WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))',
            tenant_table);
    END LOOP;
END
$rls$;

-- The relay publishes every tenant's events to that tenant's topic, so it
-- reads the outbox across tenants: a policy of its own on the two outbox
-- tables only (the service role gets nothing like it).
CREATE POLICY relay_reads ON turingcore.outbox FOR SELECT TO turingcore_relay USING (true);
CREATE POLICY relay_reads ON turingcore.outbox_marks FOR SELECT TO turingcore_relay USING (true);
CREATE POLICY relay_marks ON turingcore.outbox_marks FOR UPDATE TO turingcore_relay
    USING (true) WITH CHECK (true);

-- ------------------------------------------------------------ privileges

GRANT USAGE ON SCHEMA turingcore TO turingcore_app, turingcore_relay;

-- the service: the ledger is append-only (no UPDATE or DELETE on events,
-- refusals or the outbox); nothing is ever deleted; no TRUNCATE, REFERENCES
-- or TRIGGER anywhere (TRUNCATE and foreign keys see past row security).
GRANT SELECT, INSERT ON turingcore.events, turingcore.rejections, turingcore.outbox
    TO turingcore_app;
GRANT SELECT, INSERT ON turingcore.outbox_marks TO turingcore_app;
GRANT SELECT, INSERT, UPDATE ON turingcore.chain_heads, turingcore.products,
    turingcore.customers, turingcore.accounts, turingcore.idempotency TO turingcore_app;

-- the relay: read the outbox, move the sent mark
GRANT SELECT ON turingcore.outbox, turingcore.outbox_marks TO turingcore_relay;
GRANT UPDATE (sent_seq) ON turingcore.outbox_marks TO turingcore_relay;
