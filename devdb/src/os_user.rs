//! The unprivileged OS account the server runs as (PostgreSQL refuses to run as root).

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::OS_USER_DEFAULT;
use crate::error::{DevDbError, Result, io};
use crate::process::run;

/// The OS account the server runs as.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
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
    pub(crate) fn resolve(requested: Option<&str>) -> Result<Self> {
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
    pub(crate) fn command(&self, program: &Path) -> Command {
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

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
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
    pub(crate) fn chown_tree(&self, path: &Path) -> Result<()> {
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
    pub(crate) fn check_access(&self, dir: &Path) -> Result<()> {
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
