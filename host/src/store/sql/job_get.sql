-- One job by id, wherever it is. $1 tenant id, $2 job id.
SELECT tenant_id, id, handler, queue, state::text AS state, attempt, max_attempts, conflicts, priority,
       idempotency_key, payload, NULL::bytea AS result, false AS duplicate, errors, logs,
       parent_id, created_at, run_at, NULL::timestamptz AS finished_at
FROM spool.jobs WHERE tenant_id = $1 AND id = $2
UNION ALL
SELECT tenant_id, id, handler, queue, state::text, attempt, max_attempts, conflicts, priority,
       idempotency_key, payload, result, duplicate, errors, logs, parent_id, created_at, run_at,
       finished_at
FROM spool.job_history WHERE tenant_id = $1 AND id = $2
LIMIT 1
