-- Prunes idempotency rows older than the retention ($1 ms), at most $2: done-records, and
-- keys whose job is no longer pending. Never a key whose job is still in the hot table.
DELETE FROM spool.idempotency k
WHERE (k.tenant_id, k.key) IN (
    SELECT i.tenant_id, i.key FROM spool.idempotency i
    WHERE coalesce(i.done_at, i.created_at) < now() - make_interval(secs => $1 / 1000.0)
      AND NOT EXISTS (SELECT 1 FROM spool.jobs j
                      WHERE j.tenant_id = i.tenant_id AND j.id = i.job_id)
    LIMIT $2
)
