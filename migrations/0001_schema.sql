-- Spool's schema: tenants, handlers, the hot job table and its history, done-records, the
-- tenant key/value store, and queue statistics.
--
-- Every tenant-owned table carries tenant_id first in its primary key, so that it can be
-- distributed by tenant (Citus) with each commit staying on one node.

CREATE SCHEMA IF NOT EXISTS spool;

CREATE TYPE spool.job_state AS ENUM (
    'scheduled', 'available', 'running', 'retryable', 'completed', 'dead', 'cancelled'
);

CREATE TABLE spool.tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    -- SHA-256 of the tenant's API token; the token itself is shown once and never stored.
    token_hash  bytea UNIQUE,
    -- Per-tenant caps and defaults (fuel, timeout, memory, payload size, ...), as JSON.
    limits      jsonb NOT NULL DEFAULT '{}',
    -- The most jobs of this tenant running at once, over all workers.
    max_running integer NOT NULL DEFAULT 100 CHECK (max_running > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE spool.handlers (
    tenant_id       bigint NOT NULL REFERENCES spool.tenants (id),
    name            text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    current_version integer NOT NULL,
    -- Retry policy overrides for this handler's jobs; NULL takes the defaults.
    max_attempts    integer CHECK (max_attempts > 0),
    backoff_base_ms bigint CHECK (backoff_base_ms >= 0),
    backoff_cap_ms  bigint CHECK (backoff_cap_ms >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE spool.handler_versions (
    tenant_id  bigint NOT NULL,
    name       text NOT NULL,
    version    integer NOT NULL CHECK (version > 0),
    digest     text NOT NULL,
    size       integer NOT NULL,
    component  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version)
);

-- The hot set: jobs that have not finished. Finished jobs move to spool.job_history.
CREATE TABLE spool.jobs (
    tenant_id        bigint NOT NULL,
    id               uuid NOT NULL,
    queue            text NOT NULL,
    state            spool.job_state NOT NULL,
    priority         smallint NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    handler          text NOT NULL,
    -- The handler version current at enqueue; NULL when the handler did not exist yet (a
    -- follow-up job), resolved when the job first runs.
    handler_version  integer,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts > 0),
    backoff_base_ms  bigint NOT NULL,
    backoff_cap_ms   bigint NOT NULL,
    idempotency_key  text NOT NULL,
    payload          bytea NOT NULL,
    payload_hash     bytea NOT NULL,
    -- Limits the enqueuer asked for (fuel, timeout_ms, memory_mb); capped by the tenant's.
    limits           jsonb,
    run_lease        uuid,
    lease_expires_at timestamptz,
    worker           text,
    errors           jsonb NOT NULL DEFAULT '[]',
    logs             jsonb NOT NULL DEFAULT '[]',
    parent_id        uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (state IN ('scheduled', 'available', 'running', 'retryable')),
    CHECK ((state = 'running') = (run_lease IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (attempt >= 0 AND attempt <= max_attempts)
);

-- The claim's one index: runnable work per queue, per tenant (for fair share), in order.
CREATE INDEX jobs_available ON spool.jobs (queue, tenant_id, priority, run_at, id)
    WHERE state = 'available';
-- Small partial indexes for maintenance: due work, and running work (leases, tenant caps).
CREATE INDEX jobs_due ON spool.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX jobs_running ON spool.jobs (tenant_id, lease_expires_at) WHERE state = 'running';

-- The hot table churns: vacuum and analyze it eagerly.
ALTER TABLE spool.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);

-- Finished jobs (completed, dead, cancelled), partitioned by day so that old days are dropped
-- whole rather than deleted.
CREATE TABLE spool.job_history (
    tenant_id       bigint NOT NULL,
    id              uuid NOT NULL,
    queue           text NOT NULL,
    state           spool.job_state NOT NULL CHECK (state IN ('completed', 'dead', 'cancelled')),
    priority        smallint NOT NULL,
    run_at          timestamptz NOT NULL,
    handler         text NOT NULL,
    handler_version integer,
    attempt         integer NOT NULL,
    max_attempts    integer NOT NULL,
    backoff_base_ms bigint NOT NULL,
    backoff_cap_ms  bigint NOT NULL,
    idempotency_key text NOT NULL,
    payload         bytea NOT NULL,
    payload_hash    bytea NOT NULL,
    limits          jsonb,
    errors          jsonb NOT NULL,
    logs            jsonb NOT NULL,
    parent_id       uuid,
    created_at      timestamptz NOT NULL,
    attempted_at    timestamptz,
    result          bytea,
    duplicate       boolean NOT NULL DEFAULT false,
    finished_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id, finished_at)
) PARTITION BY RANGE (finished_at);

CREATE TABLE spool.job_history_default PARTITION OF spool.job_history DEFAULT;
CREATE INDEX job_history_dead ON spool.job_history (tenant_id, queue, finished_at)
    WHERE state = 'dead';

-- Done-records and enqueue-time idempotency, one row per (tenant, key). A row with done_at
-- set is a done-record: the job with that key committed, with that result.
CREATE TABLE spool.idempotency (
    tenant_id    bigint NOT NULL,
    key          text NOT NULL,
    job_id       uuid NOT NULL,
    payload_hash bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    result       bytea,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_done ON spool.idempotency (done_at) WHERE done_at IS NOT NULL;

-- The tenant key/value store behind the idempotency-store interface.
CREATE TABLE spool.kv (
    tenant_id  bigint NOT NULL,
    key        text NOT NULL,
    value      bytea NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Queue statistics: jobs per (tenant, queue, state), kept from counters rather than
-- count(*). Every state change appends a delta; maintenance folds deltas into the totals so
-- that no writer contends on a shared counter row.
CREATE TABLE spool.queue_counts (
    tenant_id bigint NOT NULL,
    queue     text NOT NULL,
    state     spool.job_state NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, queue, state)
);

CREATE TABLE spool.queue_count_deltas (
    tenant_id bigint NOT NULL,
    queue     text NOT NULL,
    state     spool.job_state NOT NULL,
    delta     bigint NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);

-- Jobs finished per minute, for throughput and failure rates.
CREATE TABLE spool.queue_minutes (
    tenant_id bigint NOT NULL,
    queue     text NOT NULL,
    minute    timestamptz NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    dead      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, queue, minute)
);

-- Leader election for maintenance: one row per named lease.
CREATE TABLE spool.leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
