-- Gives back jobs a worker claimed and never started (it is shutting down): each job still
-- running under the lease it was claimed with goes back to available as it was, its attempt
-- not charged, and other workers are told. Returns the ids released; a job whose lease was
-- lost meanwhile is left to whoever holds it now.
CREATE OR REPLACE FUNCTION spool.release_many(
    p_tenants bigint[],
    p_ids     uuid[],
    p_leases  uuid[],
    p_now     timestamptz DEFAULT NULL
) RETURNS TABLE (job_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now     timestamptz := coalesce(p_now, now());
    v_tenants bigint[];
    v_ids     uuid[];
    v_queues  text[];
BEGIN
    WITH released AS (
        UPDATE spool.jobs j
        SET state = 'available', attempt = j.attempt - 1, run_lease = NULL,
            lease_expires_at = NULL, worker = NULL
        FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
        -- Running under this lease, by the table's CHECK.
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
        RETURNING j.tenant_id, j.id, j.queue
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT r.tenant_id, r.queue, s.state, s.delta * count(*), v_now
        FROM released r
        CROSS JOIN (VALUES ('running'::spool.job_state, -1), ('available', 1)) AS s(state, delta)
        GROUP BY r.tenant_id, r.queue, s.state, s.delta
    )
    SELECT array_agg(r.tenant_id), array_agg(r.id), array_agg(DISTINCT r.queue)
    INTO v_tenants, v_ids, v_queues
    FROM released r;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM spool.running_add(v_tenants, array_fill(-1::bigint, ARRAY[cardinality(v_ids)]));
    PERFORM pg_notify('spool_jobs', q) FROM unnest(v_queues) AS q;
    RETURN QUERY SELECT unnest(v_ids);
END
$$;
