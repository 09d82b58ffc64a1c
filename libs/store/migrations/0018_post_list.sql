-- The post list (`projections::posts`): one row per post with what a team filters on, and the
-- chats' bots it needs for the bot filter. Rebuilt from the stream like every projection.
CREATE TABLE post_list
(
    post_id         uuid PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    -- draft, planned, approved, cancelled, expired (what people decided; delivery is per chat)
    state           text        NOT NULL,
    publish_at      timestamptz NOT NULL,
    text_preview    text        NOT NULL,
    author_id       text,
    last_editor_id  text,
    targets         integer     NOT NULL,
    bot_ids         uuid[]      NOT NULL DEFAULT '{}',
    -- [{name, roles, users, all}], and the index of the stage waiting (NULL unless planned)
    stages          jsonb       NOT NULL,
    stage           integer,
    -- approvals at the waiting stage, and every approval since the last edit
    stage_approvals text[]      NOT NULL DEFAULT '{}',
    approved_by     text[]      NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL
);
CREATE INDEX post_list_by_time ON post_list (workspace_id, publish_at, post_id);
CREATE INDEX post_list_waiting ON post_list (workspace_id, publish_at) WHERE state = 'planned';

CREATE TABLE post_list_chats
(
    chat_id      uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    bot_id       uuid NOT NULL
);

-- Workspace data: scoped like every such table (migration 0015).
ALTER TABLE post_list ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_list FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON post_list TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON post_list TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON post_list TO CURRENT_USER USING (true) WITH CHECK (true);

ALTER TABLE post_list_chats ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_list_chats FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON post_list_chats TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON post_list_chats TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON post_list_chats TO CURRENT_USER USING (true) WITH CHECK (true);

GRANT TRUNCATE ON post_list, post_list_chats TO herald_worker;
