-- Every stored version of one handler ($1 tenant, $2 name), newest first.
SELECT version, digest, size::int8 AS size, created_at
FROM spool.handler_versions
WHERE tenant_id = $1 AND name = $2
ORDER BY version DESC
