-- The directory's answer about each chat (domain::ChatInfo as JSON: its workspace and bot,
-- whether it opted out, has a lawful basis, is blocked, and its approval policy), kept by the
-- event store in the transaction of every Chat event (libs/store/src/directory.rs). It is
-- never behind the events, unlike a projection, so the domain's checks read it instead of
-- replaying each chat: a post to 100,000 chats reads 100,000 narrow rows. `sequence` is the
-- last event the row reflects; a chat without a row (connected before this table) is read
-- from its events, and `herald migrate` adds the missing rows.
CREATE TABLE chat_directory
(
    chat_id      uuid PRIMARY KEY,
    workspace_id uuid   NOT NULL,
    sequence     bigint NOT NULL,
    info         json   NOT NULL
);

ALTER TABLE chat_directory ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat_directory FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON chat_directory TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON chat_directory TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON chat_directory TO CURRENT_USER USING (true) WITH CHECK (true);
