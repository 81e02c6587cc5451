-- The alerts of tenant $1 (every tenant's when NULL): firing first, then the most recent
-- first.
SELECT a.tenant_id, t.name AS tenant, a.rule, a.queue, a.state, a.value, a.threshold,
       a.description, a.fired_at, a.resolved_at, a.evaluated_at, a.notify_status,
       a.notify_seq, a.notify_attempts, a.notify_next_at, a.notify_error, a.last_notified_at
FROM spool.alerts a
JOIN spool.tenants t ON t.id = a.tenant_id
WHERE ($1::bigint IS NULL OR a.tenant_id = $1)
ORDER BY a.state = 'firing' DESC, coalesce(a.resolved_at, a.fired_at) DESC, t.name, a.queue,
         a.rule
