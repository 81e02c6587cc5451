//! A private PostgreSQL cluster for development and tests.
//!
//! Spool never assumes that a server is already running: where `DATABASE_URL` is unset, the
//! dev command and the tests start a cluster of their own from the installed server binaries
//! (`initdb`, `pg_ctl`, `postgres`) under a directory Spool owns. Its layout is shared with
//! `scripts/with-postgres.sh`, so either can start a cluster the other reuses:
//!
//! ```text
//! DATA_DIR/data/          PGDATA (initdb; postgresql.conf includes spool.conf)
//! DATA_DIR/data/spool.conf  port, addresses and test settings, rewritten on every start
//! DATA_DIR/socket/        the unix socket directory
//! DATA_DIR/postgres.log   the server log
//! DATA_DIR/start.lock     held while a cluster is started or stopped
//! DATA_DIR/users.lock     held (shared) by every user of the running cluster
//! DATA_DIR/spool-started  present while a server started by Spool's tooling runs
//! ```
//!
//! The server listens on the socket and on `127.0.0.1`, trusts every local connection, and
//! has one superuser, [`SUPERUSER`]. PostgreSQL refuses to run as root, so when Spool runs as
//! root the server runs as [`OS_USER_DEFAULT`] (created on first use, `nobody` failing that).
//!
//! All calls block on child processes; call them from async code through
//! `tokio::task::spawn_blocking`.
//!
//! The `spool-devdb` binary runs a command against such a cluster (`spool-devdb run -- cargo
//! test`), for `scripts/with-postgres.sh` and `make test`.

mod binaries;
mod cluster;
mod config;
mod error;
mod locks;
mod os_user;
mod postmaster;
mod process;

pub use cluster::Cluster;
pub use config::{ClusterConfig, OS_USER_DEFAULT, SUPERUSER, TIMEOUT_DEFAULT};
pub use error::DevDbError;
