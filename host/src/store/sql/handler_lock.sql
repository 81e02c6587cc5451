-- Serialises uploads and deletes of one handler ($1 tenant, $2 name) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended($2, $1))
