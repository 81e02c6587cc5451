-- Creates tenant $1's schedule $2, or replaces every setting of the one of that name, keeping
-- what its ticks recorded. $14 is its next tick, as the caller computed it; with $15 a stored
-- schedule keeps the next tick it has (its timing did not change, and the leader may have
-- moved it on since the caller read it).
INSERT INTO spool.schedules AS s (
    tenant_id, name, cron, timezone, handler, payload, queue, priority, max_attempts, limits,
    overlap, catch_up, enabled, next_fire_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (tenant_id, name) DO UPDATE
SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, handler = EXCLUDED.handler,
    payload = EXCLUDED.payload, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
    max_attempts = EXCLUDED.max_attempts, limits = EXCLUDED.limits,
    overlap = EXCLUDED.overlap, catch_up = EXCLUDED.catch_up, enabled = EXCLUDED.enabled,
    next_fire_at = CASE WHEN $15 THEN s.next_fire_at ELSE EXCLUDED.next_fire_at END,
    updated_at = now()
RETURNING s.*, (xmax = 0) AS created
