-- Keys of one tenant with a prefix, in byte order, after a key. $1 tenant id, $2 prefix,
-- $3 after (or NULL), $4 limit. The range bounds keep this an index scan.
SELECT key FROM spool.kv
WHERE tenant_id = $1
  AND key COLLATE "C" >= $2
  AND left(key, length($2)) = $2
  AND ($3::text IS NULL OR key COLLATE "C" > $3)
ORDER BY key COLLATE "C"
LIMIT $4
