-- How many jobs each tenant runs, for the claim's max_running check, kept as a counter instead
-- of counted from spool.jobs on every claim: that count walked every index entry a finished
-- job left in jobs_running until vacuum removed it (tens of thousands in a long burn-down).
--
-- A tenant's count is the sum of its rows. Claims add to stripe 0 (a tenant's claims queue
-- behind its claim lock anyway); whatever ends a running attempt (completion, failure,
-- rescue, a lost store race) subtracts in a stripe chosen by its connection (1..16), so that
-- group commits of different workers do not queue behind one row. Rows are made on first use.
CREATE TABLE spool.running_counts (
    tenant_id bigint NOT NULL REFERENCES spool.tenants (id) ON DELETE CASCADE,
    stripe    smallint NOT NULL CHECK (stripe BETWEEN 0 AND 16),
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, stripe)
) WITH (fillfactor = 50);

-- Jobs already running when this migration runs. Workers of an earlier version that go on
-- running beside this one do not keep the counter: stop them before migrating.
INSERT INTO spool.running_counts (tenant_id, stripe, n)
SELECT tenant_id, 0, count(*) FROM spool.jobs WHERE state = 'running' GROUP BY tenant_id;
