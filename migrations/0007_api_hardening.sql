-- The API's hardening: job lists filtered by handler, queue or state walk an index rather
-- than a tenant's whole history, and handler version numbers are never given out twice.
--
-- Building these indexes locks the tables against writes while it runs (a migration runs in
-- a transaction, so not CONCURRENTLY; an index on the partitioned history is built on every
-- partition): on a large database, migrate in a quiet moment.

-- GET /v1/jobs?handler=... and ?queue=..., newest first, on the hot table and in history.
-- On the parent of the partitioned history, each index is created on every partition, and
-- on partitions created later.
CREATE INDEX jobs_by_handler ON spool.jobs (tenant_id, handler, id);
CREATE INDEX jobs_by_queue ON spool.jobs (tenant_id, queue, id);
CREATE INDEX job_history_by_handler ON spool.job_history (tenant_id, handler, id);
CREATE INDEX job_history_by_queue ON spool.job_history (tenant_id, queue, id);
-- GET /v1/jobs?state=completed|cancelled (dead jobs have job_history_dead_by_id). The hot
-- table holds at most a tenant's max_queued jobs, and its states have partial indexes.
CREATE INDEX job_history_by_state ON spool.job_history (tenant_id, state, id);

-- The highest version number each handler has had, kept when the handler is deleted: an
-- upload after a delete continues the numbering, so a job pinned to an old version never
-- runs a new component under the same number.
CREATE TABLE spool.handler_version_marks (
    tenant_id    bigint NOT NULL REFERENCES spool.tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    last_version integer NOT NULL CHECK (last_version > 0),
    PRIMARY KEY (tenant_id, name)
);

INSERT INTO spool.handler_version_marks (tenant_id, name, last_version)
SELECT tenant_id, name, max(version) FROM spool.handler_versions GROUP BY tenant_id, name;
