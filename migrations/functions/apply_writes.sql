-- Applies one attempt's store writes for a tenant, checking what the attempt observed; adds to
-- counters (`add`) are applied unchecked. Internal to complete_many.
--
-- Keeps the tenant's store bytes (spool.kv_usage) and holds it to its max_store_bytes (its
-- limits, or spool.limit_defaults): the tenant's usage row is locked before any key is
-- written, so the tenant's writing commits take their turns, and each adds the difference in
-- bytes (keys plus values) its writes made. A commit that grows the store past the quota
-- raises SQLSTATE 'SP413'; one that shrinks it or keeps its size always commits, even over a
-- quota that was lowered.
--
-- Raises SQLSTATE 'SP409' on a version conflict.
CREATE OR REPLACE FUNCTION spool.apply_writes(p_tenant_id bigint, p_writes jsonb, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    w        jsonb;
    v_key    text;
    v_value  bytea;
    v_rows   integer;
    v_keys   text[];
    v_before bigint;
    v_after  bigint;
    v_used   bigint;
    v_limit  numeric;
BEGIN
    IF jsonb_array_length(coalesce(p_writes, '[]')) = 0 THEN
        RETURN;
    END IF;
    -- First the tenant's usage row, then its keys: every commit takes them in that order.
    PERFORM 1 FROM spool.kv_usage WHERE tenant_id = p_tenant_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO spool.kv_usage (tenant_id, bytes) VALUES (p_tenant_id, 0)
        ON CONFLICT (tenant_id) DO NOTHING;
        PERFORM 1 FROM spool.kv_usage WHERE tenant_id = p_tenant_id FOR UPDATE;
    END IF;
    -- What the written keys hold before and after: with the usage row locked no other commit
    -- writes this tenant's keys in between, so the difference is exactly this commit's.
    SELECT array_agg(DISTINCT x->>'key') INTO v_keys FROM jsonb_array_elements(p_writes) x;
    SELECT coalesce(sum(octet_length(k.key) + octet_length(k.value)), 0) INTO v_before
    FROM spool.kv k WHERE k.tenant_id = p_tenant_id AND k.key = ANY (v_keys);

    FOR w IN SELECT * FROM jsonb_array_elements(p_writes) LOOP
        v_key := w->>'key';
        IF w ? 'add' THEN
            -- A counter: added to whatever is current, with no check, so adds commute. The value
            -- is the integer's decimal text (JSON), what `get` reads back.
            INSERT INTO spool.kv AS kv (tenant_id, key, value, version, updated_at)
            VALUES (p_tenant_id, v_key, convert_to((w->>'add')::bigint::text, 'UTF8'), 1, p_now)
            ON CONFLICT (tenant_id, key) DO UPDATE
            SET value = convert_to((spool.counter_value(v_key, kv.value)
                                    + (w->>'add')::bigint)::text, 'UTF8'),
                version = kv.version + 1, updated_at = p_now;
            CONTINUE;
        END IF;
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

    SELECT coalesce(sum(octet_length(k.key) + octet_length(k.value)), 0) INTO v_after
    FROM spool.kv k WHERE k.tenant_id = p_tenant_id AND k.key = ANY (v_keys);
    IF v_after = v_before THEN
        RETURN;
    END IF;
    UPDATE spool.kv_usage SET bytes = bytes + (v_after - v_before)
    WHERE tenant_id = p_tenant_id
    RETURNING bytes INTO v_used;
    IF v_after > v_before THEN
        SELECT coalesce((t.limits->>'max_store_bytes')::numeric,
                        (d.limits->>'max_store_bytes')::numeric)
        INTO v_limit
        FROM spool.tenants t LEFT JOIN spool.limit_defaults d ON true
        WHERE t.id = p_tenant_id;
        IF v_limit IS NULL THEN
            RAISE EXCEPTION 'the default tenant limits are missing: run spool migrate';
        END IF;
        IF v_used > v_limit THEN
            RAISE EXCEPTION 'store quota exceeded: the tenant''s store would hold % bytes, over its max_store_bytes of %',
                v_used, v_limit USING ERRCODE = 'SP413';
        END IF;
    END IF;
END
$$;
