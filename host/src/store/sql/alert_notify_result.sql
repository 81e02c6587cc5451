-- Records the outcome of delivering notification $4 of the alert ($1 tenant, $2 rule,
-- $3 queue), unless a newer notification replaced it meanwhile: delivered when $5 is NULL;
-- else failed with error $5, retried $6 ms after $7 (the database's clock when NULL), or
-- given up when $6 is NULL.
UPDATE spool.alerts AS a
SET notify_attempts = a.notify_attempts + 1,
    notify_error = $5,
    last_notified_at = CASE WHEN $5::text IS NULL THEN coalesce($7::timestamptz, now())
                            ELSE a.last_notified_at END,
    notify_status = CASE WHEN $5::text IS NOT NULL AND $6::bigint IS NOT NULL
                         THEN a.notify_status END,
    notify_next_at = CASE WHEN $5::text IS NOT NULL AND $6::bigint IS NOT NULL
                          THEN coalesce($7::timestamptz, now())
                               + make_interval(secs => $6::bigint / 1000.0) END
WHERE a.tenant_id = $1 AND a.rule = $2 AND a.queue = $3 AND a.notify_seq = $4
  AND a.notify_status IS NOT NULL
