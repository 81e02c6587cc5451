-- Fewer index entries written per job on the path every job takes (0007 added these two for
-- job lists). The hot table holds a tenant's pending jobs only, at most its max_queued
-- (100,000 by default): a list filtered by handler or queue walks the tenant's primary key
-- there, a bounded scan, rather than every job's insert and each of its state changes writing
-- two more index entries. History, which grows without such a bound, keeps its indexes.
DROP INDEX spool.jobs_by_handler;
DROP INDEX spool.jobs_by_queue;
