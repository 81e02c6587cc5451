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
mod schedules;
mod tenants;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::fair::FairShare;

pub use alerts::{Alert, AlertFigures, AlertKey, AlertState, AlertValue};
pub use bench::{Bench, StartLatency};
pub use handlers::{HANDLER_VERSIONS_KEPT_MIN, HandlerInfo, HandlerVersion, VersionInfo};
pub use jobs::{Completion, CompletionStatus, Failure, JobFilter, SlotShare};
pub use kv::KvBackend;
pub use maintenance::{ExpiredJob, QueueCount};
pub use queues::QueueStats;
pub use schedules::{
    DueSchedule, FiredTick, Schedule, ScheduleFailures, ScheduleSpec, ScheduleTick, TickFiring,
};
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
    /// The database refused a value (SQLSTATE class 22, a data exception: text with a NUL,
    /// a timestamp out of range, a number that overflows): the same call fails the same way
    /// again, and a caller that passed the value on from a request should answer 422.
    #[error("invalid value: {0}")]
    InvalidValue(String),
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
                // admin_shutdown, crash_shutdown, cannot_connect_now, connection failures; and
                // a statement cancelled (a statement timeout) or a lock not had in time (a
                // lock timeout): the database is busy, and the same call may pass later.
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("57P")
                        || code == "57014"
                        || code == "55P03" =>
                {
                    StoreError::Unavailable(db.message().to_string())
                }
                Some(code) if code.starts_with("22") => {
                    StoreError::InvalidValue(db.message().to_string())
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
///
/// Two pools reach the same database: the unbounded one every call uses (the worker's group
/// commit above all, which must not be cut short), and a bounded one whose sessions run each
/// statement under [`STATEMENT_TIMEOUT`] and wait at most [`LOCK_TIMEOUT`] for a lock, for
/// what answers requests or runs in the background ([`Store::bounded`]).
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool this handle's calls use: the unbounded one, or the bounded one for a handle
    /// from [`Store::bounded`].
    pool: PgPool,
    /// The unbounded pool, for migrations whatever the handle.
    unbounded: PgPool,
    /// The bounded pool (opened lazily: a process that never asks for it opens nothing).
    bounded: PgPool,
    /// Connections that commit without waiting for the WAL flush, for the claim and the
    /// heartbeat only: losing one of those in a crash is harmless (the job is available again,
    /// or its lease is shorter; the attempt's completion is fenced on run_lease and written
    /// through `pool`, durably), and not waiting takes a disk flush off every claim.
    lease_pool: PgPool,
    /// Connections for guests' store reads (`get`, `list-keys`), apart from the pools that
    /// claim and commit, so that one tenant's read loop cannot starve the node; each
    /// statement is cut at [`GUEST_READ_TIMEOUT`].
    guest_reads: PgPool,
    /// Turns on `guest_reads`, shared fairly between tenants (`kv.rs`).
    guest_read_share: Arc<FairShare>,
    kv_usage: kv::UsageCache,
}

/// Connections for claims and heartbeats: the worker's producer and heartbeat use one each.
const LEASE_POOL_CONNECTIONS: u32 = 2;

/// Connections for guests' store reads, per process.
pub const GUEST_READ_CONNECTIONS: u32 = 4;

/// How long one guest store read may run.
pub const GUEST_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one statement of a [`Store::bounded`] handle may run before PostgreSQL cancels
/// it: no API request or maintenance pass holds a connection (or the locks it took) longer.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement of a [`Store::bounded`] handle waits for a lock before it fails: a
/// request never queues behind (and in front of) the group commit for long.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Connects to `url` with a pool of at most `max_connections` (plus two for claims and
    /// heartbeats), and a bounded pool of as many more, opened as [`Store::bounded`] handles
    /// use it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        Store::connect_split(url, max_connections, max_connections).await
    }

    /// Connects to `url` with at most `unbounded` connections for the unbounded pool and
    /// `bounded` for the bounded one (plus two for claims and heartbeats): for a process that
    /// runs the API and a worker on one connection budget.
    pub async fn connect_split(url: &str, unbounded: u32, bounded: u32) -> Result<Store> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Unavailable(e.to_string()))?;
        Store::connect_with(options.application_name("spool"), unbounded, bounded.max(1)).await
    }

    /// Returns a handle on the same database whose statements are bounded: each is cancelled
    /// after [`STATEMENT_TIMEOUT`] and waits at most [`LOCK_TIMEOUT`] for a lock (PostgreSQL
    /// answers 57014 and 55P03, which come back as [`StoreError::Unavailable`]). For the API and
    /// maintenance; never for the worker's group commit.
    pub fn bounded(&self) -> Store {
        Store {
            pool: self.bounded.clone(),
            ..self.clone()
        }
    }

    /// The settings every connection starts with, whatever the role or database sets: Spool
    /// names its own objects with their schema (`spool.`), and sqlx's bookkeeping table is
    /// resolved in `public` (a role named `spool` would otherwise find it in schema `spool`).
    fn session_options(options: PgConnectOptions) -> PgConnectOptions {
        options.options([("search_path", migrate::BOOKKEEPING_SCHEMA)])
    }

    /// Connects with `options`: the main pool, the bounded pool and the lease pool.
    async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
        bounded_connections: u32,
    ) -> Result<Store> {
        let options = Store::session_options(options);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        // Settings are added to the search_path the options carry already, not put in its
        // place. PostgreSQL reads plain integers as milliseconds.
        let bounded = PgPoolOptions::new()
            .max_connections(bounded_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.clone().options([
                (
                    "statement_timeout",
                    STATEMENT_TIMEOUT.as_millis().to_string(),
                ),
                ("lock_timeout", LOCK_TIMEOUT.as_millis().to_string()),
            ]));
        let guest_reads = PgPoolOptions::new()
            .max_connections(GUEST_READ_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone().options([(
                "statement_timeout",
                GUEST_READ_TIMEOUT.as_millis().to_string(),
            )]));
        let lease_pool = PgPoolOptions::new()
            .max_connections(LEASE_POOL_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        Ok(Store {
            unbounded: pool.clone(),
            pool,
            bounded,
            lease_pool,
            guest_reads,
            guest_read_share: FairShare::new(GUEST_READ_CONNECTIONS as usize),
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
        // Never under the bounded pool's timeouts: building an index can take a while.
        let mut conn = self.unbounded.acquire().await?;
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
        self.guest_reads.close().await;
        self.bounded.close().await;
        self.unbounded.close().await;
    }
}

/// Converts a size or count that fits in Postgres's integer types.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
