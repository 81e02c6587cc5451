-- Rescues running attempts whose lease expired: each job that still runs under the lease it
-- was found expired under, and whose lease is still expired at p_now, fails as p_kinds with
-- p_messages (see fail_one): retryable after p_delay_ms, or dead when that is NULL. The check
-- and the failure happen under the row's lock, in one transaction: spool.expired only finds
-- candidates (its lock ends with its statement), and a heartbeat that renewed the lease since
-- then, or is renewing it now (the row is locked: skipped), keeps the job running. Returns
-- each rescued job's new state.
CREATE OR REPLACE FUNCTION spool.rescue_many(
    p_tenants  bigint[],
    p_ids      uuid[],
    p_leases   uuid[],
    p_attempts integer[],
    p_kinds    text[],
    p_messages text[],
    p_delay_ms bigint[],
    p_now      timestamptz DEFAULT NULL
) RETURNS TABLE (job_id uuid, state spool.job_state)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
BEGIN
    RETURN QUERY
    WITH expired AS MATERIALIZED (
        SELECT i.* FROM unnest(p_tenants, p_ids, p_leases, p_attempts, p_kinds, p_messages,
                               p_delay_ms)
            AS i(tenant_id, id, lease, attempt, kind, message, delay_ms)
        JOIN spool.jobs j ON j.tenant_id = i.tenant_id AND j.id = i.id
        -- Running under this lease (CHECK), and still expired: a row updated since this
        -- statement began is locked in its newest version and checked again.
        WHERE j.run_lease = i.lease AND j.lease_expires_at < v_now
        FOR UPDATE OF j SKIP LOCKED
    )
    SELECT e.id, spool.fail_one(
        e.tenant_id, e.id, e.lease,
        jsonb_build_object('attempt', e.attempt, 'at', v_now, 'kind', e.kind,
                           'message', e.message),
        NULL, e.delay_ms, v_now)
    FROM expired e;
END
$$;
