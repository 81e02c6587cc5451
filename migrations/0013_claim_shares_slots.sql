-- spool.claim learns what the claiming worker already holds per tenant (its slots go first to
-- the tenants holding fewest): the new signature is created by migrations/functions/claim.sql,
-- so the old one goes.
DROP FUNCTION IF EXISTS spool.claim(text, integer, text, bigint, timestamptz);
