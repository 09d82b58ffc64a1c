-- A post's history (`GET .../posts/{id}/history`) reads the audit by aggregate.
CREATE INDEX audit_by_aggregate ON audit_log (aggregate_id, position);
