-- Telegram identities: one Telegram bot is one registered bot (in any workspace), and one
-- Telegram chat is one connected chat per bot. Two copies of one identity would each get their
-- own limits (double rate against Telegram) and opting out one copy would leave the other live.
--
-- These tables are owned by the event store (libs/store): they are filled only by the trigger
-- below, in the transaction that commits the event, so a UNIQUE violation aborts the event
-- itself and concurrent commands cannot both succeed. They are not projections: nothing else
-- writes them and they are never rebuilt from the stream. The API reads them only for a
-- friendly pre-check (through `store::EventStore`).
--
-- The payloads read here are postgres-es's serialisation of the domain events (serde's external
-- tagging: `{"ChatConnected": {...}}`), version 1. A new event version must be handled here too.

-- The Telegram bot id (the number before ':' in the token) of every registered bot.
CREATE TABLE telegram_bot_identities
(
    telegram_bot_id bigint PRIMARY KEY,
    bot_id          uuid   NOT NULL UNIQUE,
    workspace_id    uuid   NOT NULL
);

-- The Telegram chat ids of every connected chat, per bot. A chat that migrated (group ->
-- supergroup) holds its new id and keeps its former one (`migrated_to` set): Telegram answers
-- any send to the former id with "migrated to <new id>", so a chat connected there again would
-- be migrated by delivery onto the same supergroup, a second copy of the same identity.
CREATE TABLE telegram_chat_identities
(
    bot_id           uuid   NOT NULL,
    telegram_chat_id bigint NOT NULL,
    chat_id          uuid   NOT NULL,
    workspace_id     uuid   NOT NULL,
    migrated_to      bigint,
    CONSTRAINT telegram_chat_identities_unique PRIMARY KEY (bot_id, telegram_chat_id)
);
CREATE INDEX telegram_chat_identities_by_chat ON telegram_chat_identities (chat_id);

-- Events that could not claim their identity but had to be recorded anyway, for an operator:
-- a ChatMigrated onto a Telegram id already connected as another chat (a migration is a fact
-- Telegram reports; refusing it would only break delivery), and duplicates that existed before
-- this migration (the first one in commit order keeps the identity).
CREATE TABLE telegram_identity_conflicts
(
    id             bigserial PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('bot', 'chat')),
    telegram_id    bigint      NOT NULL,   -- Telegram bot id, or Telegram chat id
    bot_id         uuid,                   -- for chats: the bot the chat is connected to
    aggregate_id   uuid        NOT NULL,   -- the bot or chat whose event could not claim it
    existing_id    uuid,                   -- the bot or chat that holds it
    event_type     text        NOT NULL,
    sequence       bigint      NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now()
);

-- Claims the identity an event carries. `strict`: refuse (raise, aborting the event's insert)
-- when a BotRegistered or ChatConnected finds its identity taken; otherwise record a conflict.
-- A ChatMigrated is never refused. Errors raised for the application:
--   HI001 a Telegram chat already connected to this bot, HI002 a Telegram bot already
--   registered; DETAIL is a JSON object naming the holder (`existing_id`, `workspace_id`).
CREATE FUNCTION herald_claim_identity(p_aggregate_type text, p_aggregate_id text, p_sequence bigint,
                                      p_event_type text, p_payload json, p_strict boolean)
    RETURNS void
    LANGUAGE plpgsql AS
$$
DECLARE
    body        json;
    tg_id       bigint;
    bot         uuid;
    workspace   uuid;
    claimed     uuid;
    existing    uuid;
    existing_ws uuid;
BEGIN
    IF p_aggregate_type = 'Bot' AND p_event_type = 'BotRegistered' THEN
        body := p_payload -> 'BotRegistered';
        tg_id := (body ->> 'telegram_bot_id')::bigint;
        INSERT INTO telegram_bot_identities (telegram_bot_id, bot_id, workspace_id)
        VALUES (tg_id, p_aggregate_id::uuid, (body ->> 'workspace_id')::uuid)
        ON CONFLICT DO NOTHING
        RETURNING bot_id INTO claimed;
        IF claimed IS NULL THEN
            -- A concurrent claimant has committed by now (ON CONFLICT waited for it), and this
            -- statement's snapshot is newer than that commit.
            SELECT i.bot_id, i.workspace_id
            INTO existing, existing_ws
            FROM telegram_bot_identities i
            WHERE i.telegram_bot_id = tg_id;
            IF p_strict THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'HI002',
                    MESSAGE = format('Telegram bot %s is already registered as bot %s', tg_id, existing),
                    DETAIL = json_build_object('telegram_bot_id', tg_id, 'existing_id', existing,
                                               'workspace_id', existing_ws)::text,
                    CONSTRAINT = 'telegram_bot_identities_pkey';
            END IF;
            INSERT INTO telegram_identity_conflicts (kind, telegram_id, aggregate_id, existing_id,
                                                     event_type, sequence)
            VALUES ('bot', tg_id, p_aggregate_id::uuid, existing, p_event_type, p_sequence);
            RAISE WARNING 'Telegram bot % of bot % is already registered as bot %', tg_id, p_aggregate_id, existing;
        END IF;

    ELSIF p_aggregate_type = 'Chat' AND p_event_type = 'ChatConnected' THEN
        body := p_payload -> 'ChatConnected';
        tg_id := (body ->> 'telegram_chat_id')::bigint;
        bot := (body ->> 'bot_id')::uuid;
        INSERT INTO telegram_chat_identities (bot_id, telegram_chat_id, chat_id, workspace_id)
        VALUES (bot, tg_id, p_aggregate_id::uuid, (body ->> 'workspace_id')::uuid)
        ON CONFLICT DO NOTHING
        RETURNING chat_id INTO claimed;
        IF claimed IS NULL THEN
            SELECT i.chat_id, i.workspace_id
            INTO existing, existing_ws
            FROM telegram_chat_identities i
            WHERE i.bot_id = bot
              AND i.telegram_chat_id = tg_id;
            IF p_strict THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'HI001',
                    MESSAGE = format('Telegram chat %s is already connected to bot %s as chat %s',
                                     tg_id, bot, existing),
                    DETAIL = json_build_object('telegram_chat_id', tg_id, 'bot_id', bot,
                                               'existing_id', existing, 'workspace_id', existing_ws)::text,
                    CONSTRAINT = 'telegram_chat_identities_unique';
            END IF;
            INSERT INTO telegram_identity_conflicts (kind, telegram_id, bot_id, aggregate_id, existing_id,
                                                     event_type, sequence)
            VALUES ('chat', tg_id, bot, p_aggregate_id::uuid, existing, p_event_type, p_sequence);
            RAISE WARNING 'Telegram chat % of bot % (chat %) is already connected as chat %',
                tg_id, bot, p_aggregate_id, existing;
        END IF;

    ELSIF p_aggregate_type = 'Chat' AND p_event_type = 'ChatMigrated' THEN
        body := p_payload -> 'ChatMigrated';
        tg_id := (body ->> 'to_telegram_chat_id')::bigint;
        -- The bot and workspace are those the chat was connected with (they never change).
        SELECT (e.payload -> 'ChatConnected' ->> 'bot_id')::uuid,
               (e.payload -> 'ChatConnected' ->> 'workspace_id')::uuid
        INTO bot, workspace
        FROM events e
        WHERE e.aggregate_type = 'Chat'
          AND e.aggregate_id = p_aggregate_id
          AND e.event_type = 'ChatConnected';
        IF bot IS NULL THEN
            RETURN; -- not a connected chat: the domain never records this
        END IF;
        UPDATE telegram_chat_identities
        SET migrated_to = tg_id
        WHERE bot_id = bot
          AND telegram_chat_id = (body ->> 'from_telegram_chat_id')::bigint
          AND chat_id = p_aggregate_id::uuid;
        INSERT INTO telegram_chat_identities (bot_id, telegram_chat_id, chat_id, workspace_id)
        VALUES (bot, tg_id, p_aggregate_id::uuid, workspace)
        ON CONFLICT DO NOTHING
        RETURNING chat_id INTO claimed;
        IF claimed IS NULL THEN
            SELECT i.chat_id
            INTO existing
            FROM telegram_chat_identities i
            WHERE i.bot_id = bot
              AND i.telegram_chat_id = tg_id;
            IF existing IS DISTINCT FROM p_aggregate_id::uuid THEN
                -- The new id belongs to another chat, which keeps it; this chat keeps its former
                -- id. The migration is recorded all the same; an operator resolves the pair.
                INSERT INTO telegram_identity_conflicts (kind, telegram_id, bot_id, aggregate_id,
                                                         existing_id, event_type, sequence)
                VALUES ('chat', tg_id, bot, p_aggregate_id::uuid, existing, p_event_type, p_sequence);
                RAISE WARNING 'chat % migrated to Telegram chat % of bot %, already connected as chat %',
                    p_aggregate_id, tg_id, bot, existing;
            END IF;
        END IF;
    END IF;
END
$$;

CREATE FUNCTION herald_events_claim_identity() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM herald_claim_identity(NEW.aggregate_type, NEW.aggregate_id, NEW.sequence,
                                  NEW.event_type, NEW.payload, true);
    RETURN NEW;
END
$$;

-- Backfill from the history, in commit order as far as it is known (the time a command was
-- handled, then the aggregate's own order). No event may be written meanwhile: those written
-- before the trigger exists would be missed.
LOCK TABLE events IN EXCLUSIVE MODE;

DO
$$
    DECLARE
        e record;
    BEGIN
        FOR e IN
            SELECT aggregate_type, aggregate_id, sequence, event_type, payload
            FROM events
            WHERE (aggregate_type, event_type) IN (('Bot', 'BotRegistered'),
                                                   ('Chat', 'ChatConnected'),
                                                   ('Chat', 'ChatMigrated'))
            ORDER BY metadata ->> 'occurred_at' NULLS LAST, aggregate_id, sequence
            LOOP
                PERFORM herald_claim_identity(e.aggregate_type, e.aggregate_id, e.sequence,
                                              e.event_type, e.payload, false);
            END LOOP;
    END
$$;

CREATE TRIGGER events_claim_identity
    AFTER INSERT
    ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('BotRegistered', 'ChatConnected', 'ChatMigrated'))
EXECUTE FUNCTION herald_events_claim_identity();
