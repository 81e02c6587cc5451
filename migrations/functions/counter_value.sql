-- The integer a store value holds as a counter: its decimal text. Raises (22P02) naming the key
-- when the value is something else, which fails the attempt that added to it (kind `commit`).
CREATE OR REPLACE FUNCTION spool.counter_value(p_key text, p_value bytea) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_text text;
BEGIN
    BEGIN
        v_text := convert_from(p_value, 'UTF8');
    EXCEPTION WHEN OTHERS THEN
        v_text := NULL;
    END;
    IF v_text IS NULL OR v_text !~ '^\s*-?[0-9]{1,19}\s*$' THEN
        RAISE EXCEPTION 'store key % does not hold an integer to add to', p_key
            USING ERRCODE = 'invalid_text_representation';
    END IF;
    RETURN v_text::bigint;
END
$$;
