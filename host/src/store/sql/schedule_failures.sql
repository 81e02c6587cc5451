-- Per schedule with runs: of its newest $1 ticks that made or found a job whose job has
-- finished, how many there are and how many ended dead (the failing-schedule alert's figures).
WITH runs AS (
    SELECT s.tenant_id, s.name, r.state
    FROM spool.schedules s
    CROSS JOIN LATERAL (
        SELECT h.state FROM spool.schedule_ticks k
        JOIN LATERAL (
            SELECT hh.state FROM spool.job_history hh
            WHERE hh.tenant_id = k.tenant_id AND hh.id = k.job_id LIMIT 1
        ) h ON true
        WHERE k.tenant_id = s.tenant_id AND k.schedule = s.name
          AND k.outcome IN ('enqueued', 'duplicate')
        ORDER BY k.tick_at DESC LIMIT $1
    ) r
)
SELECT r.tenant_id, t.name AS tenant, r.name AS schedule,
       count(*) AS finished, count(*) FILTER (WHERE r.state = 'dead') AS dead
FROM runs r JOIN spool.tenants t ON t.id = r.tenant_id
GROUP BY r.tenant_id, t.name, r.name
ORDER BY t.name, r.name
