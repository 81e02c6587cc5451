-- The queues tenant $1 has jobs in, in any state (folded totals plus the deltas not folded
-- yet; a queue whose every count is back to zero is not one).
SELECT DISTINCT queue FROM (
    SELECT queue, state, sum(n) AS n FROM (
        SELECT queue, state, n FROM spool.queue_counts WHERE tenant_id = $1
        UNION ALL
        SELECT queue, state, delta FROM spool.queue_count_deltas WHERE tenant_id = $1
    ) c
    GROUP BY queue, state
) s
WHERE n <> 0
ORDER BY queue
