-- The HTTP API: revocable tenant tokens, allowed outbound hosts, and the dead-letter list's
-- index.

-- A tenant may hold several tokens (to rotate without downtime); each is stored only as its
-- SHA-256 and can be revoked on its own.
CREATE TABLE spool.tenant_tokens (
    tenant_id  bigint NOT NULL REFERENCES spool.tenants (id) ON DELETE CASCADE,
    id         uuid NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    -- The token's first characters, to tell tokens apart in listings.
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO spool.tenant_tokens (tenant_id, id, hash, prefix)
SELECT id, gen_random_uuid(), token_hash, '' FROM spool.tenants WHERE token_hash IS NOT NULL;

ALTER TABLE spool.tenants DROP COLUMN token_hash;

-- Hosts a tenant's handlers may reach over outbound HTTP; empty denies all.
ALTER TABLE spool.tenants ADD COLUMN allowed_hosts text[] NOT NULL DEFAULT '{}';

-- The dead-letter queue, newest first, per tenant, without scanning completed history.
CREATE INDEX job_history_dead_by_id ON spool.job_history (tenant_id, id) WHERE state = 'dead';

-- When the oldest available job of a tenant's queue became runnable, or NULL when none is
-- available. A loose scan of the claim's index, one probe per priority in use, so that a deep
-- backlog costs a handful of index lookups rather than a scan.
CREATE FUNCTION spool.oldest_available(p_tenant bigint, p_queue text)
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
