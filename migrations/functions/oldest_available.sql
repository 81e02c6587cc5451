-- When the oldest available job of a tenant's queue became runnable, or NULL when none is
-- available. A loose scan of the claim's index, one probe per priority in use, so that a deep
-- backlog costs a handful of index lookups rather than a scan.
CREATE OR REPLACE FUNCTION spool.oldest_available(p_tenant bigint, p_queue text)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE priorities AS (
        (SELECT j.priority FROM spool.jobs j
         WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id = p_tenant
         ORDER BY j.priority LIMIT 1)
        UNION ALL
        SELECT (SELECT j.priority FROM spool.jobs j
                WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id = p_tenant
                  AND j.priority > p.priority
                ORDER BY j.priority LIMIT 1)
        FROM priorities p WHERE p.priority IS NOT NULL
    )
    SELECT min((SELECT j.run_at FROM spool.jobs j
                WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id = p_tenant
                  AND j.priority = p.priority
                ORDER BY j.run_at LIMIT 1))
    FROM priorities p WHERE p.priority IS NOT NULL
$$;
