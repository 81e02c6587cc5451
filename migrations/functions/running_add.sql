-- Adds p_deltas[i] (negative: attempts ended) to the running count of tenant p_tenants[i], in
-- this connection's stripe of spool.running_counts (see migrations/0016_running_counts.sql),
-- in tenant order so that two finishers sharing a stripe lock its rows in one order. For what
-- ends running attempts; the claim counts what it starts in stripe 0.
CREATE OR REPLACE FUNCTION spool.running_add(p_tenants bigint[], p_deltas bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO spool.running_counts AS r (tenant_id, stripe, n)
    SELECT d.tenant_id, 1 + pg_backend_pid() % 16, sum(d.delta)
    FROM unnest(p_tenants, p_deltas) AS d(tenant_id, delta)
    GROUP BY d.tenant_id
    HAVING sum(d.delta) <> 0
    ORDER BY d.tenant_id
    ON CONFLICT (tenant_id, stripe) DO UPDATE SET n = r.n + EXCLUDED.n;
END
$$;
