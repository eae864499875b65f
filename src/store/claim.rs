//! Stage claims: a key that a live process is computing is computed by nobody else.
//!
//! `claims/<key>.lock` is created and locked (`flock`) by the process that computes the key,
//! and holds who it is ([`Owner`]). Another process that finds it locked waits (showing who)
//! and then reuses the record, or computes the key itself if the holder failed or died: the
//! kernel drops the lock of a dead process at once, on this machine and in any pid namespace.
//! For a holder on another node whose lock a shared filesystem keeps after the node is lost,
//! the claim's lease expires: the heartbeat refreshes the file's time every few seconds, and a
//! claim not refreshed for [`LEASE`] is taken over.
//!
//! A lock file is removed by its holder while still locked; a process that locked a file
//! which is no longer the one at the path (it was removed meanwhile) drops it and tries again.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::session::{HEARTBEAT, Owner};
use super::{Store, StoreError, io};

/// A claim not refreshed for this long belongs to a lost node and is taken over.
pub const LEASE: Duration = Duration::from_secs(6 * HEARTBEAT.as_secs());

/// Who is computing a claimed key.
#[derive(Debug, Clone)]
pub struct Holder {
    pub owner: Option<Owner>,
    pub stage: String,
}

impl Holder {
    /// `USER@HOST (pid N)`.
    pub fn who(&self) -> String {
        match &self.owner {
            Some(o) => format!("{}@{} (pid {})", o.user, o.host, o.pid),
            None => "another orchestrate process".to_string(),
        }
    }

    /// How long the holder has been at it.
    pub fn for_how_long(&self) -> Option<Duration> {
        let since = humantime::parse_rfc3339(&self.owner.as_ref()?.since).ok()?;
        SystemTime::now().duration_since(since).ok()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.who())?;
        if let Some(d) = self.for_how_long() {
            let s = d.as_secs();
            match (s / 3600, s / 60 % 60, s % 60) {
                (0, 0, s) => write!(f, " for {s}s")?,
                (0, m, s) => write!(f, " for {m}m{s:02}s")?,
                (h, m, _) => write!(f, " for {h}h{m:02}m")?,
            }
        }
        Ok(())
    }
}

pub enum Claim {
    /// This process computes the key; dropping the guard releases it.
    Held(ClaimGuard),
    /// A live process computes it.
    Busy(Holder),
}

pub struct ClaimGuard {
    file: File,
    path: PathBuf,
    registry: Arc<Mutex<Vec<PathBuf>>>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        // Removed while still locked, and only if it is still ours.
        let same = fs::metadata(&self.path)
            .ok()
            .zip(self.file.metadata().ok())
            .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
        if same {
            let _ = fs::remove_file(&self.path);
        }
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != &self.path);
    }
}

impl Store {
    /// Claims `key` for this process (which must be a writer), or says who holds it.
    pub fn try_claim(&self, key: &str, stage: &str) -> Result<Claim, StoreError> {
        let session = self.session()?;
        if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Record(format!("`{key}` is no key")));
        }
        let dir = self.root.join("claims");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{key}.lock"));
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            match file.try_lock() {
                Ok(()) => {
                    let current = fs::metadata(&path).ok();
                    let mine = file.metadata().map_err(io(&path))?;
                    if !current.is_some_and(|c| c.ino() == mine.ino() && c.dev() == mine.dev()) {
                        continue; // removed by its last holder meanwhile: try the new one
                    }
                    let info = serde_json::json!({"owner": Owner::me(), "stage": stage});
                    file.set_len(0).map_err(io(&path))?;
                    file.write_all(info.to_string().as_bytes())
                        .map_err(io(&path))?;
                    session
                        .claims
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(path.clone());
                    return Ok(Claim::Held(ClaimGuard {
                        file,
                        path,
                        registry: session.claims.clone(),
                    }));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let info: Option<serde_json::Value> = fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    let holder = Holder {
                        owner: info
                            .as_ref()
                            .and_then(|v| serde_json::from_value(v["owner"].clone()).ok()),
                        stage: info
                            .as_ref()
                            .and_then(|v| v["stage"].as_str())
                            .unwrap_or(stage)
                            .to_string(),
                    };
                    let age = file
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > LEASE) {
                        // A lost node's claim: its lease ran out. Taken over by removing it.
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    return Ok(Claim::Busy(holder));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
        Err(StoreError::Record(format!(
            "the claim `{}` keeps changing hands",
            path.display()
        )))
    }
}
