-- Makes due scheduled and retryable jobs available, at most p_limit of them. Returns how many.
CREATE OR REPLACE FUNCTION spool.schedule_due(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_now    timestamptz := coalesce(p_now, now());
    v_count  integer;
    v_queues text[];
BEGIN
    WITH due AS (
        SELECT j.tenant_id, j.id FROM spool.jobs j
        WHERE j.state IN ('scheduled', 'retryable') AND j.run_at <= v_now
        ORDER BY j.run_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), old AS (
        SELECT j.tenant_id, j.id, j.state, j.queue FROM spool.jobs j JOIN due USING (tenant_id, id)
    ), moved AS (
        UPDATE spool.jobs j SET state = 'available'
        FROM old WHERE j.tenant_id = old.tenant_id AND j.id = old.id
        RETURNING j.tenant_id, j.queue
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT o.tenant_id, o.queue, o.state, -count(*), v_now FROM old o
        GROUP BY o.tenant_id, o.queue, o.state
        UNION ALL
        SELECT o.tenant_id, o.queue, 'available', count(*), v_now FROM old o
        GROUP BY o.tenant_id, o.queue
    )
    SELECT count(*), array_agg(DISTINCT m.queue) INTO v_count, v_queues FROM moved m;
    PERFORM pg_notify('spool_jobs', q) FROM unnest(v_queues) AS q;
    RETURN v_count;
END
$$;
