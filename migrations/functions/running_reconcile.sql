-- Sets tenant p_tenant_id's running count (spool.running_counts) to the jobs it has running,
-- should the counter ever have drifted from them (a worker of a version that did not keep it,
-- a bug). Returns by how much the count was off (0: it was right).
--
-- The tenant's claim lock comes first, so no claim of its jobs is in flight. Then one
-- statement, on one snapshot, counts the running jobs and sums the stripes that attempts ending
-- subtract in, and sets stripe 0 to the difference: a finisher's delete and its subtraction
-- commit together, so the snapshot holds both or neither.
CREATE OR REPLACE FUNCTION spool.running_reconcile(p_tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_off bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1936683884, (p_tenant_id % 2147483647)::integer);
    WITH truth AS (
        SELECT (SELECT count(*) FROM spool.jobs j
                WHERE j.tenant_id = p_tenant_id AND j.state = 'running') AS running,
               (SELECT coalesce(sum(r.n), 0) FROM spool.running_counts r
                WHERE r.tenant_id = p_tenant_id AND r.stripe <> 0) AS ended,
               (SELECT coalesce(sum(r.n), 0) FROM spool.running_counts r
                WHERE r.tenant_id = p_tenant_id) AS counted
    ), fixed AS (
        INSERT INTO spool.running_counts AS r (tenant_id, stripe, n)
        SELECT p_tenant_id, 0, t.running - t.ended FROM truth t
        WHERE t.running <> t.counted
        ON CONFLICT (tenant_id, stripe) DO UPDATE SET n = EXCLUDED.n
    )
    SELECT t.counted - t.running INTO v_off FROM truth t;
    RETURN v_off;
END
$$;
