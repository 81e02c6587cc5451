-- Plans for the hot path at a large backlog, found with `spool bench` and auto_explain.
--
-- * complete_many and heartbeat found their rows through the jobs_running partial index once
--   per input row (283-363 ms for a 1000-job group commit with ~1200 jobs running). They now
--   drive the join from the input by primary key; `run_lease = lease AND lease_expires_at IS
--   NOT NULL` means "running under this lease" by the table's CHECK constraint.
-- * complete_many's duplicate check was a nested loop over two CTEs estimated at one row each;
--   it is now a hashed set difference.
-- * finish_jobs switched to a hash join with a full scan of spool.jobs once a batch was large
--   enough; it stays on primary-key lookups.
-- * JIT compiled every claim once the table was analysed at a big backlog (25-30 ms of a
--   30 ms claim); these short statements never gain from it.
ALTER FUNCTION spool.claim(text, integer, text, bigint, timestamptz) SET jit = off;
ALTER FUNCTION spool.enqueue_many SET jit = off;
ALTER FUNCTION spool.complete_many SET jit = off;
ALTER FUNCTION spool.finish_jobs SET jit = off;
ALTER FUNCTION spool.heartbeat SET jit = off;
CREATE OR REPLACE FUNCTION spool.heartbeat(p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_lease_ms bigint, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(lost_id uuid)
 LANGUAGE sql
AS $function$
    WITH held AS (
        SELECT j.tenant_id, j.id FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
        JOIN spool.jobs j ON j.tenant_id = i.tenant_id AND j.id = i.id
        -- A run_lease with a lease expiry is a running job (CHECK): no state predicate, so the
        -- planner cannot rescan the jobs_running partial index once per input row.
        WHERE j.run_lease = i.lease AND j.lease_expires_at IS NOT NULL
        FOR UPDATE OF j SKIP LOCKED
    ), extended AS (
        -- Runs whether or not the query below reads it, as every data-modifying WITH does.
        UPDATE spool.jobs j
        SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_lease_ms / 1000.0)
        FROM held h
        WHERE j.tenant_id = h.tenant_id AND j.id = h.id
        RETURNING j.id
    )
    SELECT i.id FROM unnest(p_tenants, p_ids, p_leases) AS i(tenant_id, id, lease)
    WHERE NOT EXISTS (
        SELECT 1 FROM spool.jobs j
        WHERE j.tenant_id = i.tenant_id AND j.id = i.id AND j.run_lease = i.lease
          AND j.lease_expires_at IS NOT NULL)
$function$

;

CREATE OR REPLACE FUNCTION spool.complete_many(p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_results bytea[], p_logs jsonb[], p_effects jsonb[], p_retry_delay_ms bigint[], p_now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(job_id uuid, status text)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_now       timestamptz := coalesce(p_now, now());
    r           record;
    j           record;
    v_done      uuid;
    v_status    text;
    v_error     jsonb;
    v_fast      boolean := true;
    f_tenants   bigint[];
    f_ids       uuid[];
    f_results   bytea[];
    f_logs      jsonb[];
    f_dups      boolean[];
BEGIN
    -- Fast path: every job without effects, set-based.
    BEGIN
        WITH input AS (
            SELECT * FROM unnest(p_tenants, p_ids, p_leases, p_results, p_logs, p_effects)
                AS i(tenant_id, id, lease, result, logs, effects)
            WHERE i.effects IS NULL
        ), fenced AS (
            SELECT jb.tenant_id, jb.id, jb.idempotency_key, jb.payload_hash, i.result, i.logs
            FROM input i
            JOIN spool.jobs jb ON jb.tenant_id = i.tenant_id AND jb.id = i.id
            -- Running, by the CHECK constraint; see heartbeat.
            WHERE jb.run_lease = i.lease AND jb.lease_expires_at IS NOT NULL
            FOR UPDATE OF jb
        ), done AS (
            INSERT INTO spool.idempotency AS k
                (tenant_id, key, job_id, payload_hash, created_at, done_at, result)
            SELECT f.tenant_id, f.idempotency_key, f.id, f.payload_hash, v_now, v_now, f.result
            FROM fenced f
            ON CONFLICT (tenant_id, key) DO UPDATE
            SET done_at = EXCLUDED.done_at, result = EXCLUDED.result
            WHERE k.done_at IS NULL AND k.job_id = EXCLUDED.job_id
            RETURNING k.job_id
        )
        SELECT array_agg(f.tenant_id), array_agg(f.id), array_agg(f.result), array_agg(f.logs),
               array_agg(f.id = ANY (dup.ids))
        INTO f_tenants, f_ids, f_results, f_logs, f_dups
        FROM fenced f,
             -- A hashed set difference: no join planned on a CTE's one-row estimate.
             (SELECT coalesce(array_agg(x.id), '{}') AS ids
              FROM (SELECT fd.id FROM fenced fd EXCEPT ALL SELECT d.job_id FROM done d) x) dup;
        PERFORM spool.finish_jobs(f_tenants, f_ids, 'completed', f_results, f_logs, f_dups,
                                  array_fill(NULL::jsonb, ARRAY[coalesce(cardinality(f_ids), 0)]),
                                  v_now);
    EXCEPTION WHEN OTHERS THEN
        -- Two jobs of the batch sharing a key, say: complete them one by one instead.
        v_fast := false;
    END;

    IF v_fast THEN
        RETURN QUERY
        SELECT d.id, CASE WHEN d.dup THEN 'duplicate' ELSE 'completed' END
        FROM unnest(f_ids, f_dups) AS d(id, dup);
        RETURN QUERY
        SELECT i.id, 'stale'
        FROM unnest(p_ids, p_effects) AS i(id, effects)
        LEFT JOIN unnest(f_ids) AS f(id) ON f.id = i.id
        WHERE i.effects IS NULL AND f.id IS NULL;
    END IF;

    -- One subtransaction per job with effects (or every job, when the fast path failed).
    FOR r IN
        SELECT * FROM unnest(p_tenants, p_ids, p_leases, p_results, p_logs, p_effects,
                             p_retry_delay_ms)
            AS i(tenant_id, id, lease, result, logs, effects, retry_delay_ms)
        WHERE i.effects IS NOT NULL OR NOT v_fast
    LOOP
        BEGIN
            SELECT jb.* INTO j FROM spool.jobs jb
            WHERE jb.tenant_id = r.tenant_id AND jb.id = r.id AND jb.run_lease = r.lease
              AND jb.state = 'running'
            FOR UPDATE;
            IF NOT FOUND THEN
                job_id := r.id; status := 'stale'; RETURN NEXT;
                CONTINUE;
            END IF;

            v_done := NULL;
            INSERT INTO spool.idempotency AS k
                (tenant_id, key, job_id, payload_hash, created_at, done_at, result)
            VALUES (j.tenant_id, j.idempotency_key, j.id, j.payload_hash, v_now, v_now, r.result)
            ON CONFLICT (tenant_id, key) DO UPDATE
            SET done_at = EXCLUDED.done_at, result = EXCLUDED.result
            WHERE k.done_at IS NULL AND k.job_id = EXCLUDED.job_id
            RETURNING k.job_id INTO v_done;

            IF v_done IS NULL THEN
                v_status := 'duplicate';
            ELSE
                v_status := 'completed';
                IF r.effects IS NOT NULL THEN
                    PERFORM spool.apply_writes(j.tenant_id, r.effects->'writes', v_now);
                    IF jsonb_array_length(coalesce(r.effects->'children', '[]')) > 0 THEN
                        PERFORM spool.enqueue_many(
                            j.tenant_id,
                            array_agg((c->>'id')::uuid ORDER BY n),
                            array_agg(c->>'handler' ORDER BY n),
                            array_agg(c->>'queue' ORDER BY n),
                            array_agg(decode(c->>'payload', 'base64') ORDER BY n),
                            array_agg(false ORDER BY n),
                            array_agg(c->>'idempotency_key' ORDER BY n),
                            array_agg((c->>'priority')::smallint ORDER BY n),
                            array_agg(v_now + make_interval(secs => (c->>'delay_ms')::bigint / 1000.0) ORDER BY n),
                            array_agg((c->>'max_attempts')::integer ORDER BY n),
                            array_agg(NULL::jsonb ORDER BY n),
                            j.id, v_now)
                        FROM jsonb_array_elements(r.effects->'children') WITH ORDINALITY AS e(c, n);
                    END IF;
                END IF;
            END IF;

            PERFORM spool.finish_jobs(ARRAY[j.tenant_id], ARRAY[j.id], 'completed',
                                      ARRAY[r.result], ARRAY[r.logs],
                                      ARRAY[v_status = 'duplicate'], ARRAY[NULL::jsonb], v_now);
            job_id := r.id; status := v_status; RETURN NEXT;
        EXCEPTION WHEN SQLSTATE 'SP409' OR serialization_failure OR unique_violation THEN
            v_error := jsonb_build_object('attempt', j.attempt, 'at', v_now, 'kind', 'commit',
                                          'message', SQLERRM);
            PERFORM spool.fail_one(j.tenant_id, j.id, r.lease, v_error, r.logs,
                                   r.retry_delay_ms, v_now);
            job_id := r.id; status := 'conflict'; RETURN NEXT;
        END;
    END LOOP;
END
$function$

;

ALTER FUNCTION spool.finish_jobs SET enable_hashjoin = off;
ALTER FUNCTION spool.finish_jobs SET enable_mergejoin = off;
