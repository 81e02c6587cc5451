-- Enqueues one JSON job from SQL, inside the caller's transaction: the job exists if and only
-- if that transaction commits. Returns the job's id (the existing job's for a duplicate key);
-- raises unique_violation for a key already used with another payload.
--
--   SELECT spool.enqueue('acme', 'send-receipt', '{"order": 7}', idempotency_key => 'r-7');
CREATE OR REPLACE FUNCTION spool.enqueue(
    tenant          text,
    handler         text,
    payload         jsonb,
    queue           text DEFAULT 'default',
    idempotency_key text DEFAULT NULL,
    priority        smallint DEFAULT 0,
    run_at          timestamptz DEFAULT NULL,
    max_attempts    integer DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant_id bigint;
    v_row       record;
BEGIN
    SELECT t.id INTO v_tenant_id FROM spool.tenants t WHERE t.name = enqueue.tenant;
    IF v_tenant_id IS NULL THEN
        RAISE EXCEPTION 'spool.enqueue: no tenant named %', enqueue.tenant
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT * INTO v_row FROM spool.enqueue_many(
        v_tenant_id, ARRAY[gen_random_uuid()], ARRAY[enqueue.handler], ARRAY[enqueue.queue],
        ARRAY[convert_to(enqueue.payload::text, 'UTF8')], ARRAY[true],
        ARRAY[enqueue.idempotency_key], ARRAY[enqueue.priority], ARRAY[enqueue.run_at],
        ARRAY[enqueue.max_attempts], ARRAY[NULL::jsonb]);
    IF v_row.conflict THEN
        RAISE EXCEPTION 'spool.enqueue: idempotency key % was used with another payload',
            enqueue.idempotency_key USING ERRCODE = 'unique_violation';
    END IF;
    RETURN v_row.job_id;
END
$$;
