-- The newest $3 ticks of each of tenant $1's schedules named in $2 (every schedule when NULL),
-- newest first, with the state of each tick's job wherever it is now (NULL once history
-- dropped it).
SELECT t.schedule, t.tick_at, t.outcome, t.job_id, t.detail, t.handled_at,
       coalesce(j.state, h.state)::text AS job_state
FROM spool.schedules s
CROSS JOIN LATERAL (
    SELECT * FROM spool.schedule_ticks k
    WHERE k.tenant_id = s.tenant_id AND k.schedule = s.name
    ORDER BY k.tick_at DESC LIMIT $3
) t
LEFT JOIN spool.jobs j ON j.tenant_id = t.tenant_id AND j.id = t.job_id
LEFT JOIN LATERAL (
    SELECT hh.state FROM spool.job_history hh
    WHERE hh.tenant_id = t.tenant_id AND hh.id = t.job_id LIMIT 1
) h ON j.id IS NULL
WHERE s.tenant_id = $1 AND ($2::text[] IS NULL OR s.name = ANY ($2))
ORDER BY t.schedule, t.tick_at DESC
