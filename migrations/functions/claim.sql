-- Claims up to p_limit available jobs of one queue for a worker, sharing them fairly between
-- tenants: each tenant with work gets its turn (its 1st job, then every tenant's 2nd, ...), in
-- an order drawn at random for every claim, so that nothing a tenant sets on its own jobs
-- (priority, an old run_at) buys it a place ahead of another tenant; priority and run_at order
-- jobs within a tenant. No tenant gets more than its max_running minus what it already runs:
-- spool.claim_room takes each picked tenant's claim lock, in tenant order (no lock cycles
-- between claimers), before it reads the tenant's running count (spool.running_counts, kept
-- by the claim and by whatever ends an attempt). Every claimed job gets a fresh run_lease and
-- a lease of p_lease_ms.
--
-- One statement in PL/pgSQL, whose plan is cached (measured with `spool bench --setup-sql`:
-- a separate statement for the pick and the locks cost about a fifth of the burn-down, and a
-- LANGUAGE sql body, planned on every call, as much). The update locks the rows it claims; a
-- separate FOR UPDATE SKIP LOCKED step before it cost 3-4 % of the burn-down and 13 % of the
-- database's own throughput (with finish_jobs' fenced delete, measured together), and skips
-- nothing here: claims on one queue take turns, so the only other lockers of an available job
-- are short (a cancel), and the update's recheck skips a job they changed.
--
-- The claiming worker says how many jobs it holds per tenant (p_held_tenants/p_held_counts):
-- the tenants holding fewest are picked first, and a tenant's turns start after the ones it
-- already holds, so a worker's slots go first to the tenants holding fewest of them. A tenant
-- whose jobs run long cannot fill a worker's slots while another tenant waits: each slot it
-- frees goes to the waiting tenant until they hold as many. And no tenant gets more than
-- p_most_per_tenant of the worker's slots (NULL: no cap): the worker keeps the rest for
-- tenants whose work arrives while one tenant's long jobs hold all it may take, so that they
-- start at once instead of waiting for those jobs to end.
CREATE OR REPLACE FUNCTION spool.claim(
    p_queue    text,
    p_limit    integer,
    p_worker   text,
    p_lease_ms bigint,
    p_now      timestamptz DEFAULT NULL,
    p_held_tenants bigint[] DEFAULT '{}',
    p_held_counts  integer[] DEFAULT '{}',
    p_most_per_tenant integer DEFAULT NULL
) RETURNS TABLE (
    tenant_id bigint, tenant text, tenant_limits jsonb, id uuid, queue text, handler text,
    handler_version integer, digest text, attempt integer, max_attempts integer,
    backoff_base_ms bigint, backoff_cap_ms bigint, idempotency_key text, payload bytea,
    limits jsonb, run_lease uuid, already_done boolean, allowed_hosts text[]
)
SET jit = off
-- Rows are found by key, a few hundred at most: a hash join over a seq scan of the hot table
-- (which the planner picks while the table is small) costs the whole table per claim.
SET enable_hashjoin = off
SET enable_mergejoin = off
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- Claims on one queue take turns (the lock is held until the claiming transaction ends),
    -- and the claim below reads a snapshot taken after its turn came: it sees every job the
    -- claimer before it took. Without this, a claimer that waited for another (on a tenant's
    -- claim lock) picked the very jobs the other had just taken, skipped them all, and came
    -- back empty, leaving its worker idle until the next notification or poll.
    PERFORM pg_advisory_xact_lock(1936683883, hashtext(p_queue));
    RETURN QUERY
    WITH RECURSIVE tenants AS (
        -- A loose index scan along jobs_available: each distinct tenant with available work
        -- in this queue (ordered by the whole index, so that no other index is walked).
        (SELECT j.tenant_id FROM spool.jobs j
         WHERE j.state = 'available' AND j.queue = p_queue
         ORDER BY j.tenant_id, j.priority, j.run_at, j.id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.tenant_id FROM spool.jobs j
                WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id > t.tenant_id
                ORDER BY j.tenant_id, j.priority, j.run_at, j.id LIMIT 1)
        FROM tenants t WHERE t.tenant_id IS NOT NULL
    ), picked AS (
        -- At most p_limit tenants among those below their max_running as this snapshot sees
        -- them (a tenant at its cap would take a turn and fill none of it: the claim would
        -- come back short, and the worker would wait for its next poll): those the worker
        -- holds fewest jobs of first, at random among equals, so that a slot freed by a
        -- tenant's short job does not go by lot to a tenant whose jobs run long and fill the
        -- worker one slot at a time. Then in tenant order, so that claim_room takes the locks
        -- in that order (OFFSET 0 keeps the order where the room is computed).
        SELECT p.tenant_id, p.max_running, p.held FROM (
            SELECT t.tenant_id, tn.max_running, coalesce(h.n, 0) AS held FROM tenants t
            JOIN spool.tenants tn ON tn.id = t.tenant_id
            LEFT JOIN unnest(p_held_tenants, p_held_counts) AS h(tenant_id, n)
                   ON h.tenant_id = t.tenant_id
            WHERE t.tenant_id IS NOT NULL
              AND (p_most_per_tenant IS NULL OR coalesce(h.n, 0) < p_most_per_tenant)
              AND (SELECT coalesce(sum(r.n), 0) FROM spool.running_counts r
                   WHERE r.tenant_id = t.tenant_id) < tn.max_running
            ORDER BY coalesce(h.n, 0), random() LIMIT p_limit
        ) p
        ORDER BY p.tenant_id OFFSET 0
    ), room AS MATERIALIZED (
        SELECT p.tenant_id, random() AS turn_order, p.held,
               spool.claim_room(p.tenant_id, p.max_running) AS n
        FROM picked p
    ), candidates AS (
        SELECT c.tenant_id, c.id
        FROM room
        CROSS JOIN LATERAL (
            SELECT j.tenant_id, j.id,
                   row_number() OVER (ORDER BY j.priority, j.run_at, j.id) AS turn
            FROM spool.jobs j
            WHERE j.state = 'available' AND j.queue = p_queue AND j.tenant_id = room.tenant_id
            ORDER BY j.priority, j.run_at, j.id
            LIMIT greatest(0, least(room.n, p_limit,
                                    coalesce(p_most_per_tenant - room.held, p_limit)))
        ) c
        ORDER BY c.turn + room.held, room.turn_order
        LIMIT p_limit
    ), claimed AS (
        UPDATE spool.jobs j
        SET state = 'running', attempt = j.attempt + 1, run_lease = gen_random_uuid(),
            lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_lease_ms / 1000.0),
            worker = p_worker, attempted_at = coalesce(p_now, now())
        FROM candidates l
        -- The update locks the rows itself: claims on this queue take turns (above), so no
        -- other claimer holds them, and a row that another transaction (a cancel) changed
        -- meanwhile is rechecked against this condition once it commits, and skipped.
        WHERE j.tenant_id = l.tenant_id AND j.id = l.id AND j.state = 'available'
        RETURNING j.*
    ), counted AS (
        INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
        SELECT c.tenant_id, c.queue, s.state, s.delta * count(*), coalesce(p_now, now())
        FROM claimed c
        CROSS JOIN (VALUES ('available'::spool.job_state, -1), ('running', 1)) AS s(state, delta)
        GROUP BY c.tenant_id, c.queue, s.state, s.delta
    ), running AS (
        -- Stripe 0 of each tenant's running count: its claims queue behind its claim lock.
        INSERT INTO spool.running_counts AS r (tenant_id, stripe, n)
        SELECT c.tenant_id, 0, count(*) FROM claimed c
        GROUP BY c.tenant_id
        ON CONFLICT (tenant_id, stripe) DO UPDATE SET n = r.n + EXCLUDED.n
    )
    SELECT c.tenant_id, tn.name, tn.limits, c.id, c.queue, c.handler,
           coalesce(c.handler_version, hd.current_version), hv.digest, c.attempt, c.max_attempts,
           c.backoff_base_ms, c.backoff_cap_ms, c.idempotency_key, c.payload, c.limits,
           c.run_lease,
           -- A job without a key (its key is its id) has no done-record to look up.
           c.idempotency_key <> c.id::text
           AND EXISTS (SELECT 1 FROM spool.idempotency k
                       WHERE k.tenant_id = c.tenant_id AND k.key = c.idempotency_key
                         AND k.done_at IS NOT NULL),
           tn.allowed_hosts
    FROM claimed c
    JOIN spool.tenants tn ON tn.id = c.tenant_id
    LEFT JOIN spool.handlers hd ON hd.tenant_id = c.tenant_id AND hd.name = c.handler
    LEFT JOIN spool.handler_versions hv
           ON hv.tenant_id = c.tenant_id AND hv.name = c.handler
          AND hv.version = coalesce(c.handler_version, hd.current_version);
END
$$;
