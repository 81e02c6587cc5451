-- Per (tenant, queue): what the built-in alert rules read, at $1 (the database's clock when
-- NULL). Attempts completed and failed over the last $2 ms and jobs dead-lettered over the
-- last $3 ms, from the folded per-minute counters (a window covers the whole minute it starts
-- in), and how long the oldest available job has been runnable.
WITH clock AS (
    SELECT coalesce($1::timestamptz, now()) AS now
), bounds AS (
    SELECT c.now,
           date_trunc('minute', c.now - make_interval(secs => $2::bigint / 1000.0)) AS rate_from,
           date_trunc('minute', c.now - make_interval(secs => $3::bigint / 1000.0)) AS dead_from
    FROM clock c
), minutes AS (
    SELECT m.tenant_id, m.queue,
           coalesce(sum(m.completed) FILTER (WHERE m.minute >= b.rate_from), 0)::bigint
               AS completed,
           coalesce(sum(m.failed) FILTER (WHERE m.minute >= b.rate_from), 0)::bigint AS failed,
           coalesce(sum(m.dead) FILTER (WHERE m.minute >= b.dead_from), 0)::bigint AS dead
    FROM spool.queue_minutes m, bounds b
    WHERE m.minute >= least(b.rate_from, b.dead_from) AND m.minute <= b.now
    GROUP BY m.tenant_id, m.queue
), available AS (
    SELECT c.tenant_id, c.queue
    FROM (
        SELECT tenant_id, queue, n FROM spool.queue_counts WHERE state = 'available'
        UNION ALL
        SELECT tenant_id, queue, delta FROM spool.queue_count_deltas WHERE state = 'available'
    ) c
    GROUP BY c.tenant_id, c.queue
    HAVING sum(c.n) > 0
), queues AS (
    SELECT tenant_id, queue FROM minutes
    UNION
    SELECT tenant_id, queue FROM available
), oldest AS (
    SELECT q.tenant_id, q.queue,
           CASE WHEN a.queue IS NOT NULL
                THEN spool.oldest_available(q.tenant_id, q.queue) END AS since
    FROM queues q
    LEFT JOIN available a ON a.tenant_id = q.tenant_id AND a.queue = q.queue
)
SELECT q.tenant_id, t.name AS tenant, q.queue,
       coalesce(m.completed, 0) AS completed,
       coalesce(m.failed, 0) AS failed,
       coalesce(m.dead, 0) AS dead,
       greatest(extract(epoch FROM b.now - o.since), 0)::double precision AS oldest_available_secs
FROM queues q
CROSS JOIN bounds b
JOIN spool.tenants t ON t.id = q.tenant_id
JOIN oldest o ON o.tenant_id = q.tenant_id AND o.queue = q.queue
LEFT JOIN minutes m ON m.tenant_id = q.tenant_id AND m.queue = q.queue
ORDER BY t.name, q.queue
