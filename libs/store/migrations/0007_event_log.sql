-- The publication journal: the JetStream stream position of every published event. The relay
-- appends to it in the transaction that removes the events from the outbox, so PostgreSQL knows
-- exactly what the stream must hold, position for position, and can rebuild a lost, emptied or
-- truncated stream with the same sequences (projection checkpoints stay valid).
-- An event may appear twice (re-published outside JetStream's dedup window by an older relay):
-- the journal mirrors the stream, duplicates included; projections skip them by sequence.
CREATE TABLE event_log
(
    position       bigint PRIMARY KEY, -- JetStream stream sequence
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL
);
CREATE INDEX event_log_by_event ON event_log (aggregate_type, aggregate_id, sequence);
