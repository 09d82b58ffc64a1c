-- The event store, as cqrs-es / postgres-es expect it. Events are immutable: never UPDATE or
-- DELETE them; evolve by new event versions and upcasters.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Transactional outbox: a trigger adds one row per event in the transaction that commits the
-- event, so an event is in the outbox if and only if it is committed. The relay publishes rows
-- to JetStream and deletes them; it selects *unpublished rows*, never "ids above a high-water
-- mark", so a transaction that commits late (with a lower id) is never skipped.
CREATE TABLE outbox
(
    id             bigserial PRIMARY KEY,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    enqueued_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION herald_outbox_enqueue() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    INSERT INTO outbox (aggregate_type, aggregate_id, sequence)
    VALUES (NEW.aggregate_type, NEW.aggregate_id, NEW.sequence);
    -- Wakes the relay at commit time; it also polls, so a lost notification only adds latency.
    PERFORM pg_notify('herald_outbox', '');
    RETURN NEW;
END
$$;

CREATE TRIGGER events_to_outbox
    AFTER INSERT
    ON events
    FOR EACH ROW
EXECUTE FUNCTION herald_outbox_enqueue();
