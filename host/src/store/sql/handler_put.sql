-- Stores a component as the handler's new current version, unless the current version has
-- the same digest. $1 tenant id, $2 name, $3 digest, $4 component bytes. The caller holds
-- the handler's advisory lock (handler_lock), so that this statement's snapshot sees every
-- earlier upload of the handler. A new version takes the number after the highest the
-- handler ever had, deleted versions included (handler_version_marks).
WITH current AS (
    SELECT h.current_version, v.digest, v.size
    FROM spool.handlers h
    JOIN spool.handler_versions v
      ON v.tenant_id = h.tenant_id AND v.name = h.name AND v.version = h.current_version
    WHERE h.tenant_id = $1 AND h.name = $2
    FOR UPDATE OF h
), next AS (
    SELECT greatest(
               (SELECT max(version) FROM spool.handler_versions
                WHERE tenant_id = $1 AND name = $2),
               (SELECT last_version FROM spool.handler_version_marks
                WHERE tenant_id = $1 AND name = $2),
               0) + 1 AS version
    WHERE NOT EXISTS (SELECT 1 FROM current WHERE digest = $3)
), version AS (
    INSERT INTO spool.handler_versions (tenant_id, name, version, digest, size, component)
    SELECT $1, $2, next.version, $3, length($4), $4 FROM next
    RETURNING version, digest, size
), handler AS (
    INSERT INTO spool.handlers AS h (tenant_id, name, current_version)
    SELECT $1, $2, version FROM version
    ON CONFLICT (tenant_id, name) DO UPDATE
    SET current_version = EXCLUDED.current_version, updated_at = now()
), mark AS (
    INSERT INTO spool.handler_version_marks AS m (tenant_id, name, last_version)
    SELECT $1, $2, version FROM version
    ON CONFLICT (tenant_id, name) DO UPDATE
    SET last_version = greatest(m.last_version, EXCLUDED.last_version)
)
SELECT version, digest, size, true AS created FROM version
UNION ALL
SELECT current_version, digest, size, false FROM current WHERE digest = $3
