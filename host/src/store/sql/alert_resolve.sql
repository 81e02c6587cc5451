-- Resolves the alert ($1 tenant, $2 rule, $3 queue) if it is firing, at $7 (the database's
-- clock when NULL), with a webhook notification queued when $8; the notification replaces
-- one not yet delivered. Returns a row only when it resolved.
UPDATE spool.alerts AS a
SET state = 'resolved', value = $4, threshold = $5, description = $6,
    resolved_at = coalesce($7::timestamptz, now()), evaluated_at = coalesce($7::timestamptz, now()),
    notify_status = CASE WHEN $8::boolean THEN 'resolved' END,
    notify_seq = a.notify_seq + 1, notify_attempts = 0,
    notify_next_at = CASE WHEN $8::boolean THEN coalesce($7::timestamptz, now()) END,
    notify_error = NULL
WHERE a.tenant_id = $1 AND a.rule = $2 AND a.queue = $3 AND a.state = 'firing'
RETURNING a.notify_seq
