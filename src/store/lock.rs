//! The store's exclusive lock: one dispatcher at a time owns the index.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{LockWait, StoreError, io};

pub struct StoreLock {
    _file: File,
    info: PathBuf,
}

impl StoreLock {
    pub fn acquire(
        root: &Path,
        wait: LockWait,
        on_wait: &dyn Fn(&str),
    ) -> Result<StoreLock, StoreError> {
        let path = root.join("lock");
        let info = root.join("lock.info");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&info)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "another orchestrate process".to_string());
                let holder = format!("held by {holder}");
                if wait == LockWait::NoWait {
                    return Err(StoreError::Busy {
                        root: root.to_path_buf(),
                        holder,
                    });
                }
                on_wait(&holder);
                file.lock().map_err(io(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let args: Vec<String> = std::env::args().skip(1).take(4).collect();
        let mut f = File::create(&info).map_err(io(&info))?;
        let _ = writeln!(
            f,
            "pid {} (orchestrate {})",
            std::process::id(),
            args.join(" ")
        );
        Ok(StoreLock { _file: file, info })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.info);
    }
}
