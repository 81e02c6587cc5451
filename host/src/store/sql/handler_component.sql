-- The component bytes of one handler version ($1 tenant, $2 name, $3 version).
SELECT component FROM spool.handler_versions
WHERE tenant_id = $1 AND name = $2 AND version = $3
