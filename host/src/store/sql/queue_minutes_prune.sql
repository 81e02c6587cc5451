-- Deletes per-minute throughput older than $1 milliseconds.
DELETE FROM spool.queue_minutes
WHERE minute < now() - make_interval(secs => $1::bigint / 1000.0)
