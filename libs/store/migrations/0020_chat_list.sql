-- The chat list: one row per connected chat with what segments select by (its tags) and
-- whether it can be sent to, for resolving segments and listing the audience. A projection
-- (projections/src/chats.rs), rebuilt with `herald projections rebuild chat_list`; planning
-- re-checks every member against the chats' own events, so a row a moment behind never sends
-- to someone who opted out.
CREATE TABLE chat_list
(
    chat_id          uuid PRIMARY KEY,
    workspace_id     uuid    NOT NULL,
    bot_id           uuid    NOT NULL,
    telegram_chat_id bigint  NOT NULL,
    contact          boolean NOT NULL,
    has_basis        boolean NOT NULL,
    opted_out        boolean NOT NULL DEFAULT false,
    blocked          boolean NOT NULL DEFAULT false,
    tags             text[]  NOT NULL DEFAULT '{}'
);
CREATE INDEX chat_list_by_workspace ON chat_list (workspace_id, chat_id);
CREATE INDEX chat_list_tags ON chat_list USING gin (tags);

ALTER TABLE chat_list ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat_list FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON chat_list TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON chat_list TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON chat_list TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT TRUNCATE ON chat_list TO herald_worker;
