-- Records the latest figures of alerts that stay firing; resolved alerts keep theirs.
UPDATE spool.alerts AS a
SET value = u.value, threshold = u.threshold, description = u.description,
    evaluated_at = coalesce($7::timestamptz, now())
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[])
    AS u(tenant_id, rule, queue, value, threshold, description)
WHERE a.tenant_id = u.tenant_id AND a.rule = u.rule AND a.queue = u.queue
  AND a.state = 'firing'
