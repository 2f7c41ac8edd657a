//! The data directory's lock: one process at a time, released when the process dies (an
//! advisory `flock` held by the open file, so a `kill -9` never leaves a stale lock behind).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::StoreError;

/// The name of the lock file inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds the lock while alive.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the lock of `dir`, or fail with `Locked` if another holder has it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| StoreError::Io(format!("{}: {err}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked { path: dir.display().to_string() }),
            Err(TryLockError::Error(err)) => Err(StoreError::Io(format!("{}: {err}", path.display()))),
        }
    }
}
