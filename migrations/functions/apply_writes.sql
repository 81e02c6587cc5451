-- Applies one attempt's store writes for a tenant, checking what the attempt observed; adds to
-- counters (`add`) are applied unchecked.
-- Raises SQLSTATE 'SP409' on a version conflict. Internal to complete_many.
CREATE OR REPLACE FUNCTION spool.apply_writes(p_tenant_id bigint, p_writes jsonb, p_now timestamptz)
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
END
$$;
