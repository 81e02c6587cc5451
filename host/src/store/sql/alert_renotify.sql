-- Queues the firing notification again for alerts that have stayed firing $1 ms since they
-- were last notified (or fired), with no notification pending.
UPDATE spool.alerts AS a
SET notify_status = 'firing', notify_seq = a.notify_seq + 1, notify_attempts = 0,
    notify_next_at = coalesce($2::timestamptz, now()), notify_error = NULL
WHERE a.state = 'firing' AND a.notify_status IS NULL
  AND greatest(a.last_notified_at, a.fired_at)
      <= coalesce($2::timestamptz, now()) - make_interval(secs => $1::bigint / 1000.0)
