-- How many jobs tenant p_tenant_id runs: the sum of its stripes of spool.running_counts (see
-- migrations/0016_running_counts.sql). One SELECT, so that it is inlined where it is called.
CREATE OR REPLACE FUNCTION spool.running_count(p_tenant_id bigint)
RETURNS bigint
STABLE
LANGUAGE sql AS $$
    SELECT coalesce(sum(r.n), 0)::bigint FROM spool.running_counts r
    WHERE r.tenant_id = p_tenant_id
$$;
