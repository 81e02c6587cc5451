-- Per (tenant, queue): jobs per state (folded counters plus pending deltas, never count(*)),
-- when the oldest available job became runnable, and jobs finished over the last $2 minutes.
WITH counts AS (
    SELECT c.tenant_id, c.queue, c.state, sum(c.n)::bigint AS n
    FROM (
        SELECT tenant_id, queue, state, n FROM spool.queue_counts
        UNION ALL
        SELECT tenant_id, queue, state, delta FROM spool.queue_count_deltas
    ) c
    WHERE $1::bigint IS NULL OR c.tenant_id = $1
    GROUP BY c.tenant_id, c.queue, c.state
), rates AS (
    SELECT m.tenant_id, m.queue, sum(m.completed)::bigint AS completed,
           sum(m.failed)::bigint AS failed, sum(m.dead)::bigint AS dead
    FROM spool.queue_minutes m
    WHERE ($1::bigint IS NULL OR m.tenant_id = $1)
      AND m.minute >= date_trunc('minute', now()) - make_interval(mins => $2::integer)
    GROUP BY m.tenant_id, m.queue
), queues AS (
    SELECT tenant_id, queue FROM counts
    UNION
    SELECT tenant_id, queue FROM rates
)
SELECT q.tenant_id, t.name AS tenant, q.queue,
       coalesce((SELECT jsonb_object_agg(c.state::text, c.n) FROM counts c
                 WHERE c.tenant_id = q.tenant_id AND c.queue = q.queue), '{}') AS counts,
       spool.oldest_available(q.tenant_id, q.queue) AS oldest_available,
       now() AS now,
       coalesce(r.completed, 0) AS completed,
       coalesce(r.failed, 0) AS failed,
       coalesce(r.dead, 0) AS dead
FROM queues q
JOIN spool.tenants t ON t.id = q.tenant_id
LEFT JOIN rates r ON r.tenant_id = q.tenant_id AND r.queue = q.queue
ORDER BY t.name, q.queue
