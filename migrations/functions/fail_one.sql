-- Fails one running attempt, fenced on its lease: retryable after p_delay_ms, or dead when
-- p_delay_ms is NULL. p_error is {attempt, at, kind, message}. Returns the new state, or NULL
-- when the lease was lost.
CREATE OR REPLACE FUNCTION spool.fail_one(
    p_tenant_id bigint, p_id uuid, p_lease uuid, p_error jsonb, p_logs jsonb,
    p_delay_ms bigint, p_now timestamptz
) RETURNS spool.job_state
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    IF p_delay_ms IS NULL THEN
        -- Fenced by finish_jobs on the lease.
        PERFORM spool.finish_jobs(ARRAY[p_tenant_id], ARRAY[p_id], ARRAY[p_lease], 'dead',
                                  ARRAY[NULL::bytea], ARRAY[p_logs], ARRAY[false],
                                  ARRAY[p_error], false, p_now);
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        RETURN 'dead';
    END IF;
    UPDATE spool.jobs
    SET state = 'retryable', run_at = p_now + make_interval(secs => p_delay_ms / 1000.0),
        run_lease = NULL, lease_expires_at = NULL, worker = NULL,
        errors = errors || jsonb_build_array(p_error), logs = coalesce(p_logs, logs)
    WHERE tenant_id = p_tenant_id AND id = p_id AND run_lease = p_lease AND state = 'running'
    RETURNING queue INTO v_queue;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
    VALUES (p_tenant_id, v_queue, 'running', -1, p_now),
           (p_tenant_id, v_queue, 'retryable', 1, p_now);
    PERFORM spool.running_add(ARRAY[p_tenant_id], ARRAY[-1::bigint]);
    RETURN 'retryable';
END
$$;
