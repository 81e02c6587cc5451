-- How many of tenant $1's jobs are pending (scheduled, available, running or retryable), from
-- the counters: folded totals plus the deltas not folded yet.
SELECT coalesce(sum(n), 0)::bigint FROM (
    SELECT n FROM spool.queue_counts
    WHERE tenant_id = $1 AND state IN ('scheduled', 'available', 'running', 'retryable')
    UNION ALL
    SELECT delta FROM spool.queue_count_deltas
    WHERE tenant_id = $1 AND state IN ('scheduled', 'available', 'running', 'retryable')
) c
