-- Deliveries are aggregates of their own (decision 0008): the calendar keeps each delivery's
-- place in its post's planning order (pages of a post's deliveries) and its automatic resends,
-- and counts a post's deliveries by status from an index.
ALTER TABLE calendar
    ADD COLUMN position     integer NOT NULL DEFAULT 0,
    ADD COLUMN auto_resends integer NOT NULL DEFAULT 0;
CREATE INDEX calendar_by_post_status ON calendar (post_id, delivery, position);

-- The old rows have no position: the calendar is rebuilt from the stream on its next start.
DELETE FROM calendar;
DELETE FROM projection_positions WHERE projection = 'calendar';
DELETE FROM projection_checkpoints WHERE projection = 'calendar';
