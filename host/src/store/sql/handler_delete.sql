-- Deletes one handler ($1 tenant, $2 name) and its versions; returns a row when there was one.
-- The highest version number stays remembered elsewhere: a later upload is numbered after it.
WITH handler AS (
    DELETE FROM spool.handlers WHERE tenant_id = $1 AND name = $2 RETURNING tenant_id, name
), versions AS (
    DELETE FROM spool.handler_versions v
    USING handler h
    WHERE v.tenant_id = h.tenant_id AND v.name = h.name
)
SELECT name FROM handler
