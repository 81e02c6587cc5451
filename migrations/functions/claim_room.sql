-- How many more jobs tenant p_tenant_id may start under its max_running, for spool.claim. It
-- first takes the tenant's claim lock (an advisory lock held until the claiming transaction
-- ends), then reads the tenant's running count: VOLATILE, so the count is read on a snapshot
-- taken after the lock and holds every job an earlier claimer of this tenant took. Concurrent
-- claimers therefore cannot each admit the same room.
CREATE OR REPLACE FUNCTION spool.claim_room(p_tenant_id bigint, p_max_running integer)
RETURNS integer
VOLATILE
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1936683884, (p_tenant_id % 2147483647)::integer);
    RETURN greatest(0, p_max_running - (
        SELECT coalesce(sum(r.n), 0) FROM spool.running_counts r
        WHERE r.tenant_id = p_tenant_id))::integer;
END
$$;
