-- Keeps one history partition per UTC day from today to p_days_ahead days on, and retires the
-- day partitions that ended more than p_retention_ms ago: old history goes whole, never row by
-- row. Retiring detaches a partition and renames it job_history_retired_YYYYMMDD; the next
-- statement, spool.history_retire, takes its jobs off the queue counters and drops it. (Two
-- transactions: detaching locks the whole history, and counting a day's jobs must not happen
-- under that lock.) Rows only land in the default partition when maintenance has not run for
-- days; a day with such rows gets no partition of its own (its rows stay where they are) and
-- the default partition's old rows are deleted past the retention, and uncounted at once.
-- Returns the partitions created and retired.
CREATE OR REPLACE FUNCTION spool.history_partitions(p_days_ahead integer, p_retention_ms bigint)
RETURNS TABLE (created integer, dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_day     date;
    v_from    timestamptz;
    v_name    text;
    v_created integer := 0;
    v_retired integer := 0;
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
            -- Detaching a partition takes ACCESS EXCLUSIVE on the whole history, and while it
            -- waits every completion queues behind it: wait briefly, and leave a partition
            -- that is being read to the next pass.
            BEGIN
                PERFORM set_config('lock_timeout', '2s', true);
                EXECUTE format('ALTER TABLE spool.job_history DETACH PARTITION spool.%I',
                               r.relname);
                EXECUTE format('ALTER TABLE spool.%I RENAME TO %I', r.relname,
                               'job_history_retired_' || substring(r.relname FROM 13));
                v_retired := v_retired + 1;
            EXCEPTION WHEN lock_not_available THEN
                RAISE NOTICE 'history partition % is in use; retiring it next time', r.relname;
            END;
        END IF;
    END LOOP;
    WITH gone AS (
        DELETE FROM spool.job_history_default WHERE finished_at < v_cutoff
        RETURNING tenant_id, queue, state
    )
    INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
    SELECT g.tenant_id, g.queue, g.state, -count(*), now() FROM gone g
    GROUP BY g.tenant_id, g.queue, g.state;
    RETURN QUERY SELECT v_created, v_retired;
END
$$;
