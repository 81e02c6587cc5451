//! What `spool bench` needs besides the job lifecycle, apart from the store's own surface
//! ([`Store::bench`]): a throwaway database of its own on the server it is pointed at, the
//! server's version, and enqueue→start latency read back from history.

use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use super::{Result, Store, StoreError};

/// `spool bench`'s calls on a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Bench<'a>(&'a Store);

/// Enqueue→start latency of a set of finished jobs: from `created_at` (the enqueueing
/// transaction's clock) to `attempted_at` (the claiming transaction's clock) of their last
/// attempt, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct StartLatency {
    /// How many of the jobs asked about were found finished in history.
    #[sqlx(try_from = "i64")]
    pub jobs: u64,
    /// The median.
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// Returns whether `name` is a database name `spool bench` may create and drop: lower-case
/// letters, digits and underscores, starting with `spool_bench_`. DDL cannot take its
/// identifiers as parameters, so only such names are ever spliced into a statement.
fn is_bench_database(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with("spool_bench_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_bench_database(name: &str) -> Result<()> {
    if is_bench_database(name) {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "{name:?} is not a bench database name (spool_bench_[a-z0-9_]*)"
        )))
    }
}

impl Store {
    /// Connects to database `database` on the server that `url` names (the database in `url`
    /// itself is ignored), with a pool of at most `max_connections`.
    pub async fn connect_database(
        url: &str,
        database: &str,
        max_connections: u32,
    ) -> Result<Store> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Unavailable(e.to_string()))?;
        Store::connect_with(
            options.database(database).application_name("spool-bench"),
            max_connections,
            max_connections,
        )
        .await
    }

    /// Returns what `spool bench` needs besides the job lifecycle.
    pub fn bench(&self) -> Bench<'_> {
        Bench(self)
    }
}

impl Bench<'_> {
    /// Creates the empty database `name`, which must look like `spool_bench_…`.
    pub async fn database_create(&self, name: &str) -> Result<()> {
        check_bench_database(name)?;
        // The name was checked above: it needs no quoting beyond the double quotes.
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    /// Drops the database `name` (which must look like `spool_bench_…`) if it exists,
    /// disconnecting whoever is still connected to it.
    pub async fn database_drop(&self, name: &str) -> Result<()> {
        check_bench_database(name)?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    /// Returns the server's version, e.g. `15.20 (Debian 15.20-0+deb12u1)`.
    pub async fn server_version(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT current_setting('server_version')")
                .fetch_one(&self.0.pool)
                .await?,
        )
    }

    /// Returns the enqueue→start latency of those of `ids` (a tenant's jobs) that have
    /// finished, with the percentiles computed by the database.
    pub async fn job_start_latency(&self, tenant_id: i64, ids: &[Uuid]) -> Result<StartLatency> {
        Ok(sqlx::query_as(include_str!("sql/bench_start_latency.sql"))
            .bind(tenant_id)
            .bind(ids)
            .fetch_one(&self.0.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bench_names_may_be_created_or_dropped() {
        assert!(is_bench_database("spool_bench_0a1b2c3d"));
        assert!(!is_bench_database("postgres"));
        assert!(!is_bench_database(
            "spool_bench_x\"; DROP DATABASE postgres; --"
        ));
        assert!(!is_bench_database("spool_bench_UPPER"));
        assert!(!is_bench_database(&format!(
            "spool_bench_{}",
            "a".repeat(60)
        )));
    }
}
