-- One loop of Spool's own lifecycle without a sandbox or a client: claim a batch
-- (spool.claim), complete it (spool.complete_many, no effects), each in its own transaction,
-- until the queue is empty. BATCH is replaced by run.sh.
DO $$
DECLARE
    t0      timestamptz := clock_timestamp();
    n       integer := 0;
    k       integer;
    tenants bigint[];
    ids     uuid[];
    leases  uuid[];
BEGIN
    LOOP
        SELECT array_agg(c.tenant_id), array_agg(c.id), array_agg(c.run_lease)
        INTO tenants, ids, leases
        FROM spool.claim('default', BATCH, 'db-only', 60000) c;
        COMMIT;
        EXIT WHEN ids IS NULL;
        k := cardinality(ids);
        PERFORM * FROM spool.complete_many(
            tenants, ids, leases, array_fill(''::bytea, ARRAY[k]),
            array_fill('[]'::jsonb, ARRAY[k]), array_fill(NULL::jsonb, ARRAY[k]),
            array_fill(1000::bigint, ARRAY[k]), array_fill(3, ARRAY[k]));
        COMMIT;
        n := n + k;
    END LOOP;
    RAISE NOTICE '% jobs in % ms', n, round(extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
