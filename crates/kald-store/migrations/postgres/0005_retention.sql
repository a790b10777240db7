-- Retention of call records' personal data (issue 9) for PostgreSQL. Keep in step with
-- migrations/sqlite/0005_retention.sql: the same columns and meaning; only the types differ.

-- The policy's call_records_with_cpr: after that period (from the call's end, or its start if
-- it never ended) the retention sweeper removes the personal data of a call record that holds
-- a CPR number (cpr_sealed, cpr_hash and caller become NULL) and notes when here; the
-- anonymous columns for statistics stay. Not while a hold covers the call or it has recordings.
ALTER TABLE calls ADD COLUMN pii_scrubbed_us BIGINT;

-- The sweeper's look-up: call records still holding a CPR number, by when their period starts.
CREATE INDEX calls_pii_due ON calls ((COALESCE(ended_us, started_us)), id)
    WHERE cpr_hash IS NOT NULL;
