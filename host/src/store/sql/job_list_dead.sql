-- A page of a tenant's dead-letter queue, newest first, on the partial index of dead jobs.
-- $1 tenant id, $2 queue, $3 handler, $4 the cursor (ids below it), $5 the page size.
SELECT tenant_id, id, handler, queue, state::text AS state, attempt, max_attempts, conflicts, priority,
       idempotency_key, ''::bytea AS payload, NULL::bytea AS result, duplicate, errors,
       '[]'::jsonb AS logs, parent_id, created_at, run_at, finished_at
FROM spool.job_history
WHERE tenant_id = $1 AND state = 'dead'
  AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR handler = $3)
  AND ($4::uuid IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
