//! The cluster handle: creating, starting, reusing and stopping the server.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::config::{ClusterConfig, SUPERUSER};
use crate::error::{DevDbError, Result, io};
use crate::locks::{lock_file, locked};
use crate::os_user::OsUser;
use crate::postmaster::{PidFile, free_port, port_is_free};
use crate::process::{log_tail, run};

/// The longest unix socket path the kernel accepts (`sun_path` less its NUL).
const SOCKET_PATH_MAX: usize = 107;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

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

    /// The pid of the postmaster serving `data_dir`, from its pid file's first line.
    fn postmaster_pid(data_dir: &Path) -> u32 {
        let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
        pid_file.lines().next().unwrap().trim().parse().unwrap()
    }

    /// Whether process `pid` has exited within a few seconds (a zombie counts: whether it is
    /// reaped is up to its parent, which is not us). Not whether its port is closed: tests run
    /// in parallel, and another test's server may take a port as soon as it is free.
    fn gone(pid: u32) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while crate::postmaster::is_running(pid) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
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

        let pid = postmaster_pid(&cluster.data_dir().join("data"));
        cluster.stop().unwrap();
        assert!(gone(pid));
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
        let pid = postmaster_pid(&tmp.path().join("pg/data"));
        drop(first);
        assert!(gone(pid));
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
