-- Empties history and fills the hot table with :n available jobs like the bench's first one,
-- without enqueue's bookkeeping (counters, notifications): what the loops then measure is the
-- claim and the completion alone. Only for a database `spool bench --keep` left behind.
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS spool.db_only_template AS SELECT * FROM spool.job_history LIMIT 1;
TRUNCATE spool.job_history;
DELETE FROM spool.jobs;
INSERT INTO spool.jobs (tenant_id, id, queue, state, priority, run_at, handler, handler_version,
                        attempt, max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key,
                        payload, payload_hash, limits, created_at)
SELECT h.tenant_id, x.id, h.queue, 'available', h.priority, h.run_at, h.handler,
       h.handler_version, 0, h.max_attempts, h.backoff_base_ms, h.backoff_cap_ms, x.id::text,
       h.payload, h.payload_hash, h.limits, now()
FROM (SELECT * FROM spool.db_only_template LIMIT 1) h,
     (SELECT gen_random_uuid() AS id FROM generate_series(1, :n)) x;
UPDATE spool.tenants SET max_running = 1000000000;
VACUUM ANALYZE spool.jobs;
