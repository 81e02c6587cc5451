//! Why a cluster could not be started, reused or stopped.

use std::path::PathBuf;

/// Why a private cluster could not be started, reused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    /// The configuration cannot describe a cluster (empty or unusable path, port 0).
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(String),
    /// No directory holds all of `initdb`, `pg_ctl` and `postgres`.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in PATH and {}; \
         install the PostgreSQL server (e.g. `apt-get install postgresql`) or set DATABASE_URL",
        searched.join(", ")
    )]
    BinariesNotFound {
        /// The directories searched after `PATH`.
        searched: Vec<String>,
    },
    /// The data directory holds a cluster of a major version that is not installed.
    #[error("{pgdata} holds a PostgreSQL {wanted} cluster but only {found:?} are installed")]
    VersionMismatch {
        /// The cluster's data directory.
        pgdata: PathBuf,
        /// The major version in its `PG_VERSION`.
        wanted: String,
        /// The binary directories found, with their versions.
        found: Vec<String>,
    },
    /// There is no unprivileged OS account to run the server as, or no way to switch to it.
    #[error("cannot run PostgreSQL unprivileged: {0}")]
    NoUser(String),
    /// The server's OS user cannot reach the data directory.
    #[error(
        "OS user {user} cannot access {path}: every parent directory must be searchable by it \
         (e.g. `chmod o+x` on the parent)"
    )]
    NotAccessible {
        /// The data directory.
        path: PathBuf,
        /// The OS user.
        user: String,
    },
    /// A file or directory operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (`initdb`, `useradd`, `pg_ctl stop`, ...) failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and output.
        output: String,
    },
    /// The server did not start, or a running one did not become ready, within the timeout.
    #[error("PostgreSQL in {pgdata} did not start on port {port}: {reason}\nlog tail:\n{log_tail}")]
    Start {
        /// The cluster's data directory.
        pgdata: PathBuf,
        /// The port it was to listen on.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The last lines of the server log.
        log_tail: String,
    },
}

pub(crate) type Result<T, E = DevDbError> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> DevDbError {
    move |source| DevDbError::Io { context, source }
}
