//! The data directory's lock: one process at a time, released when the process dies (an
//! advisory `flock` held by the open file, so a `kill -9` never leaves a stale lock behind).
//!
//! Within one process, a store that was just dropped may still be closing on a background
//! thread (its last flush); [`DirLock::acquire`] waits a little for such a store of this
//! process, and fails at once when another process holds the directory.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::StoreError;

/// The name of the lock file inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long to wait for a store of this process that is still closing.
const CLOSING_WAIT: Duration = Duration::from_secs(2);

/// The data directories this process holds.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Holds the lock while alive.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Take the lock of `dir`, or fail with `Locked` if another holder keeps it.
    pub(crate) async fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let dir = dir
            .canonicalize()
            .map_err(|err| StoreError::Io(format!("{}: {err}", dir.display())))?;
        let deadline = tokio::time::Instant::now() + CLOSING_WAIT;
        loop {
            match Self::try_acquire(&dir) {
                Err(StoreError::Locked { .. })
                    if held_here(&dir) && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                other => return other,
            }
        }
    }

    fn try_acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| StoreError::Io(format!("{}: {err}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                if let Ok(mut held) = HELD.lock() {
                    held.get_or_insert_with(HashSet::new)
                        .insert(dir.to_path_buf());
                }
                Ok(DirLock {
                    _file: file,
                    dir: dir.to_path_buf(),
                })
            }
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
                path: dir.display().to_string(),
            }),
            Err(TryLockError::Error(err)) => {
                Err(StoreError::Io(format!("{}: {err}", path.display())))
            }
        }
    }
}

fn held_here(dir: &Path) -> bool {
    HELD.lock()
        .map(|held| held.as_ref().is_some_and(|h| h.contains(dir)))
        .unwrap_or(false)
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock()
            && let Some(held) = held.as_mut()
        {
            held.remove(&self.dir);
        }
    }
}
