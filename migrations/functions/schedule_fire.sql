-- Fires the ticks p_ticks (oldest first, with their job ids p_ids and idempotency keys p_keys)
-- of tenant p_tenant_id's schedule p_name, and moves its next tick on to p_next, if the
-- schedule is enabled and its next tick is still p_from (what the caller planned from):
-- otherwise another leader handled these ticks, or the schedule changed, and nothing is done.
--
-- Each tick enqueues one job through spool.enqueue_many with its key, so that a tick fired
-- before (by a leader that died before moving next_fire_at on) answers its earlier job
-- (outcome 'duplicate') rather than making another. With overlap 'skip', a tick whose
-- previous tick's job is still in spool.jobs (pending or running) is skipped. p_refused, when
-- set, is why the tenant's quota refused these ticks: each is recorded 'refused' instead.
-- Keeps the newest p_keep ticks' outcomes. Returns each tick's outcome and job.
CREATE OR REPLACE FUNCTION spool.schedule_fire(
    p_tenant_id bigint,
    p_name      text,
    p_from      timestamptz,
    p_ticks     timestamptz[],
    p_ids       uuid[],
    p_keys      text[],
    p_refused   text,
    p_next      timestamptz,
    p_keep      integer,
    p_now       timestamptz DEFAULT NULL
) RETURNS TABLE (tick_at timestamptz, outcome text, job_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now        timestamptz := coalesce(p_now, now());
    s            spool.schedules%ROWTYPE;
    v_last_job   uuid;
    v_last_fired timestamptz;
    v_outcome    text;
    v_job        uuid;
    v_detail     text;
    v_dup        boolean;
    v_conflict   boolean;
BEGIN
    SELECT * INTO s FROM spool.schedules sc
    WHERE sc.tenant_id = p_tenant_id AND sc.name = p_name
    FOR UPDATE;
    IF NOT FOUND OR NOT s.enabled OR s.next_fire_at IS DISTINCT FROM p_from THEN
        RETURN;
    END IF;
    v_last_job := s.last_job_id;
    v_last_fired := s.last_fired_at;
    FOR i IN 1 .. coalesce(cardinality(p_ticks), 0) LOOP
        v_job := NULL;
        v_detail := NULL;
        IF p_refused IS NOT NULL THEN
            v_outcome := 'refused';
            v_detail := p_refused;
        ELSIF s.overlap = 'skip' AND v_last_job IS NOT NULL AND EXISTS (
            SELECT 1 FROM spool.jobs j WHERE j.tenant_id = p_tenant_id AND j.id = v_last_job
        ) THEN
            v_outcome := 'skipped';
            v_job := v_last_job;
        ELSE
            SELECT e.job_id, e.duplicate, e.conflict INTO v_job, v_dup, v_conflict
            FROM spool.enqueue_many(
                p_tenant_id, ARRAY[p_ids[i]], ARRAY[s.handler], ARRAY[s.queue],
                ARRAY[convert_to(s.payload::text, 'UTF8')], ARRAY[true], ARRAY[p_keys[i]],
                ARRAY[s.priority], ARRAY[NULL::timestamptz], ARRAY[s.max_attempts],
                ARRAY[s.limits], NULL, v_now) e;
            IF v_dup OR v_conflict THEN
                -- Fired before: by a leader that died before moving next_fire_at on, or
                -- (with another payload) before the schedule was changed.
                v_outcome := 'duplicate';
            ELSE
                v_outcome := 'enqueued';
            END IF;
            v_last_job := v_job;
            v_last_fired := p_ticks[i];
        END IF;
        INSERT INTO spool.schedule_ticks AS t
            (tenant_id, schedule, tick_at, outcome, job_id, detail, handled_at)
        VALUES (p_tenant_id, p_name, p_ticks[i], v_outcome, v_job, v_detail, v_now)
        ON CONFLICT (tenant_id, schedule, tick_at) DO NOTHING;
        tick_at := p_ticks[i];
        outcome := v_outcome;
        job_id := v_job;
        RETURN NEXT;
    END LOOP;

    UPDATE spool.schedules sc
    SET next_fire_at = p_next,
        last_tick_at = coalesce(p_ticks[cardinality(p_ticks)], sc.last_tick_at),
        last_fired_at = v_last_fired,
        last_job_id = v_last_job
    WHERE sc.tenant_id = p_tenant_id AND sc.name = p_name;

    DELETE FROM spool.schedule_ticks t
    WHERE t.tenant_id = p_tenant_id AND t.schedule = p_name
      AND t.tick_at < (
          SELECT k.tick_at FROM spool.schedule_ticks k
          WHERE k.tenant_id = p_tenant_id AND k.schedule = p_name
          ORDER BY k.tick_at DESC OFFSET greatest(p_keep, 1) - 1 LIMIT 1);
END
$$;
