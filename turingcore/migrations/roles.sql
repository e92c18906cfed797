-- Cluster-wide roles of the TuringCore store. Applied by `turingcore db migrate`
-- before the versioned migrations, every time (roles live outside any one
-- database, so a database's schema_migrations cannot say whether they exist).
--
-- Idempotent, and safe when two sessions migrate two databases at once: a
-- concurrent CREATE ROLE of the same name waits for the other transaction and
-- then fails with duplicate_object or unique_violation, which is caught.
--
--   turingcore_owner  NOLOGIN: owns the schema, tables and functions. Nobody
--                     logs in as it; migrations SET ROLE to it.
--   turingcore_app    LOGIN, the HTTP service: not owner, not superuser,
--                     NOBYPASSRLS, member of nothing.
--   turingcore_relay  LOGIN, the Kafka relay: same restrictions; reads the
--                     outbox of every tenant and moves the sent mark only.
DO $roles$
DECLARE
    wanted text[] := ARRAY['turingcore_owner', 'turingcore_app', 'turingcore_relay'];
    login boolean;
    name text;
BEGIN
    FOREACH name IN ARRAY wanted LOOP
        login := name <> 'turingcore_owner';
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
                    ' NOREPLICATION NOINHERIT',
                    name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another session created it first
            END;
        END IF;
        -- A role found with a dangerous attribute is made safe again.
        IF EXISTS (
            SELECT 1 FROM pg_catalog.pg_roles
            WHERE rolname = name
              AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication
                   OR rolcanlogin IS DISTINCT FROM login)
        ) THEN
            EXECUTE format(
                'ALTER ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION',
                name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
        END IF;
    END LOOP;
    -- The service and the relay must not be able to become the owner (who
    -- could switch row security off) or each other.
    FOREACH name IN ARRAY ARRAY['turingcore_app', 'turingcore_relay'] LOOP
        IF EXISTS (
            SELECT 1 FROM pg_catalog.pg_auth_members m
            JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
            JOIN pg_catalog.pg_roles u ON u.oid = m.member
            WHERE u.rolname = name
        ) THEN
            EXECUTE (
                SELECT string_agg(format('REVOKE %I FROM %I', r.rolname, name), '; ')
                FROM pg_catalog.pg_auth_members m
                JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
                JOIN pg_catalog.pg_roles u ON u.oid = m.member
                WHERE u.rolname = name
            );
        END IF;
    END LOOP;
END
$roles$;
