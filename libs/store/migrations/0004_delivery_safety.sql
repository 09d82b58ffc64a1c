-- Every send attempt and its outcome class: the source of safety stats (sent in the last hour,
-- recent 429s/403s) and of hourly-cap windows that survive restarts. Never message content.
CREATE TABLE delivery_attempts
(
    bot_id  uuid        NOT NULL,
    chat_id uuid        NOT NULL,
    -- negative: a group, supergroup or channel (paced at 20 per minute)
    telegram_chat_id bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    -- sent | rate_limited | forbidden | permanent | transient | in_doubt | unauthorized | migrated
    outcome text        NOT NULL
);
CREATE INDEX delivery_attempts_by_bot ON delivery_attempts (bot_id, at);
CREATE INDEX delivery_attempts_by_chat ON delivery_attempts (chat_id, at);

-- Per-bot and per-chat delivery settings that differ from the defaults, and the bot circuit
-- breaker, maintained from Bot/Chat events by the delivery_schedule projection.
CREATE TABLE delivery_limits
(
    scope                text    NOT NULL, -- 'bot' | 'chat'
    id                   uuid    NOT NULL,
    hourly_cap           integer,
    paused_reason        text,
    allow_paid_broadcast boolean NOT NULL DEFAULT false,
    PRIMARY KEY (scope, id)
);

-- A migrated group is sent to once more under its new id, never twice.
ALTER TABLE delivery_queue ADD COLUMN migrated boolean NOT NULL DEFAULT false;
