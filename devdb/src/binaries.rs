//! Finding the installed PostgreSQL server binaries.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{DevDbError, Result};

/// Where the server binaries are looked for after `PATH`; `*` is the major version.
const BIN_DIR_PATTERNS: [&str; 3] = [
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
];
/// The installed server binaries.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) dir: PathBuf,
}

impl Binaries {
    /// Finds a directory holding `initdb`, `pg_ctl` and `postgres`: `PATH` first, then
    /// [`BIN_DIR_PATTERNS`] (newest version first), of major version `wanted` when given.
    pub(crate) fn find(wanted: Option<&str>, pgdata: &Path) -> Result<Self> {
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
