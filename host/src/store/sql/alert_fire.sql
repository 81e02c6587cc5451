-- Fires the alert ($1 tenant, $2 rule, $3 queue) unless it is firing already: a new episode
-- from $7 (the database's clock when NULL), with a webhook notification queued when $8.
-- Returns a row only when it fired, so two evaluators racing fire it once.
INSERT INTO spool.alerts AS a (
    tenant_id, rule, queue, state, value, threshold, description, fired_at, resolved_at,
    evaluated_at, notify_status, notify_seq, notify_attempts, notify_next_at, notify_error
)
SELECT $1, $2, $3, 'firing', $4, $5, $6, c.now, NULL, c.now,
       CASE WHEN $8::boolean THEN 'firing' END, 1, 0,
       CASE WHEN $8::boolean THEN c.now END, NULL
FROM (SELECT coalesce($7::timestamptz, now()) AS now) c
ON CONFLICT (tenant_id, rule, queue) DO UPDATE
SET state = 'firing', value = EXCLUDED.value, threshold = EXCLUDED.threshold,
    description = EXCLUDED.description, fired_at = EXCLUDED.fired_at, resolved_at = NULL,
    evaluated_at = EXCLUDED.evaluated_at, notify_status = EXCLUDED.notify_status,
    notify_seq = a.notify_seq + 1, notify_attempts = 0, notify_next_at = EXCLUDED.notify_next_at,
    notify_error = NULL
WHERE a.state = 'resolved'
RETURNING a.notify_seq
