-- The relay removes published events from the outbox by their identity, a batch at a time
-- (`store::journal::append_all`); without an index each removal scanned the whole outbox,
-- which holds thousands of rows while a bulk import is relayed.
CREATE INDEX outbox_by_event ON outbox (aggregate_type, aggregate_id, sequence);
