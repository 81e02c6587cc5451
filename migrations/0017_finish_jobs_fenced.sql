-- spool.finish_jobs takes the leases that fence it and can write done-records, and says
-- which jobs it moved (migrations/functions/finish_jobs.sql): the group commit's fast path
-- is one fenced delete instead of a row lock and then a delete. The old signature goes;
-- the new one is created with the other functions after the numbered migrations.
DROP FUNCTION IF EXISTS spool.finish_jobs(bigint[], uuid[], spool.job_state, bytea[], jsonb[],
                                          boolean[], jsonb[], timestamptz);
