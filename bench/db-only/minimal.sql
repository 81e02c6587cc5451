-- The least any design that keeps a history row can do per job, for comparison with
-- spool.sql: claim a batch (one update, SKIP LOCKED, no fairness, counters or limits), then
-- delete it fenced on its leases and insert its history rows. BATCH is replaced by run.sh.
DO $$
DECLARE
    t0      timestamptz := clock_timestamp();
    n       integer := 0;
    tenants bigint[];
    ids     uuid[];
    leases  uuid[];
BEGIN
    LOOP
        WITH picked AS (
            SELECT j.tenant_id, j.id FROM spool.jobs j
            WHERE j.state = 'available' AND j.queue = 'default'
            ORDER BY j.tenant_id, j.priority, j.run_at, j.id
            LIMIT BATCH FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE spool.jobs j
            SET state = 'running', attempt = j.attempt + 1, run_lease = gen_random_uuid(),
                lease_expires_at = now() + interval '1 minute', worker = 'db-only',
                attempted_at = now()
            FROM picked p WHERE j.tenant_id = p.tenant_id AND j.id = p.id
            RETURNING j.tenant_id, j.id, j.run_lease
        )
        SELECT array_agg(c.tenant_id), array_agg(c.id), array_agg(c.run_lease)
        INTO tenants, ids, leases FROM claimed c;
        COMMIT;
        EXIT WHEN ids IS NULL;
        WITH moved AS (
            DELETE FROM spool.jobs j USING unnest(tenants, ids, leases) AS i(tenant_id, id, lease)
            WHERE j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
            RETURNING j.*
        )
        INSERT INTO spool.job_history (
            tenant_id, id, queue, state, priority, run_at, handler, handler_version, attempt,
            max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key, payload,
            payload_hash, limits, errors, logs, parent_id, created_at, attempted_at, result,
            duplicate, finished_at, conflicts)
        SELECT m.tenant_id, m.id, m.queue, 'completed', m.priority, m.run_at, m.handler,
               m.handler_version, m.attempt, m.max_attempts, m.backoff_base_ms,
               m.backoff_cap_ms, m.idempotency_key, m.payload, m.payload_hash, m.limits,
               m.errors, m.logs, m.parent_id, m.created_at, m.attempted_at, ''::bytea, false,
               now(), m.conflicts
        FROM moved m;
        COMMIT;
        n := n + cardinality(ids);
    END LOOP;
    RAISE NOTICE '% jobs in % ms', n, round(extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
