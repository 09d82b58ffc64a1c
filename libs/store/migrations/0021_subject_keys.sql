-- Per-subject keys: personal data in events (a contact's name) is sealed under a key of its
-- own, kept here encrypted under Herald's secret key. Erasing the person destroys the key
-- (`key` set to NULL): the events stay as they were, and every reading and every rebuild then
-- shows the data as erased. Owned by the event store's `subjects` module (libs/store).
CREATE TABLE subject_keys
(
    subject_id   uuid PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    key          text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz
);

ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_scope ON subject_keys TO herald_api
    USING (workspace_id = herald_scope()) WITH CHECK (workspace_id = herald_scope());
CREATE POLICY worker_all ON subject_keys TO herald_worker USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON subject_keys TO CURRENT_USER USING (true) WITH CHECK (true);
