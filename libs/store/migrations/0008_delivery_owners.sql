-- Delivery rebuilt so that every table has one owner.
--
-- Owned by the delivery_schedule projection (fed by the event stream alone, dropped and rebuilt
-- by `herald projections rebuild delivery_schedule`): delivery_bots, delivery_chats,
-- delivery_schedule. Owned by the dispatcher (what it did; never rebuilt): delivery_progress,
-- delivery_chat_holds, delivery_bot_budget, delivery_bot_slots, delivery_bot_hours,
-- delivery_attempts. Owned by the leases: delivery_workers, delivery_partitions.
-- Every query of the first two groups lives in services/delivery/src/queue/.

-- A send task holds shared locks on the post, the chat and the bot from its final check until
-- its request has gone out; a command on any of them takes the exclusive lock when it writes its
-- event and keeps it until commit. So a decision that committed (opt-out, cancel, pause...) is
-- seen by every send that starts after it.
CREATE FUNCTION herald_event_gate() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.aggregate_id, 0));
    RETURN NEW;
END
$$;
CREATE TRIGGER events_gate
    BEFORE INSERT
    ON events
    FOR EACH ROW
EXECUTE FUNCTION herald_event_gate();

DROP TABLE delivery_bot_budget; -- replaced below, keyed by the Telegram bot id

CREATE TABLE delivery_bots
(
    bot_id          uuid PRIMARY KEY,
    workspace_id    uuid    NOT NULL,
    telegram_bot_id bigint  NOT NULL,
    paused_reason   text,
    paid_broadcast  boolean NOT NULL DEFAULT false
);

CREATE TABLE delivery_chats
(
    chat_id          uuid PRIMARY KEY,
    workspace_id     uuid     NOT NULL,
    bot_id           uuid     NOT NULL,
    telegram_chat_id bigint   NOT NULL,
    partition        smallint NOT NULL,
    -- the earliest due time of the chat's pending deliveries: a chat is a lane, and a claim
    -- looks at lanes (bounded by bots and chats in flight), never at the whole backlog
    next_due_at      timestamptz
);
CREATE INDEX delivery_chats_lanes ON delivery_chats (bot_id, next_due_at) WHERE next_due_at IS NOT NULL;

CREATE TABLE delivery_schedule
(
    post_id      uuid        NOT NULL,
    chat_id      uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    due_at       timestamptz NOT NULL,
    -- planned (not yet approved) | pending (to deliver) | settled (an outcome is recorded) |
    -- cancelled (post cancelled or rejected)
    status       text        NOT NULL,
    -- how many times an in-doubt delivery was resolved "resend": each one is a new delivery
    generation   integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (post_id, chat_id)
);
CREATE INDEX delivery_schedule_pending ON delivery_schedule (chat_id, due_at, post_id) WHERE status = 'pending';

-- What the dispatcher did with each delivery (generation) it claimed.
CREATE TABLE delivery_progress
(
    post_id    uuid    NOT NULL,
    chat_id    uuid    NOT NULL,
    generation integer NOT NULL,
    -- sending: the request may be on the wire | idle: tried, to try again | done: outcome recorded
    state      text    NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    migrated   boolean NOT NULL DEFAULT false,
    claimed_by text,
    claimed_at timestamptz,
    PRIMARY KEY (post_id, chat_id)
);
CREATE INDEX delivery_progress_sending ON delivery_progress (claimed_by) WHERE state = 'sending';
CREATE INDEX delivery_progress_sending_by_chat ON delivery_progress (chat_id) WHERE state = 'sending';

-- A chat that must wait: 429 retry_after, transient back-off, hourly cap reached.
CREATE TABLE delivery_chat_holds
(
    chat_id    uuid PRIMARY KEY,
    held_until timestamptz NOT NULL,
    reason     text        NOT NULL
);

-- Per Telegram bot (not per registration): the row lock that serialises its budget, a bot-wide
-- hold after a bot-wide 429, the per-second slot log, and sends per minute for the hourly cap.
CREATE TABLE delivery_bot_budget
(
    telegram_bot_id bigint PRIMARY KEY,
    held_until      timestamptz
);
CREATE TABLE delivery_bot_slots
(
    id              bigserial PRIMARY KEY,
    telegram_bot_id bigint      NOT NULL,
    reserved_at     timestamptz NOT NULL,
    -- when the answer came back: a slot counts until a full window after it, so a request that
    -- was slow to reach Telegram can never be counted early
    done_at         timestamptz
);
CREATE INDEX delivery_bot_slots_by_bot ON delivery_bot_slots (telegram_bot_id, reserved_at);
CREATE TABLE delivery_bot_hours
(
    telegram_bot_id bigint      NOT NULL,
    minute          timestamptz NOT NULL,
    sends           integer     NOT NULL,
    PRIMARY KEY (telegram_bot_id, minute)
);

ALTER TABLE delivery_attempts ADD COLUMN post_id uuid;
ALTER TABLE delivery_attempts ADD COLUMN telegram_bot_id bigint;
CREATE INDEX delivery_attempts_by_post ON delivery_attempts (post_id, chat_id, at);

-- Carry over what the dispatcher did; the projection's own tables are rebuilt from the stream.
INSERT INTO delivery_progress (post_id, chat_id, generation, state, attempts, migrated, claimed_by, claimed_at)
SELECT q.post_id, q.chat_id,
       (SELECT count(*) FROM events e
         WHERE e.aggregate_type = 'Post' AND e.aggregate_id = q.post_id::text
           AND e.event_type = 'DeliveryResolved'
           AND e.payload -> 'DeliveryResolved' ->> 'chat_id' = q.chat_id::text
           AND (e.payload -> 'DeliveryResolved' ->> 'resolution') = 'resend'),
       CASE q.state WHEN 'sending' THEN 'sending' WHEN 'scheduled' THEN 'idle' ELSE 'done' END,
       q.attempts, q.migrated, q.claimed_by, q.claimed_at
  FROM delivery_queue q
 WHERE q.state <> 'scheduled' OR q.attempts > 0;
DELETE FROM projection_positions WHERE projection = 'delivery_schedule';
DELETE FROM projection_checkpoints WHERE projection = 'delivery_schedule';
DROP TABLE delivery_queue;
DROP TABLE delivery_limits;
DROP TABLE delivery_bot_sends;
