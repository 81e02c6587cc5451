-- Maintenance: the idempotency prune walks indexes (done-records by done_at, which
-- idempotency_done already covers; keys of jobs that never completed by created_at, which
-- idempotency_unfinished covers) instead of scanning the table once per batch.
--
-- Building the index locks spool.idempotency against writes while it runs (a migration runs in
-- a transaction, so not CONCURRENTLY): on a large database, migrate in a quiet moment.

CREATE INDEX idempotency_unfinished ON spool.idempotency (created_at) WHERE done_at IS NULL;

-- The store quota, enforced when a commit writes: each tenant's store bytes (keys plus values),
-- kept by spool.apply_writes under a lock of the tenant's row, which also serializes the
-- tenant's commits that write to its store. A tenant gets its row with its first write.
CREATE TABLE spool.kv_usage (
    tenant_id bigint PRIMARY KEY REFERENCES spool.tenants (id) ON DELETE CASCADE,
    bytes     bigint NOT NULL CHECK (bytes >= 0)
);

-- What each tenant's store holds now. A commit running an older apply_writes while this
-- migrates is not counted: on a live upgrade the figure can be off by what such commits wrote.
INSERT INTO spool.kv_usage (tenant_id, bytes)
SELECT t.id, coalesce(sum(octet_length(k.key) + octet_length(k.value)), 0)
FROM spool.tenants t LEFT JOIN spool.kv k ON k.tenant_id = t.id
GROUP BY t.id;

-- The defaults of tenants' limits, for SQL that enforces a limit a tenant has not set: one
-- row, written by every `spool migrate` from the Rust constant (TenantLimits::DEFAULT in
-- host/src/model/tenant.rs), never by hand.
CREATE TABLE spool.limit_defaults (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    limits jsonb NOT NULL
);
