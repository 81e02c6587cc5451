-- Built-in alerts (DESIGN.md, "Observability"): the state of every alert rule per scope
-- (tenant, queue), and the webhook notification still to be delivered for it.
--
-- The host holding the "alerts" lease evaluates the rules; the state lives here so that every
-- host lists the same alerts and a new leader neither forgets a firing alert nor fires it
-- again. One row per rule and scope: the current episode if it is firing, else the last one.

CREATE TABLE spool.alerts (
    tenant_id        bigint NOT NULL REFERENCES spool.tenants (id) ON DELETE CASCADE,
    rule             text NOT NULL
                     CHECK (rule IN ('failure_rate', 'dead_letter_growth', 'backlog_age')),
    queue            text NOT NULL,
    state            text NOT NULL CHECK (state IN ('firing', 'resolved')),
    -- The rule's figure at the last evaluation while firing (at resolution once resolved),
    -- and the threshold it was compared with.
    value            double precision NOT NULL,
    threshold        double precision NOT NULL,
    description      text NOT NULL,
    fired_at         timestamptz NOT NULL,
    resolved_at      timestamptz,
    evaluated_at     timestamptz NOT NULL,
    -- The notification still to deliver ('firing' or 'resolved'); NULL when there is none.
    -- A newer transition replaces an undelivered one: receivers learn the latest state.
    notify_status    text CHECK (notify_status IN ('firing', 'resolved')),
    -- Bumped whenever a notification is queued, so that the outcome of a delivery that raced
    -- a newer notification is not recorded against the newer one.
    notify_seq       bigint NOT NULL DEFAULT 0,
    -- Delivery attempts of the current notification, when the next is due, and why the last
    -- one failed.
    notify_attempts  integer NOT NULL DEFAULT 0 CHECK (notify_attempts >= 0),
    notify_next_at   timestamptz,
    notify_error     text,
    last_notified_at timestamptz,
    PRIMARY KEY (tenant_id, rule, queue),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((notify_status IS NULL) = (notify_next_at IS NULL))
);

-- The delivery loop's probe: notifications due, oldest first.
CREATE INDEX alerts_notify_due ON spool.alerts (notify_next_at) WHERE notify_status IS NOT NULL;

-- Windows over the per-minute counters (alert evaluation, queue statistics) read recent
-- minutes of every queue; without this they scan every minute ever recorded. Folding only
-- updates the counts of a minute, never the minute, so updates stay HOT.
CREATE INDEX queue_minutes_by_minute ON spool.queue_minutes (minute);
