-- A tenant's job ids in one state, oldest first. $1 tenant id, $2 state, $3 limit.
SELECT id FROM (
    SELECT id, created_at FROM spool.jobs WHERE tenant_id = $1 AND state::text = $2
    UNION ALL
    SELECT id, created_at FROM spool.job_history WHERE tenant_id = $1 AND state::text = $2
) j
ORDER BY created_at, id
LIMIT $3
