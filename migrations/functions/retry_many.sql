-- Requeues dead or cancelled jobs: back to the hot table as available, with one more attempt
-- if they had used all of theirs. Returns the ids requeued.
--
-- Each job's idempotency key is kept for it (spool.idempotency_prune deletes the keys of jobs
-- that never completed once they are old): its key row is renewed, which the prune sees when
-- it locks the row, or made again when the prune (or the retention, long ago) deleted it, so
-- that enqueueing the same key finds the requeued job rather than making a second one. A key
-- another job has taken since is left to that job.
CREATE OR REPLACE FUNCTION spool.retry_many(p_tenant_id bigint, p_ids uuid[], p_now timestamptz DEFAULT NULL)
RETURNS TABLE (job_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now    timestamptz := coalesce(p_now, now());
    v_queues text[];
    v_ids    uuid[];
BEGIN
    WITH moved AS (
        DELETE FROM spool.job_history h
        WHERE h.tenant_id = p_tenant_id AND h.id = ANY (p_ids) AND h.state IN ('dead', 'cancelled')
        RETURNING h.*
    ), requeued AS (
        INSERT INTO spool.jobs (
            tenant_id, id, queue, state, priority, run_at, handler, handler_version, attempt,
            max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key, payload,
            payload_hash, limits, errors, logs, parent_id, created_at, attempted_at)
        SELECT m.tenant_id, m.id, m.queue, 'available', m.priority, v_now, m.handler,
               m.handler_version, m.attempt, greatest(m.max_attempts, m.attempt + 1),
               m.backoff_base_ms, m.backoff_cap_ms, m.idempotency_key, m.payload,
               m.payload_hash, m.limits, m.errors, m.logs, m.parent_id, m.created_at,
               m.attempted_at
        FROM moved m
        RETURNING id, queue
    ), keyed AS (
        -- Jobs enqueued without a key carry their id as key, and have no key row to keep.
        INSERT INTO spool.idempotency AS k (tenant_id, key, job_id, payload_hash, created_at)
        SELECT DISTINCT ON (m.idempotency_key)
               m.tenant_id, m.idempotency_key, m.id, m.payload_hash, v_now
        FROM moved m
        WHERE m.idempotency_key <> m.id::text
        ORDER BY m.idempotency_key, m.id
        ON CONFLICT (tenant_id, key) DO UPDATE
        SET created_at = greatest(k.created_at, EXCLUDED.created_at)
        WHERE k.done_at IS NULL AND k.job_id = ANY (p_ids)
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT p_tenant_id, m.queue, m.state, -count(*), v_now FROM moved m
        GROUP BY m.queue, m.state
        UNION ALL
        SELECT p_tenant_id, r.queue, 'available', count(*), v_now FROM requeued r
        GROUP BY r.queue
    )
    SELECT array_agg(r.id), array_agg(DISTINCT r.queue) INTO v_ids, v_queues FROM requeued r;
    PERFORM pg_notify('spool_jobs', q) FROM unnest(v_queues) AS q;
    RETURN QUERY SELECT unnest(coalesce(v_ids, '{}'));
END
$$;
