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

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The superuser role that `initdb` creates, and the user in [`Cluster::url`].
pub const SUPERUSER: &str = "spool";
/// The OS account the server runs as when Spool runs as root; created when missing.
pub const OS_USER_DEFAULT: &str = "spool-pg";
/// How long [`ClusterConfig::timeout`] waits for a server to start or stop by default.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Where the server binaries are looked for after `PATH`; `*` is the major version.
const BIN_DIR_PATTERNS: [&str; 3] = [
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
];
/// The longest unix socket path the kernel accepts (`sun_path` less its NUL).
const SOCKET_PATH_MAX: usize = 107;

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

type Result<T, E = DevDbError> = std::result::Result<T, E>;

/// A running private PostgreSQL server.
///
/// Dropping a handle stops the server when the server was started by Spool's tooling and no
/// other handle or `with-postgres.sh` run still uses it; a server started by hand is left
/// running. [`Cluster::stop`] always stops it.
#[derive(Debug)]
pub struct Cluster {
    bins: Binaries,
    user: OsUser,
    root: PathBuf,
    socket_dir: Option<PathBuf>,
    port: u16,
    fast: bool,
    timeout: Duration,
    started_here: bool,
    running: bool,
    /// Shared lock on `users.lock` while this handle uses the server.
    users_lock: Option<File>,
}

impl Cluster {
    /// Starts the cluster described by `config`, creating it on first use, or connects to
    /// its server when that is already running; a stale `postmaster.pid` left by a crash is
    /// cleared. Blocks until the server accepts connections.
    pub fn start(config: ClusterConfig) -> Result<Self> {
        if config.data_dir.as_os_str().is_empty() {
            return Err(DevDbError::InvalidConfig("data_dir is empty".into()));
        }
        if config.port == Some(0) {
            return Err(DevDbError::InvalidConfig(
                "port 0; use None for any port".into(),
            ));
        }
        let root = std::path::absolute(&config.data_dir)
            .map_err(io(format!("resolving {}", config.data_dir.display())))?;
        if root.to_str().is_none_or(|s| s.contains(['\'', '"', '\n'])) {
            return Err(DevDbError::InvalidConfig(format!(
                "{} is not UTF-8 or contains quotes",
                root.display()
            )));
        }
        let user = OsUser::resolve(config.os_user.as_deref())?;
        fs::create_dir_all(&root).map_err(io(format!("creating {}", root.display())))?;
        user.chown(&root)?;
        user.check_access(&root)?;
        let socket_dir = root.join("socket");
        // Postgres cannot bind a socket path longer than `sun_path`; TCP alone still works.
        let socket_dir = (socket_dir.as_os_str().len() + "/.s.PGSQL.65535".len()
            <= SOCKET_PATH_MAX)
            .then_some(socket_dir);
        if let Some(dir) = &socket_dir {
            fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            user.chown(dir)?;
        }

        // Lock order, here and in with-postgres.sh: users.lock (shared) before start.lock.
        let users_lock = locked(lock_file(&root.join("users.lock"))?, File::lock_shared)?;
        let _start_lock = locked(lock_file(&root.join("start.lock"))?, File::lock)?;
        let pgdata = root.join("data");
        let version = fs::read_to_string(pgdata.join("PG_VERSION")).ok();
        let bins = Binaries::find(version.as_deref().map(str::trim), &pgdata)?;
        let mut cluster = Self {
            bins,
            user,
            root,
            socket_dir,
            port: 0,
            fast: config.fast,
            timeout: config.timeout,
            started_here: false,
            running: false,
            users_lock: None,
        };
        if version.is_none() {
            cluster.initdb()?;
        } else {
            cluster.user.chown_tree(&pgdata)?;
        }
        match PidFile::read_live(&pgdata) {
            Some(pid_file) => {
                cluster.port = pid_file.port;
                cluster.wait_ready()?;
            }
            None => {
                cluster.clear_stale()?;
                cluster.start_server(config.port)?;
            }
        }
        cluster.running = true;
        cluster.users_lock = Some(users_lock);
        Ok(cluster)
    }

    /// Returns the superuser URL of the `postgres` database over TCP,
    /// `postgres://spool@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Returns the superuser URL of `database` over TCP.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Returns the TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the unix socket directory, or `None` when its path would be too long for a
    /// socket and the server listens on TCP only.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// Returns Spool's directory for the cluster (`ClusterConfig::data_dir`, made absolute).
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// Returns the server log file.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Returns the directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bins.dir
    }

    /// Returns whether this handle started the server (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server (`pg_ctl stop -m fast`), whoever started it; stopping a stopped
    /// server does nothing.
    pub fn stop(&mut self) -> Result<()> {
        let _start_lock = locked(lock_file(&self.root.join("start.lock"))?, File::lock)?;
        self.stop_server()
    }

    /// Stops the server and starts it again on the same port, as a database outage would.
    pub fn restart(&mut self) -> Result<()> {
        let _start_lock = locked(lock_file(&self.root.join("start.lock"))?, File::lock)?;
        self.stop_server()?;
        self.start_server(Some(self.port))?;
        self.running = true;
        Ok(())
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("data")
    }

    fn initdb(&self) -> Result<()> {
        let pgdata = self.pgdata();
        let mut cmd = self.user.command(&self.bins.dir.join("initdb"));
        cmd.arg("-D").arg(&pgdata);
        cmd.args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]);
        if self.fast {
            cmd.arg("--no-sync");
        }
        run(cmd.current_dir(&self.root))?;
        let conf = pgdata.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| {
                f.write_all(b"\n# Spool: per-start settings\ninclude_if_exists = 'spool.conf'\n")
            })
            .map_err(io(format!("appending to {}", conf.display())))
    }

    /// Removes what a server that died without cleaning up leaves behind.
    fn clear_stale(&self) -> Result<()> {
        let mut stale = vec![self.pgdata().join("postmaster.pid")];
        if let Some(dir) = &self.socket_dir {
            let entries = fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
            stale.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".s.PGSQL."))
            }));
        }
        for path in stale {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(io(format!("removing {}", path.display()))(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes `spool.conf` and runs `pg_ctl start`, retrying on another free port when an
    /// automatically chosen one was taken in the meantime.
    fn start_server(&mut self, port: Option<u16>) -> Result<()> {
        let conf_path = self.pgdata().join("spool.conf");
        let previous = fs::read_to_string(&conf_path).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("port = ")?.trim().parse::<u16>().ok())
        });
        let log = self.log_file();
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.port = match (port, previous) {
                (Some(port), _) => port,
                (None, Some(prev)) if attempts == 1 && port_is_free(prev) => prev,
                (None, _) => free_port()?,
            };
            fs::write(&conf_path, self.conf())
                .map_err(io(format!("writing {}", conf_path.display())))?;
            self.user.chown(&conf_path)?;
            let log_start = fs::metadata(&log).map_or(0, |m| m.len());
            let mut cmd = self.user.command(&self.bins.dir.join("pg_ctl"));
            cmd.arg("start")
                .arg("-D")
                .arg(self.pgdata())
                .arg("-l")
                .arg(&log);
            cmd.args(["-w", "-s", "-t", &self.timeout.as_secs().max(1).to_string()]);
            let Err(e) = run(cmd.current_dir(&self.root).env_remove("PGPORT")) else {
                break;
            };
            let log_tail = log_tail(&log, log_start);
            if port.is_none() && attempts < 5 && log_tail.contains("could not bind") {
                continue;
            }
            return Err(DevDbError::Start {
                pgdata: self.pgdata(),
                port: self.port,
                reason: e.to_string(),
                log_tail,
            });
        }
        self.started_here = true;
        let marker = self.root.join("spool-started");
        fs::write(&marker, b"").map_err(io(format!("writing {}", marker.display())))
    }

    fn conf(&self) -> String {
        let socket_dir = self.socket_dir.as_ref().map_or(String::new(), |dir| {
            // Double quotes: the setting is a comma-separated list.
            format!("\"{}\"", dir.display())
        });
        let mut conf = format!(
            "# Written by Spool on every start; edit postgresql.conf instead.\n\
             port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n",
            self.port
        );
        if self.fast {
            conf.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
                 max_connections = 300\n",
            );
        }
        conf
    }

    /// Waits for a server found running to report itself ready and accept a connection.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let pid_file = PidFile::read_live(&self.pgdata());
            if let Some(pid_file) = &pid_file
                && pid_file.status == "ready"
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            if pid_file.is_none() || Instant::now() > deadline {
                return Err(DevDbError::Start {
                    pgdata: self.pgdata(),
                    port: self.port,
                    reason: "the running server did not become ready".into(),
                    log_tail: log_tail(&self.log_file(), 0),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_server(&mut self) -> Result<()> {
        if PidFile::read_live(&self.pgdata()).is_some() {
            let mut cmd = self.user.command(&self.bins.dir.join("pg_ctl"));
            cmd.arg("stop").arg("-D").arg(self.pgdata());
            cmd.args([
                "-m",
                "fast",
                "-w",
                "-s",
                "-t",
                &self.timeout.as_secs().max(1).to_string(),
            ]);
            run(cmd.current_dir(&self.root))?;
        }
        let _ = fs::remove_file(self.root.join("spool-started"));
        self.running = false;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only the last user of a server that Spool started stops it: flock(2) cannot upgrade
        // atomically, so drop the shared lock and try for an exclusive one.
        let Some(users_lock) = self.users_lock.take() else {
            return;
        };
        drop(users_lock);
        if !self.running || !self.root.join("spool-started").exists() {
            return;
        }
        let Ok(users) = lock_file(&self.root.join("users.lock")) else {
            return;
        };
        if users.try_lock().is_ok() {
            let _ = self.stop();
        }
    }
}

/// Opens a lock file for `flock(2)`, the same lock as `flock(1)` in `with-postgres.sh`.
fn lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// Takes `file`'s lock with `take` (`File::lock`, `File::lock_shared`), waiting for it.
fn locked(file: File, take: fn(&File) -> std::io::Result<()>) -> Result<File> {
    take(&file).map_err(io("locking a cluster lock file".into()))?;
    Ok(file)
}

/// The installed server binaries.
#[derive(Debug, Clone)]
struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds a directory holding `initdb`, `pg_ctl` and `postgres`: `PATH` first, then
    /// [`BIN_DIR_PATTERNS`] (newest version first), of major version `wanted` when given.
    fn find(wanted: Option<&str>, pgdata: &Path) -> Result<Self> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for pattern in BIN_DIR_PATTERNS {
            let Some((prefix, suffix)) = pattern.split_once('*') else {
                dirs.push(pattern.into());
                continue;
            };
            let (parent, stem) = prefix.rsplit_once('/').unwrap_or(("", prefix));
            let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(parent)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let version = name.strip_prefix(stem)?;
                    let key = version
                        .split('.')
                        .map(|n| n.parse().ok())
                        .collect::<Option<_>>()?;
                    Some((key, PathBuf::from(format!("{parent}/{name}{suffix}"))))
                })
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            dirs.extend(versions.into_iter().map(|(_, dir)| dir));
        }
        let mut found = Vec::new();
        for dir in dirs {
            if !["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
            {
                continue;
            }
            let Some(wanted) = wanted else {
                return Ok(Self { dir });
            };
            let version = Command::new(dir.join("pg_ctl")).arg("--version").output();
            let version = version.map_or(String::new(), |o| {
                String::from_utf8_lossy(&o.stdout).trim().to_owned()
            });
            // "pg_ctl (PostgreSQL) 15.14 (Debian ...)": the first number is the version.
            let number = version
                .split_whitespace()
                .find(|t| t.starts_with(|c: char| c.is_ascii_digit()));
            let major: String = number
                .unwrap_or_default()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if major == wanted {
                return Ok(Self { dir });
            }
            found.push(format!("{} ({version})", dir.display()));
        }
        if found.is_empty() {
            let searched = BIN_DIR_PATTERNS.iter().map(|p| p.to_string()).collect();
            return Err(DevDbError::BinariesNotFound { searched });
        }
        Err(DevDbError::VersionMismatch {
            pgdata: pgdata.to_owned(),
            wanted: wanted.unwrap_or_default().to_owned(),
            found,
        })
    }
}

/// The OS account the server runs as.
#[derive(Debug, Clone)]
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
    /// How to become that user: `runuser` or `setpriv`; `None` when it is the current user.
    switch: Option<PathBuf>,
}

/// Serialises `useradd` between threads (it fails rather than waits on a locked passwd).
static USERADD: Mutex<()> = Mutex::new(());

impl OsUser {
    /// Picks the current user when not root, and otherwise `requested`, [`OS_USER_DEFAULT`]
    /// (created when missing) or `nobody`.
    fn resolve(requested: Option<&str>) -> Result<Self> {
        let me = fs::metadata("/proc/self").map_err(io("reading /proc/self".into()))?;
        if me.uid() != 0 {
            let name = std::env::var("USER").unwrap_or_else(|_| me.uid().to_string());
            return Ok(Self {
                name,
                uid: me.uid(),
                gid: me.gid(),
                switch: None,
            });
        }
        let switch = ["runuser", "setpriv"].iter().find_map(|b| which(b));
        let Some(switch) = switch else {
            return Err(DevDbError::NoUser(
                "neither runuser nor setpriv is installed".into(),
            ));
        };
        let with = |(name, uid, gid)| Self {
            name,
            uid,
            gid,
            switch: Some(switch.clone()),
        };
        if let Some(name) = requested {
            return lookup_user(name)
                .map(with)
                .ok_or_else(|| DevDbError::NoUser(format!("no OS user {name}")));
        }
        if let Some(user) = lookup_user(OS_USER_DEFAULT) {
            return Ok(with(user));
        }
        let created = create_system_user(OS_USER_DEFAULT);
        if let Some(user) = lookup_user(OS_USER_DEFAULT).or_else(|| lookup_user("nobody")) {
            return Ok(with(user));
        }
        Err(DevDbError::NoUser(format!(
            "could not create {OS_USER_DEFAULT} ({}) and there is no `nobody`",
            created.err().map_or_else(String::new, |e| e.to_string())
        )))
    }

    /// Returns a command that runs `program` as this user.
    fn command(&self, program: &Path) -> Command {
        let Some(switch) = &self.switch else {
            return Command::new(program);
        };
        let mut cmd = Command::new(switch);
        if switch.ends_with("setpriv") {
            cmd.arg(format!("--reuid={}", self.uid));
            cmd.args([format!("--regid={}", self.gid), "--clear-groups".into()]);
        } else {
            cmd.args(["-u", &self.name]);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    fn chown(&self, path: &Path) -> Result<()> {
        if self.switch.is_none() {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).map_err(io(format!(
            "chown {} {}",
            self.name,
            path.display()
        )))
    }

    /// Gives a data directory made by another user to this one (when root).
    fn chown_tree(&self, path: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path).map_err(io(format!("reading {}", path.display())))?;
        if self.switch.is_none() || meta.uid() == self.uid {
            return Ok(());
        }
        self.chown(path)?;
        if meta.is_dir() {
            for entry in fs::read_dir(path).map_err(io(format!("reading {}", path.display())))? {
                let entry = entry.map_err(io(format!("reading {}", path.display())))?;
                self.chown_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Checks that this user can create files in `dir`.
    fn check_access(&self, dir: &Path) -> Result<()> {
        if self.switch.is_none() {
            return Ok(());
        }
        let mut cmd = self.command(Path::new("test"));
        cmd.arg("-w")
            .arg(dir)
            .arg("-a")
            .arg("-x")
            .arg(dir)
            .current_dir("/");
        match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(status) if status.success() => Ok(()),
            _ => Err(DevDbError::NotAccessible {
                path: dir.to_owned(),
                user: self.name.clone(),
            }),
        }
    }
}

/// Returns a user's name, uid and gid from the passwd database.
fn lookup_user(name: &str) -> Option<(String, u32, u32)> {
    let out = Command::new("getent").args(["passwd", name]).output();
    let text = match out {
        Ok(out) => String::from_utf8(out.stdout).ok()?,
        Err(_) => fs::read_to_string("/etc/passwd").ok()?,
    };
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let (uid, gid) = (fields.nth(1)?.parse().ok()?, fields.next()?.parse().ok()?);
        Some((name.to_owned(), uid, gid))
    })
}

/// Creates a system account with no home and no login shell.
fn create_system_user(name: &str) -> Result<()> {
    let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut cmd = Command::new(which("useradd").unwrap_or_else(|| "useradd".into()));
        cmd.args(["--system", "--no-create-home", "--home-dir", "/nonexistent"]);
        cmd.args(["--shell", "/usr/sbin/nologin", "--user-group", name]);
        match run(&mut cmd) {
            Ok(_) => return Ok(()),
            // Another process holds /etc/passwd, or created the user first.
            Err(_) if lookup_user(name).is_some() => return Ok(()),
            Err(e) if Instant::now() > deadline || !e.to_string().contains("lock") => {
                return Err(e);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Finds `program` in `PATH` or the sbin directories (absent from some users' `PATH`).
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The parts of `postmaster.pid` that matter here.
#[derive(Debug)]
struct PidFile {
    port: u16,
    status: String,
}

impl PidFile {
    /// Reads `pgdata/postmaster.pid` when the postmaster it names is alive (not a zombie,
    /// named `postgres`, and running in `pgdata` when that is visible).
    fn read_live(pgdata: &Path) -> Option<Self> {
        let text = fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let pid: u32 = lines.first()?.trim().parse().ok()?;
        let port = lines.get(3)?.trim().parse().ok()?;
        let status = lines.get(7).map_or("", |s| s.trim()).to_owned();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
        let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
        let comm = fs::read_to_string(proc_dir.join("comm")).ok()?;
        if matches!(state, "Z" | "X") || !matches!(comm.trim(), "postgres" | "postmaster") {
            return None;
        }
        // A recycled pid can name another cluster's postmaster; its cwd gives it away.
        if let (Ok(cwd), Ok(pgdata)) = (fs::read_link(proc_dir.join("cwd")), pgdata.canonicalize())
            && cwd != pgdata
        {
            return None;
        }
        Some(Self { port, status })
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Returns a port that was free a moment ago (the kernel's pick, never 5432).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io("binding 127.0.0.1:0".into()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io("reading a bound port".into()))
}

/// Runs `cmd` to completion, returning its stdout or its status and output as an error.
fn run(cmd: &mut Command) -> Result<String> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => {
            return Err(DevDbError::Command {
                command,
                output: e.to_string(),
            });
        }
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(DevDbError::Command {
        command,
        output: format!(
            "{}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .trim()
        .to_owned(),
    })
}

/// Returns the last lines of `log` written after byte `from`.
fn log_tail(log: &Path, from: u64) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> DevDbError {
    move |source| DevDbError::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A cluster in a fresh temp dir that the unprivileged server user can reach.
    fn temp_cluster(fast: bool) -> (tempfile::TempDir, Cluster) {
        let tmp = tempfile::tempdir().unwrap();
        // The server runs as another user when we are root, and umasks differ.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let cluster = Cluster::start(ClusterConfig {
            fast,
            ..ClusterConfig::new(tmp.path().join("pg"))
        })
        .unwrap();
        (tmp, cluster)
    }

    /// Runs `select 1` through psql and returns its output.
    fn psql(cluster: &Cluster, url: &str) -> String {
        let psql = cluster.bin_dir().join("psql");
        let psql = if psql.is_file() { psql } else { "psql".into() };
        let out = Command::new(psql)
            .args([url, "-XAtc", "select 1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn cluster_starts_restarts_and_stops() {
        let (_tmp, mut cluster) = temp_cluster(true);
        assert!(cluster.started_here());
        assert_ne!(cluster.port(), 5432);
        assert_eq!(psql(&cluster, &cluster.url()), "1");
        let socket = cluster.socket_dir().unwrap().display().to_string();
        let socket_url = format!(
            "postgres://{SUPERUSER}@/postgres?host={socket}&port={}",
            cluster.port()
        );
        assert_eq!(psql(&cluster, &socket_url), "1");

        let port = cluster.port();
        cluster.restart().unwrap();
        assert_eq!(cluster.port(), port);
        assert_eq!(psql(&cluster, &cluster.url()), "1");

        cluster.stop().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!cluster.data_dir().join("data/postmaster.pid").exists());
        cluster.stop().unwrap();
    }

    #[test]
    fn running_server_is_reused_and_left_to_its_starter() {
        let (tmp, mut first) = temp_cluster(true);
        let second = Cluster::start(ClusterConfig::new(tmp.path().join("pg"))).unwrap();
        assert!(!second.started_here());
        assert_eq!(second.url(), first.url());
        drop(second);
        assert_eq!(psql(&first, &first.url()), "1");
        first.stop().unwrap();
    }

    #[test]
    fn last_handle_stops_the_server_it_started() {
        let (tmp, first) = temp_cluster(true);
        let port = first.port();
        drop(first);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!tmp.path().join("pg/data/postmaster.pid").exists());
    }

    #[test]
    fn stale_postmaster_pid_after_a_crash_is_cleared() {
        let (tmp, mut cluster) = temp_cluster(true);
        let pid_path = tmp.path().join("pg/data/postmaster.pid");
        let pid_file = fs::read(&pid_path).unwrap();
        let port = cluster.port();
        cluster.stop().unwrap();
        // What a killed server leaves: its pid file and socket lock naming a dead process.
        fs::write(&pid_path, &pid_file).unwrap();
        let socket_lock = tmp.path().join(format!("pg/socket/.s.PGSQL.{port}.lock"));
        fs::write(&socket_lock, &pid_file).unwrap();
        drop(cluster);

        let mut cluster = Cluster::start(ClusterConfig {
            port: Some(port),
            fast: true,
            ..ClusterConfig::new(tmp.path().join("pg"))
        })
        .unwrap();
        assert!(cluster.started_here());
        assert_eq!(psql(&cluster, &cluster.url()), "1");
        cluster.stop().unwrap();
    }

    #[test]
    fn data_dir_the_server_user_cannot_reach_is_reported() {
        if fs::metadata("/proc/self").unwrap().uid() != 0 {
            return; // Only root runs the server as another user.
        }
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let err = Cluster::start(ClusterConfig::new(tmp.path().join("pg"))).unwrap_err();
        assert!(matches!(err, DevDbError::NotAccessible { .. }), "{err}");
    }

    #[test]
    fn empty_data_dir_is_rejected() {
        let err = Cluster::start(ClusterConfig::default()).unwrap_err();
        assert!(matches!(err, DevDbError::InvalidConfig(_)), "{err}");
    }
}
