-- Cancels a pending (not running, not finished) job. Returns false if there was none.
CREATE OR REPLACE FUNCTION spool.cancel(p_tenant_id bigint, p_id uuid, p_now timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM spool.jobs
    WHERE tenant_id = p_tenant_id AND id = p_id AND state <> 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM spool.finish_jobs(ARRAY[p_tenant_id], ARRAY[p_id], NULL, 'cancelled',
                              ARRAY[NULL::bytea], ARRAY[NULL::jsonb], ARRAY[false],
                              ARRAY[NULL::jsonb], false, coalesce(p_now, now()));
    RETURN true;
END
$$;
