//! One server process per search index directory.
//!
//! Replicas on PostgreSQL share a data directory (its keys) but each keeps
//! its own search index, and `reindex` rebuilds the index a server reads.
//! The index directory therefore names its owner: an exclusive lock on
//! `server.pid` inside it, with the owner's pid written there so that the
//! refusal can name it. The operating system releases the lock when the
//! process ends, however it ends, so a killed server never leaves a stale
//! lock behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the directory.
pub const LOCK_FILE: &str = "server.pid";

/// Held while the process owns the directory; dropping it releases it.
#[derive(Debug)]
pub struct ProcessLock {
    _file: File,
}

/// Why the directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another running process holds it.
    #[error("{} is held by a running govledger process{}", .dir.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { dir: PathBuf, pid: Option<u32> },
    #[error("cannot lock {}: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

impl ProcessLock {
    /// Takes `dir` for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |error| LockError::Io { path: path.clone(), error };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.read_to_string(&mut text).ok();
                return Err(LockError::Held { dir: dir.to_owned(), pid: text.trim().parse().ok() });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_names_its_owner_and_is_free_again_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = ProcessLock::acquire(dir.path()).unwrap();
        match ProcessLock::acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        ProcessLock::acquire(dir.path()).unwrap();
    }
}
