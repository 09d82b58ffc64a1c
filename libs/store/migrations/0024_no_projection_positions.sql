-- Projections keep only their stream checkpoint. The per-aggregate positions guarded against an
-- event published twice beyond JetStream's dedup window; since the relay pins each event to one
-- stream position (decision 0006) that cannot happen, and the upsert per projection and event
-- was the largest PostgreSQL cost of a busy delivery (decision 0002, addendum).
DROP TABLE projection_positions;
