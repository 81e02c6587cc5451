-- Fails many running attempts (see fail_one). p_kinds and p_messages describe each failure;
-- p_delay_ms NULL dead-letters. Returns each job's new state (NULL: lease lost, nothing done).
CREATE OR REPLACE FUNCTION spool.fail_many(
    p_tenants  bigint[],
    p_ids      uuid[],
    p_leases   uuid[],
    p_attempts integer[],
    p_kinds    text[],
    p_messages text[],
    p_logs     jsonb[],
    p_delay_ms bigint[],
    p_now      timestamptz DEFAULT NULL
) RETURNS TABLE (job_id uuid, state spool.job_state)
LANGUAGE sql AS $$
    SELECT i.id, spool.fail_one(
        i.tenant_id, i.id, i.lease,
        jsonb_build_object('attempt', i.attempt, 'at', coalesce(p_now, now()), 'kind', i.kind,
                           'message', i.message),
        i.logs, i.delay_ms, coalesce(p_now, now()))
    FROM unnest(p_tenants, p_ids, p_leases, p_attempts, p_kinds, p_messages, p_logs, p_delay_ms)
        AS i(tenant_id, id, lease, attempt, kind, message, logs, delay_ms)
$$;
