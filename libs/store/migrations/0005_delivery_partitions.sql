-- Scale-out: chats are spread over 32 partitions; each live delivery worker leases a fair share,
-- so one chat's order and pacing belong to one worker at a time. A lease not renewed within the
-- worker timeout is taken over by another worker.
ALTER TABLE delivery_queue ADD COLUMN partition smallint NOT NULL DEFAULT 0;
CREATE INDEX delivery_queue_due_by_partition ON delivery_queue (partition, due_at) WHERE state = 'scheduled';
CREATE INDEX delivery_queue_sending_by_chat ON delivery_queue (chat_id) WHERE state = 'sending';

ALTER TABLE delivery_attempts ADD COLUMN partition smallint NOT NULL DEFAULT 0;

CREATE TABLE delivery_partitions
(
    partition   smallint PRIMARY KEY,
    owner       text,
    lease_until timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO delivery_partitions (partition) SELECT generate_series(0, 31);

-- The per-bot budget (30 messages per second) is shared by all workers: a sliding log of
-- reserved send slots, read and extended under a per-bot row lock.
CREATE TABLE delivery_bot_budget
(
    bot_id uuid PRIMARY KEY
);
CREATE TABLE delivery_bot_sends
(
    bot_id uuid        NOT NULL,
    at     timestamptz NOT NULL
);
CREATE INDEX delivery_bot_sends_by_bot ON delivery_bot_sends (bot_id, at);
