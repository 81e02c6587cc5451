-- Maintenance: the idempotency prune walks indexes (done-records by done_at, which
-- idempotency_done already covers; keys of jobs that never completed by created_at, which
-- idempotency_unfinished covers) instead of scanning the table once per batch.
--
-- Building the index locks spool.idempotency against writes while it runs (a migration runs in
-- a transaction, so not CONCURRENTLY): on a large database, migrate in a quiet moment.

CREATE INDEX idempotency_unfinished ON spool.idempotency (created_at) WHERE done_at IS NULL;
