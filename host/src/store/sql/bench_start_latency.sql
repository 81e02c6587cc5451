-- Enqueue→start latency, in milliseconds, of those of tenant $1's jobs $2 that have finished:
-- how many, the median, the 99th percentile and the slowest.
SELECT count(*) AS jobs,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY l.ms), 0) AS p50_ms,
       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY l.ms), 0) AS p99_ms,
       coalesce(max(l.ms), 0) AS max_ms
FROM (
    SELECT extract(epoch FROM h.attempted_at - h.created_at)::float8 * 1000 AS ms
    FROM spool.job_history h
    WHERE h.tenant_id = $1 AND h.id = ANY ($2) AND h.attempted_at IS NOT NULL
) l
