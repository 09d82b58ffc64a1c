-- Critical path first: each lane carries the least time its pending deliveries need under the
-- chat's own limits (1 per second; 20 per minute for groups and channels), and a claim serves
-- the longest first, so when a bot's budget binds the last message leaves as early as the
-- limits allow. Maintained by the delivery_schedule projection with its lanes.
ALTER TABLE delivery_chats ADD COLUMN chain_ms bigint NOT NULL DEFAULT 0;
DROP INDEX delivery_chats_lanes;
CREATE INDEX delivery_chats_lanes ON delivery_chats (bot_id, chain_ms DESC, next_due_at)
    WHERE next_due_at IS NOT NULL;

-- The projection is rebuilt from the stream on its next start (what the dispatcher did is in
-- its own tables, so nothing is re-opened).
TRUNCATE delivery_schedule, delivery_chats, delivery_bots;
DELETE FROM projection_positions WHERE projection = 'delivery_schedule';
DELETE FROM projection_checkpoints WHERE projection = 'delivery_schedule';
