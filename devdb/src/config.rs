//! What a private cluster looks like, and the defaults.

use std::path::PathBuf;
use std::time::Duration;

/// The superuser role that `initdb` creates, and the user in [`Cluster::url`].
pub const SUPERUSER: &str = "spool";
/// The OS account the server runs as when Spool runs as root; created when missing.
pub const OS_USER_DEFAULT: &str = "spool-pg";
/// How long [`ClusterConfig::timeout`] waits for a server to start or stop by default.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// What a private cluster looks like.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Spool's directory for the cluster (see the module docs for its layout); created when
    /// missing. Every parent directory must be searchable by the server's OS user.
    pub data_dir: PathBuf,
    /// The TCP port on `127.0.0.1`. `None` (the default) reuses the port of the last start
    /// when it is still free, and picks a free one otherwise. A server that is already
    /// running keeps the port it has.
    pub port: Option<u16>,
    /// Trades durability for speed (`fsync`, `synchronous_commit` and `full_page_writes` off,
    /// more connections): for tests, never for data you keep. Default `false`.
    pub fast: bool,
    /// The OS account to run the server as when running as root. `None` (the default) means
    /// [`OS_USER_DEFAULT`], created when missing, or `nobody`. Ignored when not root: the
    /// server then runs as the current user.
    pub os_user: Option<String>,
    /// How long to wait for the server to start or stop. Default [`TIMEOUT_DEFAULT`].
    pub timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::new(),
            port: None,
            fast: false,
            os_user: None,
            timeout: TIMEOUT_DEFAULT,
        }
    }
}

impl ClusterConfig {
    /// Returns the default configuration for a cluster under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}
