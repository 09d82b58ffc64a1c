-- Posts still waiting for approval after their publish time (`delivery::expiry`).
CREATE INDEX delivery_schedule_unapproved ON delivery_schedule (due_at) WHERE status = 'planned';
