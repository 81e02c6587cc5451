-- Moves jobs from the hot table to history as `p_state`, recording results and logs, and
-- takes those that were running off their tenants' running counts. Returns each job moved,
-- and whether it finished as a duplicate.
--
-- p_leases fences the move: a job given a lease moves only while it runs under that lease
-- (the delete itself is the fence, so a group commit takes no separate row lock first); a
-- NULL lease (or a NULL p_leases) moves the job whatever it holds, for callers that locked
-- and checked it themselves. With p_record_done, each job moved that has a key of its own
-- gets its done-record, in the same statement; a job whose key another job has done already
-- finishes as a duplicate (p_duplicates marks duplicates the caller already knows of). A job
-- without a key (its key is its id) gets no done-record: its history row is the record.
-- Two jobs of one call sharing a key raise cardinality_violation.
CREATE OR REPLACE FUNCTION spool.finish_jobs(
    p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_state spool.job_state,
    p_results bytea[], p_logs jsonb[], p_duplicates boolean[], p_errors jsonb[],
    p_record_done boolean, p_now timestamptz
) RETURNS TABLE (job_id uuid, duplicate boolean)
SET jit = off
SET enable_hashjoin = off
SET enable_mergejoin = off
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids        uuid[];
    v_duplicates boolean[];
    v_tenants    bigint[];
    v_ended      bigint[];
BEGIN
    WITH input AS (
        SELECT * FROM unnest(p_tenants, p_ids, p_leases, p_results, p_logs, p_duplicates, p_errors)
            AS i(tenant_id, id, lease, result, logs, duplicate, error)
    ), moved AS (
        DELETE FROM spool.jobs j USING input i
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id
          -- Running under the lease (lease_expires_at is set only while running: see the
          -- table's CHECK), when one is given.
          AND (i.lease IS NULL OR (j.run_lease = i.lease AND j.lease_expires_at IS NOT NULL))
        RETURNING j.*, i.result AS new_result, i.logs AS new_logs, i.duplicate AS new_duplicate,
                  i.error AS new_error
    ), done AS (
        INSERT INTO spool.idempotency AS k
            (tenant_id, key, job_id, payload_hash, created_at, done_at, result)
        SELECT m.tenant_id, m.idempotency_key, m.id, m.payload_hash, p_now, p_now, m.new_result
        FROM moved m
        WHERE p_record_done AND m.idempotency_key <> m.id::text
        ON CONFLICT (tenant_id, key) DO UPDATE
        SET done_at = EXCLUDED.done_at, result = EXCLUDED.result
        WHERE k.done_at IS NULL AND k.job_id = EXCLUDED.job_id
        RETURNING k.job_id
    ), undone AS (
        -- Keyed jobs whose done-record another job holds: a hashed set difference, not a
        -- join planned on a CTE's one-row estimate.
        SELECT coalesce(array_agg(x.id), '{}') AS ids
        FROM (SELECT m.id FROM moved m WHERE p_record_done AND m.idempotency_key <> m.id::text
              EXCEPT ALL SELECT d.job_id FROM done d) x
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
               m.new_result, coalesce(m.new_duplicate, false) OR m.id = ANY (u.ids), p_now,
               m.conflicts
        FROM moved m, undone u
        RETURNING tenant_id, queue, id, duplicate
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT m.tenant_id, m.queue, m.state, -count(*), p_now FROM moved m
        GROUP BY m.tenant_id, m.queue, m.state
        UNION ALL
        SELECT a.tenant_id, a.queue, p_state, count(*), p_now FROM archived a
        GROUP BY a.tenant_id, a.queue
    )
    SELECT e.tenants, e.ended, a.ids, a.duplicates
    INTO v_tenants, v_ended, v_ids, v_duplicates
    FROM (SELECT array_agg(r.tenant_id) AS tenants, array_agg(-r.running) AS ended
          FROM (SELECT m.tenant_id, count(*) FILTER (WHERE m.state = 'running') AS running
                FROM moved m GROUP BY m.tenant_id) r) e,
         (SELECT array_agg(a.id) AS ids, array_agg(a.duplicate) AS duplicates
          FROM archived a) a;
    IF v_tenants IS NOT NULL THEN
        PERFORM spool.running_add(v_tenants, v_ended);
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_ids, v_duplicates);
END
$$;
