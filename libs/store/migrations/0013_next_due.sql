-- The dispatcher wakes at the next due time of its partitions instead of waiting for its next
-- tick (`delivery::queue::claims::next_due`): the earliest future due time, by partition.
CREATE INDEX delivery_chats_next_due ON delivery_chats (partition, next_due_at) WHERE next_due_at IS NOT NULL;
