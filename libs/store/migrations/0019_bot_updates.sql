-- The bots' updates (what people and chats did to a bot: /start, /stop, blocking it, removing
-- it from a group), each handled exactly once: the listener records an update's id in the
-- transaction that writes the events it caused, so a redelivered update (after a crash, or a
-- second listener) finds its row and changes nothing. Owned by the listener
-- (services/listener); the next poll's offset is the highest id here plus one.
CREATE TABLE bot_updates
(
    bot_id       uuid        NOT NULL,
    update_id    bigint      NOT NULL,
    workspace_id uuid        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, update_id)
);

-- Workspace data: scoped like every such table (migration 0015).
ALTER TABLE bot_updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE bot_updates FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON bot_updates TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON bot_updates TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON bot_updates TO CURRENT_USER USING (true) WITH CHECK (true);
