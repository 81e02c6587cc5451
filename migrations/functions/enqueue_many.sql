-- Enqueues a batch of jobs for one tenant. Array arguments are parallel, one element per job;
-- NULL elements take defaults (queue 'default', no key, priority 0, run now, the handler's or
-- the default retry policy: 20 attempts, backoff from 1 s up to 1 h). The backoff arrays may
-- be NULL as a whole. Returns one row per input job, in input order: its id (the
-- existing job's for a duplicate or conflict), its state, and whether it was a duplicate or a
-- conflicting key.
CREATE OR REPLACE FUNCTION spool.enqueue_many(
    p_tenant_id    bigint,
    p_ids          uuid[],
    p_handlers     text[],
    p_queues       text[],
    p_payloads     bytea[],
    p_is_json      boolean[],
    p_keys         text[],
    p_priorities   smallint[],
    p_run_at       timestamptz[],
    p_max_attempts integer[],
    p_limits       jsonb[],
    p_parent_id    uuid DEFAULT NULL,
    p_now          timestamptz DEFAULT NULL,
    p_backoff_base_ms bigint[] DEFAULT NULL,
    p_backoff_cap_ms  bigint[] DEFAULT NULL
) RETURNS TABLE (ord integer, job_id uuid, state spool.job_state, duplicate boolean, conflict boolean)
SET jit = off
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now    timestamptz := coalesce(p_now, now());
    v_ords   integer[];
    v_ids    uuid[];
    v_states spool.job_state[];
    v_queues text[];
BEGIN
    WITH input AS (
        SELECT i.ord::integer AS ord, i.id, i.handler, coalesce(i.queue, 'default') AS queue,
               spool.canonical_payload(i.payload, coalesce(i.is_json, false)) AS payload,
               i.key, coalesce(i.priority, 0)::smallint AS priority,
               coalesce(i.run_at, v_now) AS run_at, i.max_attempts, i.limits,
               i.backoff_base_ms, i.backoff_cap_ms
        FROM unnest(p_ids, p_handlers, p_queues, p_payloads, p_is_json, p_keys, p_priorities,
                    p_run_at, p_max_attempts, p_limits,
                    coalesce(p_backoff_base_ms, array_fill(NULL::bigint, ARRAY[cardinality(p_ids)])),
                    coalesce(p_backoff_cap_ms, array_fill(NULL::bigint, ARRAY[cardinality(p_ids)])))
             WITH ORDINALITY AS i(id, handler, queue, payload, is_json, key, priority, run_at,
                                  max_attempts, limits, backoff_base_ms, backoff_cap_ms, ord)
    ), hashed AS (
        SELECT input.*, sha256(input.payload) AS payload_hash FROM input
    ), claimed AS (
        INSERT INTO spool.idempotency AS k (tenant_id, key, job_id, payload_hash, created_at)
        SELECT p_tenant_id, h.key, h.id, h.payload_hash, v_now
        FROM hashed h WHERE h.key IS NOT NULL
        ON CONFLICT (tenant_id, key) DO NOTHING
        RETURNING k.job_id
    ), fresh AS (
        SELECT h.* FROM hashed h
        WHERE h.key IS NULL OR h.id IN (SELECT c.job_id FROM claimed c)
    ), inserted AS (
        INSERT INTO spool.jobs AS j (
            tenant_id, id, queue, state, priority, run_at, handler, handler_version,
            max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key, payload,
            payload_hash, limits, parent_id, created_at)
        SELECT p_tenant_id, f.id, f.queue,
               CASE WHEN f.run_at <= v_now THEN 'available' ELSE 'scheduled' END::spool.job_state,
               f.priority, f.run_at, f.handler, hd.current_version,
               coalesce(f.max_attempts, hd.max_attempts, 20),
               coalesce(f.backoff_base_ms, hd.backoff_base_ms, 1000),
               coalesce(f.backoff_cap_ms, hd.backoff_cap_ms, 3600000),
               coalesce(f.key, f.id::text), f.payload, f.payload_hash, f.limits, p_parent_id, v_now
        FROM fresh f
        LEFT JOIN spool.handlers hd ON hd.tenant_id = p_tenant_id AND hd.name = f.handler
        RETURNING j.id, j.state, j.queue
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT p_tenant_id, i.queue, i.state, count(*), v_now
        FROM inserted i GROUP BY i.queue, i.state
    )
    SELECT array_agg(f.ord), array_agg(i.id), array_agg(i.state),
           array_agg(DISTINCT i.queue) FILTER (WHERE i.state = 'available')
    INTO v_ords, v_ids, v_states, v_queues
    FROM inserted i JOIN fresh f ON f.id = i.id;

    -- One notification per queue per call (and Postgres folds repeats within a transaction).
    PERFORM pg_notify('spool_jobs', q) FROM unnest(v_queues) AS q;

    RETURN QUERY SELECT e.ord, e.job_id, e.state, false, false
    FROM unnest(v_ords, v_ids, v_states) AS e(ord, job_id, state);

    -- Keys that were taken: a new statement, so a concurrent enqueue that committed while
    -- this one waited is visible now.
    RETURN QUERY
    SELECT i.ord::integer, k.job_id,
           coalesce(j.state, hj.state,
                    CASE WHEN k.done_at IS NULL THEN 'dead' ELSE 'completed' END::spool.job_state),
           k.payload_hash = sha256(spool.canonical_payload(i.payload, coalesce(i.is_json, false))),
           k.payload_hash <> sha256(spool.canonical_payload(i.payload, coalesce(i.is_json, false)))
    FROM unnest(p_ids, p_payloads, p_is_json, p_keys) WITH ORDINALITY AS i(id, payload, is_json, key, ord)
    JOIN spool.idempotency k ON k.tenant_id = p_tenant_id AND k.key = i.key
    LEFT JOIN spool.jobs j ON j.tenant_id = p_tenant_id AND j.id = k.job_id
    LEFT JOIN LATERAL (
        SELECT h.state FROM spool.job_history h
        WHERE h.tenant_id = p_tenant_id AND h.id = k.job_id LIMIT 1
    ) hj ON true
    WHERE i.key IS NOT NULL AND k.job_id <> i.id;
END
$$;
