-- A tenant's handlers ($1) with their current versions; $2, when not null, picks one by name.
SELECT h.name, v.version, v.digest, v.size::int8 AS size, h.updated_at
FROM spool.handlers h
JOIN spool.handler_versions v
  ON v.tenant_id = h.tenant_id AND v.name = h.name AND v.version = h.current_version
WHERE h.tenant_id = $1 AND ($2::text IS NULL OR h.name = $2)
ORDER BY h.name
