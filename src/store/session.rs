//! Sessions and pins: how `gc` knows what live processes are using.
//!
//! Every writing process ([`Store::open`]) starts a session: `sessions/<id>.lock`, which it
//! keeps locked (`flock`) for as long as it lives, and `sessions/<id>.pins`, the digests of
//! the objects it has read or committed, appended before it uses them. The kernel drops the
//! lock when the process dies in any way (kill -9 included, in any pid namespace), so "can the
//! lock be taken" is the liveness test; a heartbeat also refreshes the file's time every few
//! seconds, for people looking.
//!
//! Pinning happens under a shared lock on `gc.lock`; `gc` sweeps under the exclusive one. So a
//! pin lands either before gc reads the pins (the object is kept) or after the sweep (the
//! object is found missing and recomputed), never in between.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, io, read_dir_or_empty};
use crate::task::host_name;

/// How often a live process refreshes its session and claim files.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

/// Who a session or claim belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Owner {
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339 UTC.
    pub since: String,
    /// The command, for `status` (`run experiments/paper.yaml`).
    #[serde(default)]
    pub command: String,
}

impl Owner {
    pub(crate) fn me() -> Owner {
        let args: Vec<String> = std::env::args().skip(1).take(4).collect();
        Owner {
            user: user_name(),
            host: host_name(),
            pid: std::process::id(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            command: args.join(" "),
        }
    }
}

/// The user's name: `$USER`, else the password database's name for the uid, else `uid N`.
fn user_name() -> String {
    if let Some(u) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return u;
    }
    // SAFETY: getuid cannot fail; getpwuid returns null or a pointer to static storage, read
    // at once (this process calls it from no other thread at the same time).
    unsafe {
        let uid = libc::getuid();
        let pw = libc::getpwuid(uid);
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
        format!("uid {uid}")
    }
}

/// This process's session on a store. Ends (its files removed) when dropped; a killed
/// process's session is ended by the next process that finds its lock free.
pub struct Session {
    id: String,
    lock_path: PathBuf,
    pins_path: PathBuf,
    /// `scratch/<id>/`: this process's tasks' folders.
    scratch: PathBuf,
    _lock: File,
    pins: Mutex<(File, HashSet<String>)>,
    /// Claim files this process holds, refreshed by the heartbeat.
    pub(crate) claims: Arc<Mutex<Vec<PathBuf>>>,
    stop: Sender<()>,
}

/// Another process's session that is alive.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub owner: Option<Owner>,
    pins_path: PathBuf,
}

/// Held while objects are pinned: a shared lock on `gc.lock`.
pub struct PinGuard {
    _file: Option<File>,
}

impl Session {
    pub(crate) fn start(root: &Path) -> Result<Session, StoreError> {
        let dir = root.join("sessions");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let owner = Owner::me();
        let safe_host: String = owner
            .host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(32)
            .collect();
        let nonce = &crate::fingerprint::hash_bytes(
            format!("{:?}{:?}", SystemTime::now(), std::thread::current().id()).as_bytes(),
        )[..8];
        let id = format!("{safe_host}-{}-{nonce}", owner.pid);
        let lock_path = dir.join(format!("{id}.lock"));
        let pins_path = dir.join(format!("{id}.pins"));
        let pins = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&pins_path)
            .map_err(io(&pins_path))?;
        // Locked under a temporary name and then renamed: a lock file is never seen unlocked
        // while its process lives (another process would take it for a dead one's).
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        tmp.as_file().lock().map_err(io(&lock_path))?;
        let info = serde_json::to_vec(&owner).expect("an owner serializes");
        tmp.write_all(&info).map_err(io(&lock_path))?;
        let lock = tmp
            .persist(&lock_path)
            .map_err(|e| io(&lock_path)(e.error))?;
        let claims: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let (stop, stopped) = channel::<()>();
        let beat_files = claims.clone();
        let beat_lock = lock_path.clone();
        std::thread::spawn(move || {
            while stopped.recv_timeout(HEARTBEAT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                let mut files = beat_files.lock().unwrap_or_else(|p| p.into_inner()).clone();
                files.push(beat_lock.clone());
                for f in files {
                    if let Ok(f) = OpenOptions::new().write(true).open(&f) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        Ok(Session {
            scratch: root.join("scratch").join(&id),
            id,
            lock_path,
            pins_path,
            _lock: lock,
            pins: Mutex::new((pins, HashSet::new())),
            claims,
            stop,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `scratch/<id>/`: the folder of this process's tasks.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        let _ = super::remove_path(&self.scratch);
        let _ = fs::remove_file(&self.pins_path);
        let _ = fs::remove_file(&self.lock_path);
    }
}

impl LiveSession {
    /// The digests this session pinned. A half-written last line (the process died while
    /// appending) is no digest and is skipped.
    pub fn pins(&self) -> Vec<String> {
        fs::read_to_string(&self.pins_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect()
    }
}

impl Store {
    /// The sessions of the other live processes (this one's is left out). A session whose lock
    /// is free belongs to a process that died: its files are removed on the way (when the
    /// store is writable).
    pub fn live_sessions(&self) -> Result<Vec<LiveSession>, StoreError> {
        let mut live = Vec::new();
        for path in read_dir_or_empty(&self.root.join("sessions"))? {
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".lock"))
                .filter(|id| self.session.as_ref().is_none_or(|s| s.id() != *id))
                .map(str::to_string)
            else {
                continue;
            };
            let pins_path = path.with_extension("pins");
            let Ok(file) = File::open(&path) else {
                continue;
            };
            match file.try_lock_shared() {
                Err(fs::TryLockError::WouldBlock) => {
                    let owner = fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    live.push(LiveSession {
                        id,
                        owner,
                        pins_path,
                    });
                }
                Ok(()) if self.session.is_some() => {
                    let _ = fs::remove_file(&pins_path);
                    let _ = fs::remove_file(&path);
                }
                _ => {}
            }
        }
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }

    /// A shared lock on `gc.lock`, held while pinning. A reader's guard is empty: it pins
    /// nothing.
    pub fn pin_guard(&self) -> Result<PinGuard, StoreError> {
        if self.session.is_none() {
            return Ok(PinGuard { _file: None });
        }
        let file = self.gc_lock_file()?;
        file.lock_shared().map_err(io(&self.root.join("gc.lock")))?;
        Ok(PinGuard { _file: Some(file) })
    }

    /// The exclusive lock on `gc.lock`: while it is held no process pins anything.
    pub fn collect_guard(&self) -> Result<PinGuard, StoreError> {
        let file = self.gc_lock_file()?;
        file.lock().map_err(io(&self.root.join("gc.lock")))?;
        Ok(PinGuard { _file: Some(file) })
    }

    fn gc_lock_file(&self) -> Result<File, StoreError> {
        let path = self.root.join("gc.lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))
    }

    /// Records that this process uses the object `digest`, so that no `gc` deletes it while
    /// this process lives. The caller holds a [`PinGuard`].
    pub fn pin(&self, _guard: &PinGuard, digest: &str) -> Result<(), StoreError> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let mut pins = s.pins.lock().unwrap_or_else(|p| p.into_inner());
        if pins.1.insert(digest.to_string()) {
            pins.0
                .write_all(format!("{digest}\n").as_bytes())
                .map_err(io(&s.pins_path))?;
        }
        Ok(())
    }
}
