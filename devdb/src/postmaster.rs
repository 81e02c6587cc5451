//! What a running server leaves to find it by: `postmaster.pid`, and ports.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

/// The parts of `postmaster.pid` that matter here.
#[derive(Debug)]
pub(crate) struct PidFile {
    pub(crate) port: u16,
    pub(crate) status: String,
}

impl PidFile {
    /// Reads `pgdata/postmaster.pid` when the postmaster it names is alive (not a zombie,
    /// named `postgres`, and running in `pgdata` when that is visible).
    pub(crate) fn read_live(pgdata: &Path) -> Option<Self> {
        let text = fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let pid: u32 = lines.first()?.trim().parse().ok()?;
        let port = lines.get(3)?.trim().parse().ok()?;
        let status = lines.get(7).map_or("", |s| s.trim()).to_owned();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let comm = fs::read_to_string(proc_dir.join("comm")).ok()?;
        if !is_running(pid) || !matches!(comm.trim(), "postgres" | "postmaster") {
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

/// Whether process `pid` exists and has not exited. An exited process whose parent has not
/// reaped it (a zombie) still has a `/proc` entry, so the entry alone says nothing: a
/// postmaster started by `pg_ctl` is reparented to PID 1, and in a container PID 1 may never
/// reap.
pub(crate) fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name, in parentheses, may itself hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}

pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Returns a port that was free a moment ago (the kernel's pick, never 5432).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io("binding 127.0.0.1:0".into()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io("reading a bound port".into()))
}
