-- The job lifecycle after enqueue: claim, heartbeat, complete (the group commit), fail, and
-- the maintenance transitions. Every transition out of `running` is fenced on the attempt's
-- run_lease: a worker that lost its lease (rescued, or a zombie) writes nothing.
--
-- Each function takes p_now (NULL = the database clock) so that tests can drive time.

-- Claims up to p_limit available jobs of one queue for a worker, sharing them fairly between
-- tenants: each tenant with work gets its turn in round-robin order (its 1st job, then every
-- tenant's 2nd, ...), and no tenant gets more than its max_running minus what it already runs.
-- Every claimed job gets a fresh run_lease and a lease of p_lease_ms.
CREATE FUNCTION spool.claim(
    p_queue    text,
    p_limit    integer,
    p_worker   text,
    p_lease_ms bigint,
    p_now      timestamptz DEFAULT NULL
) RETURNS TABLE (
    tenant_id bigint, tenant text, tenant_limits jsonb, id uuid, queue text, handler text,
    handler_version integer, digest text, attempt integer, max_attempts integer,
    backoff_base_ms bigint, backoff_cap_ms bigint, idempotency_key text, payload bytea,
    limits jsonb, run_lease uuid, already_done boolean
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
BEGIN
    RETURN QUERY
    WITH RECURSIVE tenants AS (
        -- A loose index scan: each distinct tenant with available work in this queue.
        (SELECT j.tenant_id FROM spool.jobs j
         WHERE j.state = 'available' AND j.queue = p_queue
         ORDER BY j.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.tenant_id FROM spool.jobs j
                WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id > t.tenant_id
                ORDER BY j.tenant_id LIMIT 1)
        FROM tenants t WHERE t.tenant_id IS NOT NULL
    ), room AS (
        SELECT t.tenant_id,
               greatest(0, tn.max_running - (
                   SELECT count(*) FROM spool.jobs r
                   WHERE r.tenant_id = t.tenant_id AND r.state = 'running'))::integer AS n
        FROM tenants t JOIN spool.tenants tn ON tn.id = t.tenant_id
        WHERE t.tenant_id IS NOT NULL
    ), candidates AS (
        SELECT c.tenant_id, c.id, c.turn, c.priority, c.run_at
        FROM room
        CROSS JOIN LATERAL (
            SELECT j.tenant_id, j.id, j.priority, j.run_at,
                   row_number() OVER (ORDER BY j.priority, j.run_at, j.id) AS turn
            FROM spool.jobs j
            WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id = room.tenant_id
            ORDER BY j.priority, j.run_at, j.id
            LIMIT least(room.n, p_limit)
        ) c
        ORDER BY c.turn, c.priority, c.run_at, c.id
        LIMIT p_limit
    ), locked AS (
        SELECT j.tenant_id, j.id FROM spool.jobs j
        WHERE (j.tenant_id, j.id) IN (SELECT c.tenant_id, c.id FROM candidates c)
          AND j.state = 'available'
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE spool.jobs j
        SET state = 'running', attempt = j.attempt + 1, run_lease = gen_random_uuid(),
            lease_expires_at = v_now + make_interval(secs => p_lease_ms / 1000.0),
            worker = p_worker, attempted_at = v_now
        FROM locked l
        WHERE j.tenant_id = l.tenant_id AND j.id = l.id
        RETURNING j.*
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT c.tenant_id, c.queue, s.state, s.delta * count(*), v_now
        FROM claimed c
        CROSS JOIN (VALUES ('available'::spool.job_state, -1), ('running', 1)) AS s(state, delta)
        GROUP BY c.tenant_id, c.queue, s.state, s.delta
    )
    SELECT c.tenant_id, tn.name, tn.limits, c.id, c.queue, c.handler,
           coalesce(c.handler_version, hd.current_version), hv.digest, c.attempt, c.max_attempts,
           c.backoff_base_ms, c.backoff_cap_ms, c.idempotency_key, c.payload, c.limits,
           c.run_lease,
           EXISTS (SELECT 1 FROM spool.idempotency k
                   WHERE k.tenant_id = c.tenant_id AND k.key = c.idempotency_key
                     AND k.done_at IS NOT NULL)
    FROM claimed c
    JOIN spool.tenants tn ON tn.id = c.tenant_id
    LEFT JOIN spool.handlers hd ON hd.tenant_id = c.tenant_id AND hd.name = c.handler
    LEFT JOIN spool.handler_versions hv
           ON hv.tenant_id = c.tenant_id AND hv.name = c.handler
          AND hv.version = coalesce(c.handler_version, hd.current_version);
END
$$;

-- Extends the leases of running jobs still held under the given run_leases. Returns the ids
-- whose lease was lost (rescued or finished elsewhere): their attempts should be abandoned.
-- A row locked by another transaction is being finished or rescued right now: it is skipped
-- this round rather than waited for (waiting deadlocked with the worker's own group commit,
-- which locks the same rows in another order). The joins are driven from the input by primary
-- key; `run_lease = lease AND lease_expires_at IS NOT NULL` means "running under this lease"
-- by the table's CHECK, and keeps the planner off the running index (a rescan per row).
CREATE FUNCTION spool.heartbeat(p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_lease_ms bigint, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone)
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
$function$;

-- Moves jobs from the hot table to history as `p_state`, recording results and logs.
-- Internal: callers have checked fencing.
CREATE FUNCTION spool.finish_jobs(
    p_tenants bigint[], p_ids uuid[], p_state spool.job_state, p_results bytea[],
    p_logs jsonb[], p_duplicates boolean[], p_errors jsonb[], p_now timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
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
            duplicate, finished_at)
        SELECT m.tenant_id, m.id, m.queue, p_state, m.priority, m.run_at, m.handler,
               m.handler_version, m.attempt, m.max_attempts, m.backoff_base_ms,
               m.backoff_cap_ms, m.idempotency_key, m.payload, m.payload_hash, m.limits,
               CASE WHEN m.new_error IS NULL THEN m.errors
                    ELSE m.errors || jsonb_build_array(m.new_error) END,
               coalesce(m.new_logs, m.logs), m.parent_id, m.created_at, m.attempted_at,
               m.new_result, coalesce(m.new_duplicate, false), p_now
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
    SELECT count(*) INTO v_count FROM moved;
    RETURN v_count;
END
$$;

-- Applies one attempt's store writes for a tenant, checking what the attempt observed.
-- Raises SQLSTATE 'SP409' on a version conflict. Internal to complete_many.
CREATE FUNCTION spool.apply_writes(p_tenant_id bigint, p_writes jsonb, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    w        jsonb;
    v_key    text;
    v_value  bytea;
    v_rows   integer;
BEGIN
    FOR w IN SELECT * FROM jsonb_array_elements(coalesce(p_writes, '[]')) LOOP
        v_key := w->>'key';
        v_value := CASE WHEN w->'value' = 'null'::jsonb OR NOT (w ? 'value') THEN NULL
                        ELSE decode(w->>'value', 'base64') END;
        IF w->'expected' IS NULL OR w->'expected' = 'null'::jsonb THEN
            -- A blind write: no check.
            IF v_value IS NULL THEN
                DELETE FROM spool.kv WHERE tenant_id = p_tenant_id AND key = v_key;
            ELSE
                INSERT INTO spool.kv AS kv (tenant_id, key, value, version, updated_at)
                VALUES (p_tenant_id, v_key, v_value, 1, p_now)
                ON CONFLICT (tenant_id, key) DO UPDATE
                SET value = EXCLUDED.value, version = kv.version + 1, updated_at = p_now;
            END IF;
        ELSIF w->>'expected' = 'absent' THEN
            IF v_value IS NULL THEN
                PERFORM 1 FROM spool.kv WHERE tenant_id = p_tenant_id AND key = v_key;
                v_rows := CASE WHEN FOUND THEN 0 ELSE 1 END;
            ELSE
                INSERT INTO spool.kv (tenant_id, key, value, version, updated_at)
                VALUES (p_tenant_id, v_key, v_value, 1, p_now)
                ON CONFLICT (tenant_id, key) DO NOTHING;
                GET DIAGNOSTICS v_rows = ROW_COUNT;
            END IF;
            IF v_rows = 0 THEN
                RAISE EXCEPTION 'store key % was created concurrently', v_key USING ERRCODE = 'SP409';
            END IF;
        ELSE
            IF v_value IS NULL THEN
                DELETE FROM spool.kv
                WHERE tenant_id = p_tenant_id AND key = v_key
                  AND version = (w->>'expected')::bigint;
            ELSE
                UPDATE spool.kv SET value = v_value, version = version + 1, updated_at = p_now
                WHERE tenant_id = p_tenant_id AND key = v_key
                  AND version = (w->>'expected')::bigint;
            END IF;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            IF v_rows = 0 THEN
                RAISE EXCEPTION 'store key % was changed concurrently', v_key USING ERRCODE = 'SP409';
            END IF;
        END IF;
    END LOOP;
END
$$;

-- The group commit: completes many successful attempts in one call.
--
-- For each job, fenced on its run_lease: writes its done-record; if the key was already done,
-- completes the job as a duplicate with its effects discarded. Otherwise applies its store
-- writes (version-checked) and enqueues its follow-up jobs. Jobs without effects are completed
-- together in a few set-based statements; each job with effects gets a subtransaction of its
-- own, so that one job's conflict cannot sink the others. A job whose effects conflict is
-- retried (kind `commit`) after p_retry_delay_ms, or dead-lettered when that is NULL.
--
-- p_effects holds, per job, NULL or {"writes": [{key, value (base64) | null, expected:
-- null | "absent" | version}], "children": [{id, handler, queue, payload (base64),
-- idempotency_key, priority, delay_ms, max_attempts}]}.
--
-- Returns each job's status: completed, duplicate, stale (lease lost: nothing written) or
-- conflict (retried or dead-lettered).
CREATE FUNCTION spool.complete_many(p_tenants bigint[], p_ids uuid[], p_leases uuid[], p_results bytea[], p_logs jsonb[], p_effects jsonb[], p_retry_delay_ms bigint[], p_now timestamp with time zone DEFAULT NULL::timestamp with time zone)
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
$function$;

-- Fails one running attempt, fenced on its lease: retryable after p_delay_ms, or dead when
-- p_delay_ms is NULL. p_error is {attempt, at, kind, message}. Returns the new state, or NULL
-- when the lease was lost.
CREATE FUNCTION spool.fail_one(
    p_tenant_id bigint, p_id uuid, p_lease uuid, p_error jsonb, p_logs jsonb,
    p_delay_ms bigint, p_now timestamptz
) RETURNS spool.job_state
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    IF p_delay_ms IS NULL THEN
        PERFORM 1 FROM spool.jobs
        WHERE tenant_id = p_tenant_id AND id = p_id AND run_lease = p_lease AND state = 'running'
        FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM spool.finish_jobs(ARRAY[p_tenant_id], ARRAY[p_id], 'dead', ARRAY[NULL::bytea],
                                  ARRAY[p_logs], ARRAY[false], ARRAY[p_error], p_now);
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
    RETURN 'retryable';
END
$$;

-- Fails many running attempts (see fail_one). p_kinds and p_messages describe each failure;
-- p_delay_ms NULL dead-letters. Returns each job's new state (NULL: lease lost, nothing done).
CREATE FUNCTION spool.fail_many(
    p_tenants  bigint[],
    p_ids      uuid[],
    p_leases   uuid[],
    p_attempts integer[],
    p_kinds    text[],
    p_messages text[],
    p_logs     jsonb[],
    p_delay_ms bigint[],
    p_now      timestamptz DEFAULT NULL
) RETURNS TABLE (job_id uuid, state spool.job_state)
LANGUAGE sql AS $$
    SELECT i.id, spool.fail_one(
        i.tenant_id, i.id, i.lease,
        jsonb_build_object('attempt', i.attempt, 'at', coalesce(p_now, now()), 'kind', i.kind,
                           'message', i.message),
        i.logs, i.delay_ms, coalesce(p_now, now()))
    FROM unnest(p_tenants, p_ids, p_leases, p_attempts, p_kinds, p_messages, p_logs, p_delay_ms)
        AS i(tenant_id, id, lease, attempt, kind, message, logs, delay_ms)
$$;

-- Makes due scheduled and retryable jobs available, at most p_limit of them. Returns how many.
CREATE FUNCTION spool.schedule_due(p_limit integer, p_now timestamptz DEFAULT NULL)
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

-- Returns running jobs whose lease expired by p_now, at most p_limit, locked for the rescuer.
CREATE FUNCTION spool.expired(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (tenant_id bigint, id uuid, run_lease uuid, attempt integer, max_attempts integer,
               backoff_base_ms bigint, backoff_cap_ms bigint)
LANGUAGE sql AS $$
    SELECT j.tenant_id, j.id, j.run_lease, j.attempt, j.max_attempts, j.backoff_base_ms,
           j.backoff_cap_ms
    FROM spool.jobs j
    WHERE j.state = 'running' AND j.lease_expires_at < coalesce(p_now, now())
    ORDER BY j.lease_expires_at LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;

-- Cancels a pending (not running, not finished) job. Returns false if there was none.
CREATE FUNCTION spool.cancel(p_tenant_id bigint, p_id uuid, p_now timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM spool.jobs
    WHERE tenant_id = p_tenant_id AND id = p_id AND state <> 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM spool.finish_jobs(ARRAY[p_tenant_id], ARRAY[p_id], 'cancelled', ARRAY[NULL::bytea],
                              ARRAY[NULL::jsonb], ARRAY[false], ARRAY[NULL::jsonb],
                              coalesce(p_now, now()));
    RETURN true;
END
$$;

-- Requeues dead or cancelled jobs: back to the hot table as available, with one more attempt
-- if they had used all of theirs. Returns the ids requeued.
CREATE FUNCTION spool.retry_many(p_tenant_id bigint, p_ids uuid[], p_now timestamptz DEFAULT NULL)
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

-- Folds queued count deltas into the totals and per-minute throughput. Returns deltas folded.
CREATE FUNCTION spool.fold_counts(p_limit integer DEFAULT 100000) RETURNS integer
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

-- Takes or renews the named lease for p_holder for p_ttl_ms. Returns whether p_holder holds it.
CREATE FUNCTION spool.lease_acquire(p_name text, p_holder text, p_ttl_ms bigint)
RETURNS boolean
LANGUAGE sql AS $$
    WITH taken AS (
        INSERT INTO spool.leases AS l (name, holder, expires_at)
        VALUES (p_name, p_holder, now() + make_interval(secs => p_ttl_ms / 1000.0))
        ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
        WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
        RETURNING l.holder
    )
    SELECT EXISTS (SELECT 1 FROM taken)
$$;

-- Keeps one history partition per UTC day from today to p_days_ahead days on, and drops the
-- day partitions that ended more than p_retention_ms ago: old history goes whole, never row by
-- row. Rows only land in the default partition when maintenance has not run for days; a day
-- with such rows gets no partition of its own (its rows stay where they are) and the default
-- partition's old rows are deleted past the retention.
CREATE FUNCTION spool.history_partitions(p_days_ahead integer, p_retention_ms bigint)
RETURNS TABLE (created integer, dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_day     date;
    v_from    timestamptz;
    v_name    text;
    v_created integer := 0;
    v_dropped integer := 0;
    v_cutoff  timestamptz := now() - make_interval(secs => p_retention_ms / 1000.0);
    r         record;
BEGIN
    FOR v_day IN
        SELECT generate_series((now() AT TIME ZONE 'UTC')::date,
                               (now() AT TIME ZONE 'UTC')::date + p_days_ahead,
                               interval '1 day')::date
    LOOP
        v_name := 'job_history_' || to_char(v_day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('spool.' || v_name) IS NOT NULL;
        v_from := v_day::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN EXISTS (SELECT 1 FROM spool.job_history_default
                              WHERE finished_at >= v_from AND finished_at < v_from + interval '1 day');
        EXECUTE format('CREATE TABLE spool.%I PARTITION OF spool.job_history FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_from, v_from + interval '1 day');
        v_created := v_created + 1;
    END LOOP;
    FOR r IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'spool.job_history'::regclass AND c.relname ~ '^job_history_[0-9]{8}$'
    LOOP
        IF (to_date(substring(r.relname FROM 13), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
           <= v_cutoff THEN
            EXECUTE format('DROP TABLE spool.%I', r.relname);
            v_dropped := v_dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM spool.job_history_default WHERE finished_at < v_cutoff;
    RETURN QUERY SELECT v_created, v_dropped;
END
$$;

-- Partitions for the first days, so that finished jobs never need moving.
SELECT spool.history_partitions(3, 14 * 86400000);

-- Plan settings for the hot path, found with `spool bench` and auto_explain at a 100k backlog:
-- finish_jobs stays on primary-key lookups (it drifted to hash joins with full scans once
-- batches were large), and these short statements never gain from JIT (which compiled every
-- claim: 25-30 ms of a 30 ms claim).
ALTER FUNCTION spool.claim(text, integer, text, bigint, timestamptz) SET jit = off;
ALTER FUNCTION spool.enqueue_many SET jit = off;
ALTER FUNCTION spool.complete_many SET jit = off;
ALTER FUNCTION spool.finish_jobs SET jit = off;
ALTER FUNCTION spool.heartbeat SET jit = off;
ALTER FUNCTION spool.finish_jobs SET enable_hashjoin = off;
ALTER FUNCTION spool.finish_jobs SET enable_mergejoin = off;
