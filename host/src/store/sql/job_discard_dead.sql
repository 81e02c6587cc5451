-- Deletes a tenant's dead jobs by id, with the enqueue-time keys (not done-records) that
-- pointed at them, and counts them out. $1 tenant id, $2 job ids. Returns how many.
WITH gone AS (
    DELETE FROM spool.job_history
    WHERE tenant_id = $1 AND id = ANY ($2) AND state = 'dead'
    RETURNING id, queue, idempotency_key
), keys AS (
    DELETE FROM spool.idempotency i USING gone g
    WHERE i.tenant_id = $1 AND i.key = g.idempotency_key AND i.job_id = g.id
      AND i.done_at IS NULL
), counted AS (
    INSERT INTO spool.queue_count_deltas (tenant_id, queue, state, delta)
    SELECT $1, g.queue, 'dead', -count(*) FROM gone g GROUP BY g.queue
)
SELECT count(*) FROM gone
