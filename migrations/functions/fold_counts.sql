-- Folds queued count deltas into the totals and per-minute throughput. Returns deltas folded.
CREATE OR REPLACE FUNCTION spool.fold_counts(p_limit integer DEFAULT 100000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    WITH taken AS (
        DELETE FROM spool.queue_count_deltas d
        WHERE d.ctid IN (SELECT ctid FROM spool.queue_count_deltas LIMIT p_limit)
        RETURNING d.*
    ), totals AS (
        INSERT INTO spool.queue_counts AS c (tenant_id, queue, state, n)
        SELECT t.tenant_id, t.queue, t.state, sum(t.delta) FROM taken t
        GROUP BY t.tenant_id, t.queue, t.state
        ON CONFLICT (tenant_id, queue, state) DO UPDATE SET n = c.n + EXCLUDED.n
    ), minutes AS (
        INSERT INTO spool.queue_minutes AS m (tenant_id, queue, minute, completed, failed, dead)
        SELECT t.tenant_id, t.queue, date_trunc('minute', t.at),
               coalesce(sum(t.delta) FILTER (WHERE t.state = 'completed'), 0),
               coalesce(sum(t.delta) FILTER (WHERE t.state IN ('retryable', 'dead')), 0),
               coalesce(sum(t.delta) FILTER (WHERE t.state = 'dead'), 0)
        FROM taken t
        WHERE t.delta > 0 AND t.state IN ('completed', 'retryable', 'dead')
        GROUP BY t.tenant_id, t.queue, date_trunc('minute', t.at)
        ON CONFLICT (tenant_id, queue, minute) DO UPDATE
        SET completed = m.completed + EXCLUDED.completed, failed = m.failed + EXCLUDED.failed,
            dead = m.dead + EXCLUDED.dead
    )
    SELECT count(*) INTO v_count FROM taken;
    RETURN v_count;
END
$$;
