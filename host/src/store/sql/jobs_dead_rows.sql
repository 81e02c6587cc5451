-- Row versions the hot table's updates and deletes left dead since it was last vacuumed, as
-- the server's statistics count them (0 when it has none yet).
SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables
                 WHERE schemaname = 'spool' AND relname = 'jobs'), 0)::bigint
