//! The cluster's lock files, shared with `flock(1)` in `scripts/with-postgres.sh`: `users.lock`
//! (shared) while using the cluster, then `start.lock` (exclusive) while starting or stopping
//! it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Result, io};

/// Opens a lock file for `flock(2)`, the same lock as `flock(1)` in `with-postgres.sh`.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// Takes `file`'s lock with `take` (`File::lock`, `File::lock_shared`), waiting for it.
pub(crate) fn locked(file: File, take: fn(&File) -> std::io::Result<()>) -> Result<File> {
    take(&file).map_err(io("locking a cluster lock file".into()))?;
    Ok(file)
}
