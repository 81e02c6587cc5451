-- Up to $1 alerts whose webhook notification is due at $2 (the database's clock when NULL),
-- the longest waiting first.
SELECT a.tenant_id, t.name AS tenant, a.rule, a.queue, a.state, a.value, a.threshold,
       a.description, a.fired_at, a.resolved_at, a.evaluated_at, a.notify_status,
       a.notify_seq, a.notify_attempts, a.notify_next_at, a.notify_error, a.last_notified_at
FROM spool.alerts a
JOIN spool.tenants t ON t.id = a.tenant_id
WHERE a.notify_status IS NOT NULL AND a.notify_next_at <= coalesce($2::timestamptz, now())
ORDER BY a.notify_next_at
LIMIT $1
