//! All SQL: PostgreSQL through sqlx. No sqlx type leaves this module.
//!
//! Each function runs one statement (most call one of the functions the migrations define,
//! where the lifecycle's SQL lives) and is named noun-first: `job_claim`, `job_complete_many`.
//! Every function that moves time-dependent state takes `now: Option<DateTime<Utc>>`: `None`
//! is the database's clock, `Some` lets tests drive time.

mod alerts;
mod bench;
mod handlers;
mod jobs;
mod kv;
mod maintenance;
mod migrate;
mod queues;
mod tenants;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use alerts::{Alert, AlertFigures, AlertKey, AlertState, AlertValue};
pub use handlers::{HandlerInfo, HandlerVersion, VersionInfo};
pub use jobs::{Completion, CompletionStatus, Failure, JobFilter};
pub use kv::KvBackend;
pub use maintenance::{ExpiredJob, QueueCount};
pub use queues::QueueStats;
pub use tenants::{Tenant, TokenInfo};

/// The Postgres channel workers listen on; the payload is the queue name.
pub const NOTIFY_CHANNEL: &str = "spool_jobs";

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, or the connection broke.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (a tenant name already taken, say).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// Migrating the schema failed.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// Any other database error: a bug or an operator problem.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Returns whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("23505") => StoreError::Conflict(db.message().to_string()),
                // admin_shutdown, crash_shutdown, cannot_connect_now, connection failures.
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    StoreError::Unavailable(db.message().to_string())
                }
                _ => StoreError::Database(db.message().to_string()),
            },
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// The result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on Spool's database: a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Connections that commit without waiting for the WAL flush, for the claim and the
    /// heartbeat only: losing one of those in a crash is harmless (the job is available again,
    /// or its lease is shorter; the attempt's completion is fenced on run_lease and written
    /// through `pool`, durably), and not waiting takes a disk flush off every claim.
    lease_pool: PgPool,
    kv_usage: kv::UsageCache,
}

/// Connections for claims and heartbeats: the worker's producer and heartbeat use one each.
const LEASE_POOL_CONNECTIONS: u32 = 2;

impl Store {
    /// Connects to `url` with a pool of at most `max_connections` (plus two for claims and
    /// heartbeats).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Unavailable(e.to_string()))?;
        Store::connect_with(options.application_name("spool"), max_connections).await
    }

    /// The settings every connection starts with, whatever the role or database sets: Spool
    /// names its own objects with their schema (`spool.`), and sqlx's bookkeeping table is
    /// resolved in `public` (a role named `spool` would otherwise find it in schema `spool`).
    fn session_options(options: PgConnectOptions) -> PgConnectOptions {
        options.options([("search_path", migrate::BOOKKEEPING_SCHEMA)])
    }

    /// Connects with `options`: the main pool and the lease pool.
    async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Store> {
        let options = Store::session_options(options);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let lease_pool = PgPoolOptions::new()
            .max_connections(LEASE_POOL_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        Ok(Store {
            pool,
            lease_pool,
            kv_usage: kv::UsageCache::default(),
        })
    }

    /// Applies every numbered migration that has not been applied yet, then (re)creates the
    /// lifecycle's functions. A database whose bookkeeping was split by an older Spool (a role
    /// named `spool`) is repaired first.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = sqlx::migrate!("../migrations");
        let known: Vec<(i64, Vec<u8>)> = migrator
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect();
        let mut conn = self.pool.acquire().await?;
        for table in migrate::repair_bookkeeping(&mut conn, &known).await? {
            tracing::warn!(%table, "folded a stray copy of Spool's migration record into public");
        }
        migrator
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        migrate::apply_functions(&mut conn).await
    }

    /// Returns whether the database answers and every migration is applied.
    pub async fn ready(&self) -> Result<bool> {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM public._sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(applied as usize >= sqlx::migrate!("../migrations").migrations.len())
    }

    /// Returns connections in use and idle, for metrics.
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Returns the database URL's pool for listening (LISTEN needs a dedicated connection).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one administrative statement (CREATE DATABASE, say) that takes no parameters.
    /// For tests and tooling; never pass it text from a request.
    #[doc(hidden)]
    pub async fn admin_execute(&self, statement: &str) -> Result<()> {
        sqlx::raw_sql(statement).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.lease_pool.close().await;
        self.pool.close().await;
    }
}

/// Converts a size or count that fits in Postgres's integer types.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
