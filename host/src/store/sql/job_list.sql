-- A page of a tenant's jobs, newest first, from the hot table and history. $1 tenant id,
-- $2 queue, $3 handler, $4 the cursor (ids below it), $5 the page size, $6 the state (NULL:
-- any). Each side is skipped outright when the state is one it cannot hold. The dead-letter
-- queue has a query of its own (job_list_dead.sql), on its partial index.
SELECT * FROM (
    (SELECT tenant_id, id, handler, queue, state::text AS state, attempt, max_attempts, conflicts, priority,
            idempotency_key, ''::bytea AS payload, NULL::bytea AS result, false AS duplicate,
            errors, '[]'::jsonb AS logs, parent_id, created_at, run_at,
            NULL::timestamptz AS finished_at
     FROM spool.jobs
     WHERE ($6::text IS NULL OR $6 IN ('scheduled', 'available', 'running', 'retryable'))
       AND tenant_id = $1 AND ($6::text IS NULL OR state = $6::spool.job_state)
       AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR handler = $3)
       AND ($4::uuid IS NULL OR id < $4)
     ORDER BY id DESC LIMIT $5)
    UNION ALL
    (SELECT tenant_id, id, handler, queue, state::text, attempt, max_attempts, conflicts, priority,
            idempotency_key, ''::bytea, NULL::bytea, duplicate, errors, '[]'::jsonb, parent_id,
            created_at, run_at, finished_at
     FROM spool.job_history
     WHERE ($6::text IS NULL OR $6 IN ('completed', 'dead', 'cancelled'))
       AND tenant_id = $1 AND ($6::text IS NULL OR state = $6::spool.job_state)
       AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR handler = $3)
       AND ($4::uuid IS NULL OR id < $4)
     ORDER BY id DESC LIMIT $5)
) j
ORDER BY id DESC
LIMIT $5
