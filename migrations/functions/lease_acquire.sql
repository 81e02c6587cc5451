-- Takes or renews the named lease for p_holder for p_ttl_ms. Returns whether p_holder holds it.
CREATE OR REPLACE FUNCTION spool.lease_acquire(p_name text, p_holder text, p_ttl_ms bigint)
RETURNS boolean
LANGUAGE sql AS $$
    WITH taken AS (
        INSERT INTO spool.leases AS l (name, holder, expires_at)
        VALUES (p_name, p_holder, now() + make_interval(secs => p_ttl_ms / 1000.0))
        ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
        WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
        RETURNING l.holder
    )
    SELECT EXISTS (SELECT 1 FROM taken)
$$;
