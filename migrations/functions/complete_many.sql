-- The group commit: completes many successful attempts in one call.
--
-- For each job, fenced on its run_lease: writes its done-record; if the key was already done,
-- completes the job as a duplicate with its effects discarded. A job enqueued without a key
-- (its key is its id) gets no done-record: nothing else can hold its key, and its history row
-- is the record that it ran (one row and two index entries fewer per job). Otherwise applies its store
-- writes (version-checked) and enqueues its follow-up jobs. Jobs without effects are completed
-- together in a few set-based statements; each job with effects gets a subtransaction of its
-- own, so that one job's conflict cannot sink the others. A job whose checked store write lost
-- an optimistic race runs again shortly without being charged an attempt, up to its
-- p_max_conflicts; past that it fails (kind `commit`) and is retried after p_retry_delay_ms, or
-- dead-lettered when that is NULL.
--
-- Outcomes with effects are applied in the order of (tenant, first key written), the same order
-- in every worker's group commit, so that two commits touching the same hot keys queue behind
-- each other instead of deadlocking (each job's own keys are sorted already). No attempt sees
-- another's uncommitted writes, so a checked write (one whose key the attempt read) commits
-- exactly when the version it read is still the current one: no order within a batch can make
-- two attempts that read the same version both succeed, and none makes one that read a stale
-- version succeed. Blind writes, deletes and `add`s carry no check and never conflict; an
-- `add` is applied to whatever value is current, so concurrent adds commute.
--
-- p_effects holds, per job, NULL or {"writes": [{key, value (base64) | null, expected:
-- null | "absent" | version} | {key, add: delta}], "children": [{id, handler, queue, payload (base64),
-- idempotency_key, priority, delay_ms, max_attempts}]}.
--
-- Returns each job's status: completed, duplicate, stale (lease lost: nothing written),
-- conflict (lost a race on a store key: runs again soon, no attempt charged) or failed (the
-- outcome could not be stored, or the job lost too many races: failed alone with kind `commit`,
-- retried or dead-lettered) or quota (its writes would take the tenant's store past its
-- max_store_bytes: failed alone with kind `quota`).
CREATE OR REPLACE FUNCTION spool.complete_many(
    p_tenants        bigint[],
    p_ids            uuid[],
    p_leases         uuid[],
    p_results        bytea[],
    p_logs           jsonb[],
    p_effects        jsonb[],
    p_retry_delay_ms bigint[],
    p_max_conflicts  integer[],
    p_now            timestamptz DEFAULT NULL
) RETURNS TABLE (job_id uuid, status text)
SET jit = off
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now       timestamptz := coalesce(p_now, now());
    r           record;
    j           record;
    v_done      uuid;
    v_status    text;
    v_error     jsonb;
    v_attempt   integer;
    v_refused   bigint;
    v_queue     text;
    v_fast      boolean := true;
    f_tenants   bigint[];
    f_ids       uuid[];
    f_leases    uuid[];
    f_done      uuid[];
    f_results   bytea[];
    f_logs      jsonb[];
    f_dups      boolean[];
BEGIN
    -- Fast path: every job without effects, set-based. finish_jobs moves them in one
    -- statement, fenced by the delete itself (no separate row lock), and writes the
    -- done-records of those with keys from the rows it moved.
    BEGIN
        SELECT array_agg(i.tenant_id), array_agg(i.id), array_agg(i.lease), array_agg(i.result),
               array_agg(i.logs)
        INTO f_tenants, f_ids, f_leases, f_results, f_logs
        FROM unnest(p_tenants, p_ids, p_leases, p_results, p_logs, p_effects)
            AS i(tenant_id, id, lease, result, logs, effects)
        WHERE i.effects IS NULL;
        IF f_ids IS NOT NULL THEN
            SELECT array_agg(f.job_id), array_agg(f.duplicate) INTO f_done, f_dups
            FROM spool.finish_jobs(f_tenants, f_ids, f_leases, 'completed', f_results, f_logs,
                                   NULL, NULL, true, v_now) AS f;
        END IF;
    EXCEPTION WHEN cardinality_violation OR unique_violation OR deadlock_detected THEN
        -- Two jobs of the batch sharing a key (the upsert cannot touch a row twice), or a
        -- concurrent enqueue of the same key: complete them one by one instead.
        v_fast := false;
    END;

    IF v_fast THEN
        RETURN QUERY
        SELECT d.id, CASE WHEN d.dup THEN 'duplicate' ELSE 'completed' END
        FROM unnest(f_done, f_dups) AS d(id, dup);
        RETURN QUERY
        SELECT i.id, 'stale'
        FROM unnest(f_ids) AS i(id)
        LEFT JOIN unnest(f_done) AS f(id) ON f.id = i.id
        WHERE f.id IS NULL;
    END IF;

    -- One subtransaction per job with effects (or every job, when the fast path failed).
    -- In the order of the first store key each job writes, so that concurrent group commits
    -- (other workers') lock hot keys in one order and do not deadlock over them.
    FOR r IN
        SELECT * FROM unnest(p_tenants, p_ids, p_leases, p_results, p_logs, p_effects,
                             p_retry_delay_ms, p_max_conflicts)
            WITH ORDINALITY
            AS i(tenant_id, id, lease, result, logs, effects, retry_delay_ms, max_conflicts, n)
        WHERE i.effects IS NOT NULL OR NOT v_fast
        ORDER BY i.tenant_id, (i.effects->'writes'->0->>'key') COLLATE "C" NULLS LAST, i.n
    LOOP
        v_attempt := NULL;
        BEGIN
            SELECT jb.* INTO j FROM spool.jobs jb
            WHERE jb.tenant_id = r.tenant_id AND jb.id = r.id AND jb.run_lease = r.lease
              AND jb.state = 'running'
            FOR UPDATE;
            IF NOT FOUND THEN
                job_id := r.id; status := 'stale'; RETURN NEXT;
                CONTINUE;
            END IF;
            v_attempt := j.attempt;

            v_done := NULL;
            IF j.idempotency_key = j.id::text THEN
                v_done := j.id;
            ELSE
                INSERT INTO spool.idempotency AS k
                    (tenant_id, key, job_id, payload_hash, created_at, done_at, result)
                VALUES (j.tenant_id, j.idempotency_key, j.id, j.payload_hash, v_now, v_now,
                        r.result)
                ON CONFLICT (tenant_id, key) DO UPDATE
                SET done_at = EXCLUDED.done_at, result = EXCLUDED.result
                WHERE k.done_at IS NULL AND k.job_id = EXCLUDED.job_id
                RETURNING k.job_id INTO v_done;
            END IF;

            IF v_done IS NULL THEN
                v_status := 'duplicate';
            ELSE
                v_status := 'completed';
                IF r.effects IS NOT NULL THEN
                    PERFORM spool.apply_writes(j.tenant_id, r.effects->'writes', v_now);
                    IF jsonb_array_length(coalesce(r.effects->'children', '[]')) > 0 THEN
                        SELECT e.ord INTO v_refused
                        FROM (
                            SELECT array_agg((c->>'id')::uuid ORDER BY n) AS ids,
                                   array_agg(c->>'handler' ORDER BY n) AS handlers,
                                   array_agg(c->>'queue' ORDER BY n) AS queues,
                                   array_agg(decode(c->>'payload', 'base64') ORDER BY n) AS payloads,
                                   array_agg(false ORDER BY n) AS is_json,
                                   array_agg(c->>'idempotency_key' ORDER BY n) AS keys,
                                   array_agg((c->>'priority')::smallint ORDER BY n) AS priorities,
                                   array_agg(v_now + make_interval(secs => (c->>'delay_ms')::bigint / 1000.0)
                                             ORDER BY n) AS run_at,
                                   array_agg((c->>'max_attempts')::integer ORDER BY n) AS max_attempts,
                                   array_agg(NULL::jsonb ORDER BY n) AS limits
                            FROM jsonb_array_elements(r.effects->'children') WITH ORDINALITY AS x(c, n)
                        ) a,
                        spool.enqueue_many(j.tenant_id, a.ids, a.handlers, a.queues, a.payloads,
                                           a.is_json, a.keys, a.priorities, a.run_at,
                                           a.max_attempts, a.limits, j.id, v_now) AS e
                        WHERE e.conflict
                        LIMIT 1;
                        IF FOUND THEN
                            -- The guest was answered an id for it: the parent cannot commit
                            -- without it.
                            RAISE EXCEPTION 'follow-up %''s idempotency key was used before with another payload',
                                v_refused USING ERRCODE = 'SP422';
                        END IF;
                    END IF;
                END IF;
            END IF;

            PERFORM spool.finish_jobs(ARRAY[j.tenant_id], ARRAY[j.id], NULL, 'completed',
                                      ARRAY[r.result], ARRAY[r.logs],
                                      ARRAY[v_status = 'duplicate'], ARRAY[NULL::jsonb], false,
                                      v_now);
            job_id := r.id; status := v_status; RETURN NEXT;
        EXCEPTION
            WHEN SQLSTATE 'SP409' OR serialization_failure OR unique_violation
                 OR deadlock_detected THEN
                -- Lost a race on a store key (or a lock cycle with another group commit over
                -- keys in guest-chosen order): not the job's fault. It runs again shortly
                -- (10 ms growing by half each time, capped at 1 s, jittered), keeps its
                -- attempt number, and the conflict is noted in its errors. Past its bound the
                -- conflict is an ordinary failure of kind `commit`.
                v_error := jsonb_build_object('attempt', coalesce(v_attempt, 0), 'at', v_now,
                                              'kind', 'conflict', 'message', SQLERRM);
                UPDATE spool.jobs jb
                SET state = 'retryable', attempt = jb.attempt - 1, conflicts = jb.conflicts + 1,
                    run_at = v_now + make_interval(secs =>
                        least(1000.0, 10.0 * power(1.5, least(jb.conflicts, 20)))
                        * (0.5 + random() / 2) / 1000.0),
                    run_lease = NULL, lease_expires_at = NULL, worker = NULL,
                    errors = jb.errors || jsonb_build_array(v_error),
                    logs = coalesce(r.logs, jb.logs)
                WHERE jb.tenant_id = r.tenant_id AND jb.id = r.id AND jb.run_lease = r.lease
                  AND jb.state = 'running' AND jb.conflicts < r.max_conflicts
                RETURNING jb.queue INTO v_queue;
                IF FOUND THEN
                    INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
                    VALUES (r.tenant_id, v_queue, 'running', -1, v_now),
                           (r.tenant_id, v_queue, 'retryable', 1, v_now);
                    PERFORM spool.running_add(ARRAY[r.tenant_id], ARRAY[-1::bigint]);
                    job_id := r.id; status := 'conflict'; RETURN NEXT;
                ELSE
                    v_error := jsonb_build_object('attempt', coalesce(v_attempt, 0), 'at', v_now,
                        'kind', 'commit', 'message',
                        'lost more races on store keys than its bound allows: ' || SQLERRM);
                    job_id := r.id;
                    status := CASE WHEN spool.fail_one(r.tenant_id, r.id, r.lease, v_error,
                                                       r.logs, r.retry_delay_ms, v_now) IS NULL
                                   THEN 'stale' ELSE 'failed' END;
                    RETURN NEXT;
                END IF;
            WHEN SQLSTATE 'SP413' THEN
                -- Its writes would take the tenant's store past max_store_bytes (apply_writes
                -- holds the quota at commit): kind `quota`, retried like any failure.
                v_error := jsonb_build_object('attempt', coalesce(v_attempt, 0), 'at', v_now,
                                              'kind', 'quota', 'message', SQLERRM);
                job_id := r.id;
                status := CASE WHEN spool.fail_one(r.tenant_id, r.id, r.lease, v_error, r.logs,
                                                   r.retry_delay_ms, v_now) IS NULL
                               THEN 'stale' ELSE 'quota' END;
                RETURN NEXT;
            WHEN OTHERS THEN
                -- An outcome the database cannot take (a value out of range, a follow-up whose
                -- key is taken): this job fails alone, kind `commit`, retried and in the end
                -- dead-lettered like any failure; the rest of the batch commits.
                v_error := jsonb_build_object('attempt', coalesce(v_attempt, 0), 'at', v_now,
                    'kind', 'commit', 'message', 'the outcome could not be stored: ' || SQLERRM);
                job_id := r.id;
                status := CASE WHEN spool.fail_one(r.tenant_id, r.id, r.lease, v_error, r.logs,
                                                   r.retry_delay_ms, v_now) IS NULL
                               THEN 'stale' ELSE 'failed' END;
                RETURN NEXT;
        END;
    END LOOP;
END
$$;
