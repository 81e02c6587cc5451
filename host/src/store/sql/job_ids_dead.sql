-- A page of tenant $1's dead jobs, newest first: in queue $2 and of handler $3 when given,
-- older than job $4 when given, at most $5.
SELECT id FROM spool.job_history
WHERE tenant_id = $1 AND state = 'dead'
  AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR handler = $3)
  AND ($4::uuid IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
