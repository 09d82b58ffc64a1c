-- Delivery's schedule index: one row per (post, chat) once the post is approved. Due rows are
-- claimed with FOR UPDATE SKIP LOCKED, so future posts cost a row, not a timer or a task.
CREATE TABLE delivery_queue
(
    post_id          uuid        NOT NULL,
    chat_id          uuid        NOT NULL,
    workspace_id     uuid        NOT NULL,
    bot_id           uuid        NOT NULL,
    telegram_chat_id bigint      NOT NULL,
    due_at           timestamptz NOT NULL,
    -- scheduled: waiting for its time / capacity; sending: the request may be on the wire;
    -- done: an outcome is recorded as an event; cancelled: the post was cancelled or rejected.
    state            text        NOT NULL DEFAULT 'scheduled',
    attempts         integer     NOT NULL DEFAULT 0,
    not_before       timestamptz,
    claimed_by       text,
    claimed_at       timestamptz,
    PRIMARY KEY (post_id, chat_id)
);
CREATE INDEX delivery_queue_due ON delivery_queue (due_at) WHERE state = 'scheduled';
CREATE INDEX delivery_queue_sending ON delivery_queue (claimed_by) WHERE state = 'sending';

-- Live delivery workers. A row in state 'sending' whose worker stopped heartbeating is in doubt:
-- the request may have reached Telegram. It is flagged (DeliveryUnknown), never silently resent.
CREATE TABLE delivery_workers
(
    worker_id    text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);
