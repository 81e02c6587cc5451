-- The tenants with a running count or running jobs: those whose count may need reconciling.
SELECT tenant_id FROM spool.running_counts
UNION
SELECT tenant_id FROM spool.jobs WHERE state = 'running'
