-- spool.claim learns the most slots of the claiming worker one tenant may hold
-- (p_most_per_tenant): the new signature is created by migrations/functions/claim.sql, so the
-- old one goes.
DROP FUNCTION IF EXISTS spool.claim(text, integer, text, bigint, timestamptz, bigint[], integer[]);
