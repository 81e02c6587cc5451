-- Guests list their store keys in byte order (`list-keys`). The primary key orders keys by the
-- database's collation, which is byte order only under "C": this index keeps the listing an
-- index range scan under any collation (en_US.UTF-8 on most servers).
CREATE INDEX kv_keys_bytewise ON spool.kv (tenant_id, key COLLATE "C");
