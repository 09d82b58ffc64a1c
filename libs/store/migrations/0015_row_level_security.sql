-- Tenancy enforced by PostgreSQL, not only by the application.
--
-- Roles (cluster-wide, created once; they own nothing and cannot bypass row-level security):
--   herald_api     the HTTP API's request path. Sees the rows of one workspace: the one its
--                  connection is scoped to (`herald.workspace`, set by `store::scope` each time
--                  a connection is taken from the API's pool). Unscoped, it sees none.
--   herald_worker  the relay, the projections and delivery: cross-workspace by nature, so its
--                  policies admit every row, but it owns nothing (no DDL, no policy changes).
-- The role that runs migrations (the owner of every table) keeps access through its own
-- policies, so that identity triggers (SECURITY DEFINER), upkeep and rebuilds work even when
-- it is not a superuser.
--
-- Every table holding workspace data has row-level security enabled and forced; the tables
-- left out hold no workspace data (identity_* are the access lists that decide the scope;
-- outbox, event_log, projection_* and delivery_workers/partitions hold ids and positions).
-- `tests/tests/isolation.rs` fails when a new table is neither scoped nor listed there.

DO
$$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'herald_api') THEN
        CREATE ROLE herald_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL; -- another database's migration won
END
$$;
DO
$$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'herald_worker') THEN
        CREATE ROLE herald_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- The workspace the current connection is scoped to, or NULL.
CREATE FUNCTION herald_scope() RETURNS uuid
    LANGUAGE sql
    STABLE AS
$$
SELECT nullif(current_setting('herald.workspace', true), '')::uuid
$$;

GRANT USAGE ON SCHEMA public TO herald_api, herald_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO herald_api, herald_worker;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO herald_api, herald_worker;
GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO herald_worker; -- projection rebuilds
-- Events are immutable for everyone but the owner.
REVOKE UPDATE, DELETE ON events FROM herald_api, herald_worker;
-- What the API has no business reading.
REVOKE SELECT, UPDATE, DELETE ON outbox, event_log FROM herald_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO herald_api, herald_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO herald_api, herald_worker;

-- The identity claims run as the owner: they must see every workspace's claims to refuse a
-- duplicate, and report only the holder's ids.
ALTER FUNCTION herald_claim_identity(text, text, bigint, text, json, boolean)
    SECURITY DEFINER SET search_path = public;

-- scope(table, predicate): RLS on, forced, the API sees rows matching the predicate, the worker
-- and the owner see everything.
CREATE FUNCTION pg_temp.herald_scope_table(p_table text, p_predicate text) RETURNS void
    LANGUAGE plpgsql AS
$$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', p_table);
    EXECUTE format('CREATE POLICY workspace_scope ON %I TO herald_api USING (%s) WITH CHECK (%s)',
                   p_table, p_predicate, p_predicate);
    EXECUTE format('CREATE POLICY worker_all ON %I TO herald_worker USING (true) WITH CHECK (true)',
                   p_table);
    EXECUTE format('CREATE POLICY owner_all ON %I TO CURRENT_USER USING (true) WITH CHECK (true)',
                   p_table);
END
$$;

SELECT pg_temp.herald_scope_table('events', $p$ (metadata ->> 'workspace_id') = herald_scope()::text $p$);
SELECT pg_temp.herald_scope_table('snapshots', $p$ EXISTS (SELECT 1 FROM events e
    WHERE e.aggregate_type = snapshots.aggregate_type AND e.aggregate_id = snapshots.aggregate_id) $p$);
SELECT pg_temp.herald_scope_table('calendar', 'workspace_id = herald_scope()');
SELECT pg_temp.herald_scope_table('audit_log', 'workspace_id = herald_scope()::text');
SELECT pg_temp.herald_scope_table('delivery_bots', 'workspace_id = herald_scope()');
SELECT pg_temp.herald_scope_table('delivery_chats', 'workspace_id = herald_scope()');
SELECT pg_temp.herald_scope_table('delivery_schedule', 'workspace_id = herald_scope()');
SELECT pg_temp.herald_scope_table('telegram_bot_identities', 'workspace_id = herald_scope()');
SELECT pg_temp.herald_scope_table('telegram_chat_identities', 'workspace_id = herald_scope()');
-- Rows keyed by a chat or a bot belong to the chat's or the bot's workspace (the chat and bot
-- tables above are themselves scoped, so the subqueries see only the API's own).
SELECT pg_temp.herald_scope_table(t, format('EXISTS (SELECT 1 FROM delivery_chats c WHERE c.chat_id = %I.chat_id)', t))
FROM unnest(ARRAY ['delivery_progress', 'delivery_chat_holds', 'delivery_attempts']) AS t;
SELECT pg_temp.herald_scope_table(t, format('EXISTS (SELECT 1 FROM delivery_bots b WHERE b.telegram_bot_id = %I.telegram_bot_id)', t))
FROM unnest(ARRAY ['delivery_bot_budget', 'delivery_bot_slots', 'delivery_bot_hours']) AS t;
-- Conflicts name other workspaces' aggregates: the API never reads them.
SELECT pg_temp.herald_scope_table('telegram_identity_conflicts', 'false');
