-- Extends the leases of running jobs still held under the given run_leases. Returns the ids
-- whose lease was lost (rescued, finished elsewhere, or expired): their attempts should be
-- abandoned. A lease that has already expired is never extended, even while the job is still
-- running under it: the rescuer may be failing it at this moment, and a late renewal would let
-- two attempts of the job run at once; it is reported lost instead, and rescued.
-- A row locked by another transaction is being finished or rescued right now: it is skipped
-- this round rather than waited for (waiting deadlocked with the worker's own group commit,
-- which locks the same rows in another order). The joins are driven from the input by primary
-- key; `run_lease = lease AND lease_expires_at >= now` means "running under this live lease"
-- by the table's CHECK, and keeps the planner off the running index (a rescan per row).
CREATE OR REPLACE FUNCTION spool.heartbeat(
    p_tenants  bigint[],
    p_ids      uuid[],
    p_leases   uuid[],
    p_lease_ms bigint,
    p_now      timestamptz DEFAULT NULL
) RETURNS TABLE (lost_id uuid)
SET jit = off
LANGUAGE sql AS $$
    WITH held AS (
        SELECT j.tenant_id, j.id FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
        JOIN spool.jobs j ON j.tenant_id = i.tenant_id AND j.id = i.id
        -- A run_lease with a lease expiry is a running job (CHECK): no state predicate, so the
        -- planner cannot rescan the jobs_running partial index once per input row. A row
        -- renewed or finished since this statement began is checked again in its newest
        -- version when it is locked.
        WHERE j.run_lease = i.lease AND j.lease_expires_at >= coalesce(p_now, now())
        FOR UPDATE OF j SKIP LOCKED
    ), extended AS (
        -- Runs whether or not the query below reads it, as every data-modifying WITH does.
        UPDATE spool.jobs j
        SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_lease_ms / 1000.0)
        FROM held h
        WHERE j.tenant_id = h.tenant_id AND j.id = h.id
        RETURNING j.id
    )
    -- Lost: not running under this lease, or expired. A live lease whose row was locked (being
    -- committed) is neither extended nor lost this round.
    SELECT i.id FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
    WHERE NOT EXISTS (
        SELECT 1 FROM spool.jobs j
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
          AND j.lease_expires_at >= coalesce(p_now, now()))
$$;
