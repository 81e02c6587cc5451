-- Deletes a handler's versions older than its newest $3, except the current version and every
-- version a job not yet finished (in spool.jobs) is pinned to. $1 tenant id, $2 name, $3 how
-- many of the newest versions to keep. Returns the versions deleted.
--
-- Run by the upload that made a new version, under the handler's advisory lock. An enqueue
-- running at the same time pins the current version, or the one current just before this
-- upload: both are among the newest two, so $3 must be 2 or more. A job whose version is
-- pruned cannot be in spool.jobs; a dead job retried later fails for its missing version.
WITH kept AS (
    SELECT version FROM spool.handler_versions
    WHERE tenant_id = $1 AND name = $2
    ORDER BY version DESC
    LIMIT $3
), pinned AS (
    SELECT DISTINCT handler_version AS version FROM spool.jobs
    WHERE tenant_id = $1 AND handler = $2 AND handler_version IS NOT NULL
)
DELETE FROM spool.handler_versions v
WHERE v.tenant_id = $1 AND v.name = $2
  AND v.version NOT IN (SELECT version FROM kept)
  AND v.version NOT IN (SELECT version FROM pinned)
  -- NULL (no such handler) deletes nothing.
  AND v.version <> (SELECT current_version FROM spool.handlers WHERE tenant_id = $1 AND name = $2)
RETURNING v.version
