-- Prunes idempotency rows older than p_retention_ms before p_now, at most p_limit in all:
-- done-records by when they were done, then the keys of jobs that never completed (dead or
-- cancelled) by when they were first used; never the key of a job in the hot table. Each kind
-- is taken oldest first along its own index (idempotency_done, idempotency_unfinished), so a
-- batch reads about as many rows as it deletes (plus the keys of jobs still pending that are
-- that old, which it passes over), and deletes the rows it locked by their ctid (a join on the
-- key would hash the whole table). Returns how many were deleted.
--
-- Race-free against spool.retry_many, which puts a dead job back in the hot table and renews
-- its key row (created_at) or makes it again: rows are locked here with SKIP LOCKED (a row
-- retry_many holds is left alone), and a row renewed since this statement's snapshot is
-- checked again in its new version, no longer old enough. A row deleted here before
-- retry_many reached it is made again by retry_many once this commits.
CREATE OR REPLACE FUNCTION spool.idempotency_prune(
    p_retention_ms bigint,
    p_limit        integer,
    p_now          timestamptz DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz := coalesce(p_now, now()) - make_interval(secs => p_retention_ms / 1000.0);
    v_done   integer;
    v_keys   integer;
BEGIN
    WITH old AS (
        SELECT i.ctid FROM spool.idempotency i
        WHERE i.done_at IS NOT NULL AND i.done_at < v_cutoff
          AND NOT EXISTS (SELECT 1 FROM spool.jobs j
                          WHERE j.tenant_id = i.tenant_id AND j.id = i.job_id)
        ORDER BY i.done_at
        LIMIT p_limit
        FOR UPDATE OF i SKIP LOCKED
    )
    DELETE FROM spool.idempotency k WHERE k.ctid = ANY (ARRAY(SELECT o.ctid FROM old o));
    GET DIAGNOSTICS v_done = ROW_COUNT;

    WITH old AS (
        SELECT i.ctid FROM spool.idempotency i
        WHERE i.done_at IS NULL AND i.created_at < v_cutoff
          AND NOT EXISTS (SELECT 1 FROM spool.jobs j
                          WHERE j.tenant_id = i.tenant_id AND j.id = i.job_id)
        ORDER BY i.created_at
        LIMIT greatest(p_limit - v_done, 0)
        FOR UPDATE OF i SKIP LOCKED
    )
    DELETE FROM spool.idempotency k WHERE k.ctid = ANY (ARRAY(SELECT o.ctid FROM old o));
    GET DIAGNOSTICS v_keys = ROW_COUNT;
    RETURN v_done + v_keys;
END
$$;
