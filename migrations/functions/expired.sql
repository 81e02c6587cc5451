-- Returns running jobs whose lease expired by p_now, at most p_limit: candidates for the
-- rescuer, which checks each again under its row lock (spool.rescue_many). Rows locked right
-- now (being finished or heartbeaten) are skipped; the lock itself ends with the statement.
CREATE OR REPLACE FUNCTION spool.expired(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (tenant_id bigint, id uuid, run_lease uuid, attempt integer, max_attempts integer,
               backoff_base_ms bigint, backoff_cap_ms bigint)
LANGUAGE sql AS $$
    SELECT j.tenant_id, j.id, j.run_lease, j.attempt, j.max_attempts, j.backoff_base_ms,
           j.backoff_cap_ms
    FROM spool.jobs j
    WHERE j.state = 'running' AND j.lease_expires_at < coalesce(p_now, now())
    ORDER BY j.lease_expires_at LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;
