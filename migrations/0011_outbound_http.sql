-- Outbound HTTP (issue 11).
--
-- `spool.claim` returns the tenant's allow-list beside its limits, so that an attempt gets
-- both from the claim. A new result column is a new signature: the old function goes here and
-- migrations/functions/claim.sql creates the new one after the numbered migrations.
DROP FUNCTION IF EXISTS spool.claim(text, integer, text, bigint, timestamptz);
-- The signature 0013 introduces, for a database that had it before this migration ran.
DROP FUNCTION IF EXISTS spool.claim(text, integer, text, bigint, timestamptz, bigint[], integer[]);

-- Entries are `scheme://host[:port]` now. Before, they were bare host names, stored but never
-- used; `api.example.com` becomes `https://api.example.com`, in the same order. An entry that
-- still does not parse allows nothing (the worker skips it) until the tenant is patched.
UPDATE spool.tenants t
SET allowed_hosts = ARRAY(
    SELECT CASE WHEN h.entry LIKE '%://%' THEN h.entry ELSE 'https://' || h.entry END
    FROM unnest(t.allowed_hosts) WITH ORDINALITY AS h(entry, n)
    ORDER BY h.n)
WHERE EXISTS (SELECT 1 FROM unnest(t.allowed_hosts) AS h(entry) WHERE h.entry NOT LIKE '%://%');
