-- Hot keys: an attempt that loses an optimistic race on a store key is run again promptly and
-- is not charged an attempt; each job counts the races it lost (shown by the API), bounded by
-- its tenant's max_conflicts, past which a conflict is an ordinary failure of kind `commit`.
ALTER TABLE spool.jobs ADD COLUMN conflicts integer NOT NULL DEFAULT 0;
ALTER TABLE spool.job_history ADD COLUMN conflicts integer NOT NULL DEFAULT 0;

-- complete_many takes each job's conflict bound (migrations/functions/complete_many.sql
-- defines the new signature).
DROP FUNCTION spool.complete_many(bigint[], uuid[], uuid[], bytea[], jsonb[], jsonb[], bigint[],
                                  timestamptz);
