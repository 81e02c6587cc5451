-- Up to $1 enabled schedules whose next tick is due by $2 (the database's clock when null),
-- the most overdue first, with their tenants' names and limits.
SELECT s.*, t.name AS tenant, t.limits AS tenant_limits
FROM spool.schedules s
JOIN spool.tenants t ON t.id = s.tenant_id
WHERE s.enabled AND s.next_fire_at <= coalesce($2::timestamptz, now())
ORDER BY s.next_fire_at
LIMIT $1
