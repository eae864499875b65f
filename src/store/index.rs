//! The sled index: a per-store stat cache (absolute path → stat + digest), and nothing else.
//!
//! It is a cache: losing it costs one re-hash of each file, never a recomputation, because the
//! records and objects are files of their own. sled lets one process at a time open a database,
//! so every process opens it only for a short session (a batch of lookups: one plan, one
//! commit) and closes it at [`StatIndex::checkpoint`]; what it learnt in between waits in
//! memory and is written then. A process that finds it busy for longer than [`BUSY_WAIT`] goes
//! on without it (lookups miss) rather than wait. An index that cannot be read is deleted and
//! started again, with a one-line notice; on a read-only store it is only read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::fingerprint::{FileStat, StatCache};

use super::StageRecord;

/// How long a lookup waits for another process's session to end before going on uncached.
const BUSY_WAIT: Duration = Duration::from_secs(2);

pub struct StatIndex {
    path: PathBuf,
    writable: bool,
    db: Mutex<Option<(sled::Db, sled::Tree)>>,
    /// Entries learnt since the last checkpoint, not yet in sled.
    pending: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Set when the index could not be had in this batch; cleared at the checkpoint.
    unavailable: AtomicBool,
    healed: AtomicBool,
}

enum Opened {
    Db(sled::Db, sled::Tree),
    Busy,
    Broken(String),
}

impl StatIndex {
    pub fn new(path: &Path, writable: bool) -> StatIndex {
        StatIndex {
            path: path.to_path_buf(),
            writable,
            db: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            unavailable: AtomicBool::new(false),
            healed: AtomicBool::new(false),
        }
    }

    fn try_open(&self) -> Opened {
        if !self.writable && !self.path.exists() {
            return Opened::Broken("absent".into());
        }
        let opened = sled::Config::new()
            .path(&self.path)
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()
            .and_then(|db| {
                let tree = db.open_tree("stat")?;
                Ok((db, tree))
            });
        match opened {
            Ok((db, tree)) => Opened::Db(db, tree),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                Opened::Busy
            }
            Err(e) => Opened::Broken(e.to_string()),
        }
    }

    /// Runs `f` on the open tree, opening it first (waiting a little for another process, and
    /// rebuilding an unreadable index). `None` when the index cannot be had now.
    fn with_tree<T>(
        &self,
        wait: Duration,
        f: impl FnOnce(&sled::Db, &sled::Tree) -> T,
    ) -> Option<T> {
        let mut guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if self.unavailable.load(Ordering::Relaxed) {
                return None;
            }
            let start = Instant::now();
            let mut pause = Duration::from_millis(1);
            loop {
                match self.try_open() {
                    Opened::Db(db, tree) => {
                        *guard = Some((db, tree));
                        break;
                    }
                    Opened::Busy if start.elapsed() < wait => {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(5));
                    }
                    Opened::Broken(why) if self.heal(&why) => {}
                    _ => {
                        self.unavailable.store(true, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
        guard.as_ref().map(|(db, tree)| f(db, tree))
    }

    /// Deletes an unreadable index so that it starts again empty (once per process, on a
    /// writable store). `false` when it cannot be healed here.
    fn heal(&self, why: &str) -> bool {
        if !self.writable || self.healed.swap(true, Ordering::Relaxed) {
            return false;
        }
        eprintln!(
            "{:>12} the store's stat cache `{}` ({why}); objects and records are intact, \
             files are re-hashed once",
            "Rebuilt",
            self.path.display()
        );
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.path);
        true
    }

    /// Writes the pending entries and closes the index so that other processes can open it.
    /// Entries that cannot be written now stay pending for the next checkpoint.
    pub fn checkpoint(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        self.unavailable.store(false, Ordering::Relaxed);
        if !pending.is_empty() && self.writable {
            let written = self.with_tree(BUSY_WAIT * 5, |_, tree| {
                let mut batch = sled::Batch::default();
                for (k, v) in &pending {
                    batch.insert(k.as_slice(), v.as_slice());
                }
                tree.apply_batch(batch)
                    .and_then(|()| tree.flush().map(|_| ()))
            });
            if !matches!(written, Some(Ok(()))) {
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (k, v) in pending {
                    p.entry(k).or_insert(v);
                }
            }
        }
        *self.db.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.unavailable.store(false, Ordering::Relaxed);
    }

    /// Forgets every entry under `prefix` (a collected object).
    pub fn remove_prefix(&self, prefix: &Path) {
        let p = prefix.as_os_str().as_encoded_bytes().to_vec();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&p));
        self.with_tree(BUSY_WAIT, |_, tree| {
            for k in tree.scan_prefix(&p).keys().flatten() {
                let _ = tree.remove(k);
            }
        });
    }

    /// A format-1 index's records and latest keys (they live in files since format 2).
    pub fn export_format_1(&self) -> (Vec<StageRecord>, Vec<(String, String, serde_json::Value)>) {
        let out = self.with_tree(BUSY_WAIT * 5, |db, _| {
            let mut records = Vec::new();
            if let Ok(tree) = db.open_tree("records") {
                for (_, v) in tree.iter().flatten() {
                    if let Ok(r) = serde_json::from_slice::<StageRecord>(&v) {
                        records.push(r);
                    }
                }
            }
            let mut latest = Vec::new();
            if let Ok(tree) = db.open_tree("latest") {
                for (k, v) in tree.iter().flatten() {
                    let mut parts = k.splitn(2, |&b| b == 0);
                    let (Some(e), Some(s)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    if let Ok(key) = serde_json::from_slice(&v) {
                        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                        latest.push((text(e), text(s), key));
                    }
                }
                let _ = db.drop_tree("latest");
            }
            let _ = db.drop_tree("records");
            (records, latest)
        });
        out.unwrap_or_default()
    }
}

impl Drop for StatIndex {
    fn drop(&mut self) {
        self.checkpoint();
    }
}

/// Encoding of a stat entry: five little-endian 64-bit fields, then the hex digest.
fn encode(stat: &FileStat, digest: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + digest.len());
    for x in [
        stat.dev,
        stat.ino,
        stat.size,
        stat.mtime_ns as u64,
        stat.ctime_ns as u64,
    ] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(digest.as_bytes());
    v
}

fn decode(v: &[u8]) -> Option<(FileStat, String)> {
    if v.len() < 40 {
        return None;
    }
    let f = |i: usize| u64::from_le_bytes(v[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Some((
        FileStat {
            dev: f(0),
            ino: f(1),
            size: f(2),
            mtime_ns: f(3) as i64,
            ctime_ns: f(4) as i64,
        },
        String::from_utf8(v[40..].to_vec()).ok()?,
    ))
}

impl StatCache for StatIndex {
    fn get(&self, path: &Path, stat: &FileStat) -> Option<String> {
        let k = path.as_os_str().as_encoded_bytes();
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .cloned();
        let v = match pending {
            Some(v) => v,
            None => match self.with_tree(BUSY_WAIT, |_, tree| tree.get(k))? {
                Ok(v) => v?.to_vec(),
                Err(e) => {
                    // Damaged inside although it opened: closed, healed at the next open.
                    *self.db.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    if !self.heal(&e.to_string()) {
                        self.unavailable.store(true, Ordering::Relaxed);
                    }
                    return None;
                }
            },
        };
        let (cached, digest) = decode(&v)?;
        (cached == *stat).then_some(digest)
    }

    fn put(&self, path: &Path, stat: &FileStat, digest: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                path.as_os_str().as_encoded_bytes().to_vec(),
                encode(stat, digest),
            );
    }
}
