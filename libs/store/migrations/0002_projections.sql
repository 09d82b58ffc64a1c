-- Read models fed from JetStream. Each projection stores, in the same transaction as its rows,
-- the last stream sequence it applied (checkpoint) and the last sequence per aggregate
-- (so an event re-published outside JetStream's dedup window is still applied only once).
CREATE TABLE projection_checkpoints
(
    projection      text PRIMARY KEY,
    stream_sequence bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projection_positions
(
    projection     text   NOT NULL,
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    last_sequence  bigint NOT NULL,
    PRIMARY KEY (projection, aggregate_type, aggregate_id)
);

-- The content calendar: one row per post and target chat.
CREATE TABLE calendar
(
    workspace_id        uuid        NOT NULL,
    post_id             uuid        NOT NULL,
    chat_id             uuid        NOT NULL,
    publish_at          timestamptz NOT NULL,
    state               text        NOT NULL,
    delivery            text        NOT NULL,
    telegram_message_id integer,
    error               text,
    text_preview        text        NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (post_id, chat_id)
);
CREATE INDEX calendar_by_time ON calendar (workspace_id, publish_at, post_id);

-- The audit log: every event, in stream order.
CREATE TABLE audit_log
(
    position       bigint PRIMARY KEY, -- JetStream stream sequence
    event_id       text        NOT NULL UNIQUE,
    workspace_id   text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    actor          text        NOT NULL,
    correlation_id text        NOT NULL,
    causation_id   text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    details        jsonb       NOT NULL
);
CREATE INDEX audit_by_workspace ON audit_log (workspace_id, position);
