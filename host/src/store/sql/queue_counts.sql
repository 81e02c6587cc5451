-- Jobs per (tenant, queue, state): folded totals plus the deltas not folded yet.
SELECT tenant_id, queue, state::text AS state, sum(n)::bigint AS n
FROM (
    SELECT tenant_id, queue, state, n FROM spool.queue_counts
    UNION ALL
    SELECT tenant_id, queue, state, delta FROM spool.queue_count_deltas
) c
GROUP BY tenant_id, queue, state
ORDER BY tenant_id, queue, state
