//! Migrating the schema, whatever the role is called and whatever `search_path` the role or
//! database sets.
//!
//! Every connection Spool opens sets `search_path = public` itself (see `Store::connect`), so
//! sqlx's unqualified bookkeeping table is always `public._sqlx_migrations`, and Spool's own
//! objects are always named with their schema (`spool.`). Before that rule, a role named
//! `spool` resolved `_sqlx_migrations` through PostgreSQL's default `"$user", public` into
//! schema `spool` once that schema existed: the second migrate created an empty table there
//! and ran migration 1 again, which failed. [`repair_bookkeeping`] puts such a database right.
//!
//! The numbered migrations hold the schema. The lifecycle's functions live one per file in
//! `migrations/functions/`, each a `CREATE OR REPLACE`, and are applied after the numbered
//! migrations on every migrate ([`apply_functions`]): changing `claim` is an ordinary diff of
//! `claim.sql`. A change of a function's signature drops the old one in a numbered migration.
//! The same step writes the defaults of tenants' limits for the functions to read.

use sqlx::PgConnection;

use super::{Result, StoreError};
use crate::model::TenantLimits;

/// The bookkeeping table's name, as sqlx spells it.
const TABLE: &str = "_sqlx_migrations";

/// The schema the bookkeeping table lives in (the `search_path` every connection sets).
pub(super) const BOOKKEEPING_SCHEMA: &str = "public";

macro_rules! function {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../migrations/functions/", $name, ".sql")),
        )
    };
}

/// The lifecycle's functions, by name, as `migrations/functions/NAME.sql` defines them.
const FUNCTIONS: &[(&str, &str)] = &[
    function!("apply_writes"),
    function!("cancel"),
    function!("canonical_payload"),
    function!("claim"),
    function!("claim_room"),
    function!("complete_many"),
    function!("counter_value"),
    function!("enqueue"),
    function!("enqueue_many"),
    function!("expired"),
    function!("fail_many"),
    function!("fail_one"),
    function!("finish_jobs"),
    function!("fold_counts"),
    function!("heartbeat"),
    function!("history_partitions"),
    function!("history_retire"),
    function!("idempotency_prune"),
    function!("lease_acquire"),
    function!("oldest_available"),
    function!("release_many"),
    function!("rescue_many"),
    function!("retry_many"),
    function!("running_add"),
    function!("running_reconcile"),
    function!("schedule_due"),
    function!("schedule_fire"),
];

/// Creates or replaces every function of `migrations/functions/`, in one transaction under an
/// advisory lock (two nodes migrating at once replace them one after the other). Bodies are
/// checked when called, not when created, so the files may refer to each other in any order.
pub(super) async fn apply_functions(conn: &mut PgConnection) -> Result<()> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::raw_sql(
        "SELECT pg_advisory_xact_lock(hashtext('spool.migrate.functions')); \
         SET LOCAL check_function_bodies = off",
    )
    .execute(&mut *tx)
    .await?;
    for (name, sql) in FUNCTIONS {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migrate(format!("migrations/functions/{name}.sql: {e}")))?;
    }
    write_limit_defaults(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the defaults of tenants' limits ([`TenantLimits::DEFAULT`]) to
/// `spool.limit_defaults`, where SQL that enforces a limit a tenant has not set reads them
/// (`apply_writes`, for `max_store_bytes`): the Rust constant stays their one source.
async fn write_limit_defaults(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "INSERT INTO spool.limit_defaults (single, limits) VALUES (true, $1) \
         ON CONFLICT (single) DO UPDATE SET limits = EXCLUDED.limits \
         WHERE spool.limit_defaults.limits IS DISTINCT FROM EXCLUDED.limits",
    )
    .bind(sqlx::types::Json(TenantLimits::DEFAULT))
    .execute(conn)
    .await?;
    Ok(())
}

/// What one copy of the bookkeeping table holds: `(version, checksum)` per row.
type Record = Vec<(i64, Vec<u8>)>;

/// Folds copies of Spool's bookkeeping table found outside `public` into `public`, and drops
/// them. A copy is Spool's when each of its rows names one of `migrations` with the same
/// checksum, or when it is empty and sits in schema `spool` (what the old resolution left
/// behind); tables of other applications (or that this role may not read) are left alone. Runs under a transaction-scoped
/// advisory lock, so concurrent starts repair once.
pub(super) async fn repair_bookkeeping(
    conn: &mut PgConnection,
    migrations: &[(i64, Vec<u8>)],
) -> Result<Vec<String>> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('spool.migrate.bookkeeping'))")
        .execute(&mut *tx)
        .await?;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND n.nspname <> $2 \
           AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') \
         ORDER BY n.nspname",
    )
    .bind(TABLE)
    .bind(BOOKKEEPING_SCHEMA)
    .fetch_all(&mut *tx)
    .await?;
    let mut repaired = Vec::new();
    for schema in schemas {
        let copy = qualified(&schema);
        let rows = read_record(&mut tx, &copy).await?;
        let ours = rows.iter().all(|row| migrations.contains(row));
        if !ours || (rows.is_empty() && schema != "spool") {
            continue;
        }
        let main = qualified(BOOKKEEPING_SCHEMA);
        let main_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&main)
            .fetch_one(&mut *tx)
            .await?;
        if main_exists {
            let main_rows = read_record(&mut tx, &main).await?;
            if let Some(clash) = rows
                .iter()
                .find(|(v, sum)| main_rows.iter().any(|(mv, ms)| mv == v && ms != sum))
            {
                return Err(StoreError::Migrate(format!(
                    "Spool's migration record exists twice and the copies disagree on \
                     migration {}: {main} and {copy}. Keep the copy that matches the schema \
                     (usually {main}) and drop the other with `DROP TABLE {copy}`, then \
                     migrate again",
                    clash.0
                )));
            }
            // Rows the main copy lacks are carried over; then the stray copy goes.
            sqlx::raw_sql(&format!(
                "INSERT INTO {main} SELECT * FROM {copy} ON CONFLICT (version) DO NOTHING; \
                 DROP TABLE {copy}"
            ))
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::raw_sql(&format!(
                "ALTER TABLE {copy} SET SCHEMA {}",
                quote_ident(BOOKKEEPING_SCHEMA)
            ))
            .execute(&mut *tx)
            .await?;
        }
        repaired.push(copy);
    }
    tx.commit().await?;
    Ok(repaired)
}

async fn read_record(conn: &mut PgConnection, table: &str) -> Result<Record> {
    Ok(sqlx::query_as(&format!(
        "SELECT version, checksum FROM {table} ORDER BY version"
    ))
    .fetch_all(conn)
    .await?)
}

/// `schema._sqlx_migrations`, quoted. The schema name comes from the catalog, never from input.
fn qualified(schema: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(TABLE))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_file_is_applied() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/functions");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .map(|f| f.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let listed: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            files, listed,
            "list each file of migrations/functions in FUNCTIONS"
        );
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(qualified("spool"), "\"spool\".\"_sqlx_migrations\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
