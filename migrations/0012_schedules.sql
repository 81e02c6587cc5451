-- Periodic jobs (docs/architecture.md, "Schedules"): a tenant's cron schedules, and the ticks
-- the maintenance leader handled for each.
--
-- A schedule's next_fire_at is the next tick not yet handled; the leader fires the ticks due by
-- now through spool.schedule_fire, which enqueues each with the idempotency key
-- `schedule:<name>:<tick>` and moves next_fire_at on in the same transaction, guarded by the
-- next_fire_at it read: a second leader (for a moment) or a restart never fires a tick twice.

CREATE TABLE spool.schedules (
    tenant_id     bigint NOT NULL REFERENCES spool.tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    -- The cron expression (5 fields, or 6 with seconds first) and its IANA zone; validated by
    -- the host when written.
    cron          text NOT NULL CHECK (length(cron) BETWEEN 1 AND 256),
    timezone      text NOT NULL DEFAULT 'UTC',
    -- What each tick enqueues.
    handler       text NOT NULL CHECK (handler ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    payload       jsonb NOT NULL DEFAULT 'null',
    queue         text NOT NULL DEFAULT 'default',
    priority      smallint NOT NULL DEFAULT 0,
    max_attempts  integer CHECK (max_attempts > 0),
    limits        jsonb,
    -- skip: no tick fires while the previous tick's job is pending or running.
    overlap       text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'allow')),
    -- What happens to ticks missed while no node ran.
    catch_up      text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('none', 'latest', 'all')),
    enabled       boolean NOT NULL DEFAULT true,
    -- The next tick not yet handled; NULL when the expression has no tick left.
    next_fire_at  timestamptz,
    -- The last tick handled (fired or skipped), the last that fired, and its job.
    last_tick_at  timestamptz,
    last_fired_at timestamptz,
    last_job_id   uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- The leader's probe: enabled schedules by their next tick.
CREATE INDEX schedules_due ON spool.schedules (next_fire_at) WHERE enabled;

-- What became of each tick a leader handled: the newest few per schedule are kept
-- (spool.schedule_fire prunes the rest), for the API's "last runs" and the failing-schedule
-- alert.
CREATE TABLE spool.schedule_ticks (
    tenant_id   bigint NOT NULL,
    schedule    text NOT NULL,
    tick_at     timestamptz NOT NULL,
    -- enqueued: a job was made; duplicate: the key had a job already (an earlier leader's);
    -- skipped: the previous tick's job was still pending or running (overlap: skip);
    -- refused: the tenant's quota refused it.
    outcome     text NOT NULL CHECK (outcome IN ('enqueued', 'duplicate', 'skipped', 'refused')),
    job_id      uuid,
    detail      text,
    handled_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, schedule, tick_at),
    FOREIGN KEY (tenant_id, schedule) REFERENCES spool.schedules (tenant_id, name)
        ON DELETE CASCADE
);

-- The failing-schedule alert is one more built-in rule; its scope is a schedule (stored in
-- the queue column, which for this rule holds the schedule's name).
ALTER TABLE spool.alerts DROP CONSTRAINT alerts_rule_check;
ALTER TABLE spool.alerts ADD CONSTRAINT alerts_rule_check
    CHECK (rule IN ('failure_rate', 'dead_letter_growth', 'backlog_age', 'schedule_failing'));
