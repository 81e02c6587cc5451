-- Drops the history partitions spool.history_partitions detached (job_history_retired_*),
-- taking their jobs off the queue counters in the same transaction: a negative delta per
-- (tenant, queue, state) for what each held. Nothing else reads a detached partition, so
-- counting it holds up no one. Returns how many were dropped.
CREATE OR REPLACE FUNCTION spool.history_retire() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_dropped integer := 0;
    r         record;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'spool'::regnamespace AND c.relkind = 'r'
          AND c.relname ~ '^job_history_retired_[0-9]{8}$' AND NOT c.relispartition
        ORDER BY c.relname
    LOOP
        BEGIN
            -- Another maintenance pass retiring it at the same time: whoever locks it first
            -- counts and drops it; the other finds it gone.
            EXECUTE format('LOCK TABLE spool.%I IN ACCESS EXCLUSIVE MODE', r.relname);
        EXCEPTION WHEN undefined_table THEN
            CONTINUE;
        END;
        EXECUTE format(
            'INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta, at)
             SELECT h.tenant_id, h.queue, h.state, -count(*), now() FROM spool.%I h
             GROUP BY h.tenant_id, h.queue, h.state', r.relname);
        EXECUTE format('DROP TABLE spool.%I', r.relname);
        v_dropped := v_dropped + 1;
    END LOOP;
    RETURN v_dropped;
END
$$;
