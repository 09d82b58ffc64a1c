-- Which worker made an attempt: a worker paces its own sends in memory, and uses the attempt log
-- (with a wider margin) only for sends another worker made, e.g. before a partition handover.
ALTER TABLE delivery_attempts ADD COLUMN worker text NOT NULL DEFAULT '';
