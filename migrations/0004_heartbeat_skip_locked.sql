-- The heartbeat never waits for a row lock.
--
-- 0003's heartbeat updated every held job in one statement, waiting for any row another
-- transaction had locked. The group commit (spool.complete_many) locks the same rows one job
-- at a time, in its own order, so a heartbeat and a commit of the same worker deadlocked:
-- PostgreSQL broke the cycle after deadlock_timeout (1 s) by failing the heartbeat, the
-- commit stalled meanwhile, and no lease of the worker was extended for as long, which with a
-- short lease hands running attempts to the rescuer (found by tests/all/durability.rs).
--
-- A job whose row is locked is being finished (committed, failed) or rescued right now, so
-- the heartbeat skips it this round instead of queueing behind that transaction. Lost is
-- decided on what the row holds, not on whether it was extended: a skipped job is not
-- reported lost, and the next round extends it or, if it finished or was rescued, reports it.
CREATE OR REPLACE FUNCTION spool.heartbeat(
    p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_lease_ms bigint,
    p_now timestamptz DEFAULT NULL
) RETURNS TABLE (lost_id uuid)
LANGUAGE sql AS $$
    WITH held AS (
        SELECT j.tenant_id, j.id FROM spool.jobs j
        JOIN unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
          ON j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
        WHERE j.state = 'running'
        FOR UPDATE OF j SKIP LOCKED
    ), extended AS (
        -- Runs whether or not the query below reads it, as every data-modifying WITH does.
        UPDATE spool.jobs j
        SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_lease_ms / 1000.0)
        FROM held h
        WHERE j.tenant_id = h.tenant_id AND j.id = h.id
        RETURNING j.id
    )
    SELECT i.id FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
    WHERE NOT EXISTS (
        SELECT 1 FROM spool.jobs j
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
          AND j.state = 'running')
$$;
