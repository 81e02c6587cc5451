-- Moves jobs from the hot table to history as `p_state`, recording results and logs, and
-- takes those that were running off their tenants' running counts. Internal: callers have
-- checked fencing.
CREATE OR REPLACE FUNCTION spool.finish_jobs(
    p_tenants bigint[], p_ids uuid[], p_state spool.job_state, p_results bytea[],
    p_logs jsonb[], p_duplicates boolean[], p_errors jsonb[], p_now timestamptz
) RETURNS integer
SET jit = off
SET enable_hashjoin = off
SET enable_mergejoin = off
LANGUAGE plpgsql AS $$
DECLARE
    v_count   integer;
    v_tenants bigint[];
    v_ended   bigint[];
BEGIN
    WITH input AS (
        SELECT * FROM unnest(p_tenants, p_ids, p_results, p_logs, p_duplicates, p_errors)
            AS i(tenant_id, id, result, logs, duplicate, error)
    ), moved AS (
        DELETE FROM spool.jobs j USING input i
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id
        RETURNING j.*, i.result AS new_result, i.logs AS new_logs, i.duplicate AS new_duplicate,
                  i.error AS new_error
    ), archived AS (
        INSERT INTO spool.job_history (
            tenant_id, id, queue, state, priority, run_at, handler, handler_version, attempt,
            max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key, payload,
            payload_hash, limits, errors, logs, parent_id, created_at, attempted_at, result,
            duplicate, finished_at, conflicts)
        SELECT m.tenant_id, m.id, m.queue, p_state, m.priority, m.run_at, m.handler,
               m.handler_version, m.attempt, m.max_attempts, m.backoff_base_ms,
               m.backoff_cap_ms, m.idempotency_key, m.payload, m.payload_hash, m.limits,
               CASE WHEN m.new_error IS NULL THEN m.errors
                    ELSE m.errors || jsonb_build_array(m.new_error) END,
               coalesce(m.new_logs, m.logs), m.parent_id, m.created_at, m.attempted_at,
               m.new_result, coalesce(m.new_duplicate, false), p_now, m.conflicts
        FROM moved m
        RETURNING tenant_id, queue
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT m.tenant_id, m.queue, m.state, -count(*), p_now FROM moved m
        GROUP BY m.tenant_id, m.queue, m.state
        UNION ALL
        SELECT a.tenant_id, a.queue, p_state, count(*), p_now FROM archived a
        GROUP BY a.tenant_id, a.queue
    )
    SELECT coalesce(sum(e.n), 0), array_agg(e.tenant_id), array_agg(-e.running)
    INTO v_count, v_tenants, v_ended
    FROM (SELECT m.tenant_id, count(*) AS n, count(*) FILTER (WHERE m.state = 'running') AS running
          FROM moved m GROUP BY m.tenant_id) e;
    IF v_tenants IS NOT NULL THEN
        PERFORM spool.running_add(v_tenants, v_ended);
    END IF;
    RETURN v_count;
END
$$;
