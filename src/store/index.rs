//! The sled index: a per-store stat cache (absolute path → stat + digest), and nothing else.
//!
//! It is a cache: losing it costs one re-hash of each file, never a recomputation, because the
//! records and objects are files of their own. sled lets one process at a time open a database,
//! so every process opens it only for a short session (a batch of lookups: one plan, one
//! commit) and closes it at [`StatIndex::checkpoint`]; what it learnt in between waits in
//! memory and is written then. A process that finds it busy for longer than [`BUSY_WAIT`] goes
//! on without it (lookups miss) rather than wait. An index that cannot be read is deleted and
//! started again, with a one-line notice; on a read-only store it is only read.
//!
//! In front of sled sits a **stat snapshot** per scope (one experiment file of one workspace,
//! [`StatIndex::use_snapshot`]): a small file under `stat-snapshots/` holding the entries that
//! scope's last run looked up, written atomically when the process ends, read without any lock.
//! Each entry validates itself by its stat exactly as a sled entry does, so a stale snapshot is
//! only a miss. A rerun whose every file is unchanged never opens sled: no wait for another
//! process's session and none of sled's start-up (a third of a no-op rerun's CPU, measured with
//! `perf`), which is what lets many no-op reruns share a store at once.

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
    snapshot: Mutex<Option<Snapshot>>,
}

/// The stat snapshot of one scope: what it held when loaded, and what this process used.
struct Snapshot {
    path: PathBuf,
    loaded: HashMap<Vec<u8>, Vec<u8>>,
    used: HashMap<Vec<u8>, Vec<u8>>,
}

/// First line of a stat snapshot file.
const SNAPSHOT_MAGIC: &[u8] = b"orchestrate stat snapshot 1\n";

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
            snapshot: Mutex::new(None),
        }
    }

    /// Puts the stat snapshot of `scope` (e.g. an experiment file's absolute path) in front of
    /// sled for this process: lookups it answers need no sled session, and what this process
    /// looks up or learns becomes the scope's snapshot when it ends (a writable store only).
    pub fn use_snapshot(&self, dir: &Path, scope: &str) {
        let name = crate::fingerprint::hash_bytes(scope.as_bytes());
        let path = dir.join(&name[..32]);
        let same = |g: &Option<Snapshot>| g.as_ref().map(|s| s.path == path);
        match same(&self.snapshot.lock().unwrap_or_else(|p| p.into_inner())) {
            Some(true) => return, // planned again in this process: keep what it used so far
            Some(false) => self.save_snapshot(), // another scope's first
            None => {}
        }
        let mut guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = std::fs::read(&path)
            .ok()
            .and_then(|b| decode_snapshot(&b))
            .unwrap_or_default();
        *guard = Some(Snapshot {
            path,
            loaded,
            used: HashMap::new(),
        });
    }

    /// Writes the scope's snapshot if this process used other entries than it held. A failure
    /// only costs the next run a sled session.
    fn save_snapshot(&self) {
        let mut guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let Some(snap) = guard.take() else { return };
        if !self.writable || snap.used.is_empty() || snap.used == snap.loaded {
            return;
        }
        let mut entries: Vec<_> = snap.used.iter().collect();
        entries.sort();
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        for (k, v) in entries {
            for part in [k, v] {
                bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
                bytes.extend_from_slice(part);
            }
        }
        let Some(dir) = snap.path.parent() else {
            return;
        };
        // A temporary file of a random name (processes on several hosts may share the folder),
        // renamed into place: a reader sees the old snapshot or the new one, never a mix.
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(dir))
            .and_then(|mut tmp| {
                std::io::Write::write_all(&mut tmp, &bytes)?;
                tmp.persist(&snap.path).map_err(|e| e.error)
            });
    }

    /// Remembers an entry this process used, for the scope's next snapshot.
    fn note_used(&self, k: &[u8], v: &[u8]) {
        if let Some(snap) = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            snap.used.insert(k.to_vec(), v.to_vec());
        }
    }

    /// The snapshot's entry for `k`, if it has one.
    fn snapshot_entry(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .loaded
            .get(k)
            .cloned()
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
        if let Some(snap) = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            snap.loaded.retain(|k, _| !k.starts_with(&p));
            snap.used.retain(|k, _| !k.starts_with(&p));
        }
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
        self.save_snapshot();
    }
}

/// A snapshot file's entries; `None` when it is not one (then it is simply rewritten).
fn decode_snapshot(bytes: &[u8]) -> Option<HashMap<Vec<u8>, Vec<u8>>> {
    let mut rest = bytes.strip_prefix(SNAPSHOT_MAGIC)?;
    let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return None;
        }
        let (part, tail) = tail.split_at(len);
        *rest = tail;
        Some(part.to_vec())
    };
    let mut out = HashMap::new();
    while !rest.is_empty() {
        let k = take(&mut rest)?;
        let v = take(&mut rest)?;
        decode(&v)?;
        out.insert(k, v);
    }
    Some(out)
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
        if let Some(v) = self.snapshot_entry(k)
            && let Some((cached, digest)) = decode(&v)
            && cached == *stat
        {
            self.note_used(k, &v);
            return Some(digest);
        }
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
        if cached != *stat {
            return None;
        }
        self.note_used(k, &v);
        Some(digest)
    }

    fn put(&self, path: &Path, stat: &FileStat, digest: &str) {
        let k = path.as_os_str().as_encoded_bytes().to_vec();
        let v = encode(stat, digest);
        self.note_used(&k, &v);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64) -> FileStat {
        FileStat {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 5,
            ctime_ns: 6,
        }
    }

    #[test]
    fn a_snapshot_answers_a_rerun_without_opening_sled_and_a_changed_stat_misses() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snaps");
        let file = Path::new("/ws/data/a.csv");
        {
            let index = StatIndex::new(&dir.path().join("index"), true);
            index.use_snapshot(&snaps, "ws\0exp.yaml");
            index.put(file, &stat(7), "d1");
        }
        // An index that cannot be opened at all (a plain file, on a store read-only to us):
        // only the snapshot can answer.
        let broken = dir.path().join("not-an-index");
        std::fs::write(&broken, b"garbage").unwrap();
        let index = StatIndex::new(&broken, false);
        index.use_snapshot(&snaps, "ws\0exp.yaml");
        assert_eq!(index.get(file, &stat(7)).as_deref(), Some("d1"));
        assert_eq!(
            index.get(file, &stat(8)),
            None,
            "another inode is another file"
        );
        // Another scope has a snapshot of its own.
        let other = StatIndex::new(&broken, false);
        other.use_snapshot(&snaps, "ws\0other.yaml");
        assert_eq!(other.get(file, &stat(7)), None);
    }

    #[test]
    fn a_damaged_snapshot_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snaps");
        let file = Path::new("/ws/b.bin");
        {
            let index = StatIndex::new(&dir.path().join("index"), true);
            index.use_snapshot(&snaps, "s");
            index.put(file, &stat(3), "d2");
        }
        let path = std::fs::read_dir(&snaps)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(decode_snapshot(&std::fs::read(&path).unwrap()).is_none());
        {
            let index = StatIndex::new(&dir.path().join("index"), true);
            index.use_snapshot(&snaps, "s");
            // sled still knows it; the process's use rewrites the snapshot.
            assert_eq!(index.get(file, &stat(3)).as_deref(), Some("d2"));
        }
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
}
