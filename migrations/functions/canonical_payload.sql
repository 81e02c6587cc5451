-- Converts a JSON payload's bytes to their canonical text (jsonb's), so that the same JSON
-- enqueued through any path hashes the same.
CREATE OR REPLACE FUNCTION spool.canonical_payload(payload bytea, is_json boolean) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN is_json
        THEN convert_to(convert_from(payload, 'UTF8')::jsonb::text, 'UTF8')
        ELSE payload END
$$;
