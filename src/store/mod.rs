//! The content-addressed store, shared by any number of processes at once.
//!
//! Layout under the store root (default `runs/.store`; docs/design.md, "The store"):
//!
//! ```text
//! FORMAT                  layout version
//! objects/ab/<digest>/    one stage's output folder, named by its Merkle digest, read-only
//! records/ab/<key>.json   one committed stage per key ([`StageRecord`]): the truth of the cache
//! latest/<id>.json        the key a stage of an experiment last ran or was found fresh with
//! claims/<key>.lock       a key being computed: locked by the computing process, says who
//! sessions/<id>.lock      one per live writing process: locked while it lives ([`Session`])
//! sessions/<id>.pins      the objects that process read or committed, kept by `gc`
//! gc.lock                 shared while a process pins objects, exclusive while `gc` sweeps
//! index/                  sled: the stat cache (path → stat + digest), opened for short sessions
//! scratch/<session>/<t>/  a running task's task file, outputs, logs and result file
//! roots/<run>.json        every recorded run of every workspace and the objects it keeps ([`Root`])
//! ```
//!
//! Owns atomic commits (scratch → verify → rename → record file), read-time verification,
//! claims, pins and the roots. No lock is held for a run: every exclusive section is one file
//! rename, one claim or one gc sweep. Workers never open a [`Store`]; they only see their
//! scratch folder.

mod claim;
mod index;
mod record;
mod records;
mod roots;
mod session;

pub use claim::{Claim, ClaimGuard, Holder};
pub use index::StatIndex;
pub use record::{OutRecord, StageRecord};
pub use roots::{FoundRoot, ROOT_FORMAT, Root};
pub use session::{LiveSession, Owner, PinGuard, Session};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fingerprint::{self, FileStat, FingerprintError, NoCache, StatCache};

/// Bumped whenever the layout or the record format changes incompatibly. Format 1 kept records
/// in the sled index and let one process at a time open the store; it is upgraded in place.
pub const STORE_FORMAT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "stage `{stage}` is being computed by {holder}; without --no-wait this run waits for it and reuses its result"
    )]
    Claimed { stage: String, holder: String },
    #[error(
        "the store `{root}` is read-only: this command writes objects and records there; point \
         --store (or ORCHESTRATE_STORE) at a writable folder, or inspect this one with \
         `status`, `ls`, `show`, `plan` or `report`"
    )]
    ReadOnly {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store i/o error on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store `{root}` has layout format {found}; this binary reads format {STORE_FORMAT}"
    )]
    Format { root: PathBuf, found: String },
    #[error("a record in the store is unreadable: {0}")]
    Record(String),
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state of a stored object when it is about to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    Intact,
    Missing,
    /// Its content no longer matches its name; `found` is what it hashes to now.
    Corrupt {
        found: String,
    },
}

/// An open store. A writer ([`Store::open`]) holds a [`Session`] for as long as it lives; a
/// reader ([`Store::open_read`]) writes nothing at all, so it also works on a read-only copy.
/// The folder of the stat snapshots ([`StatIndex::use_snapshot`]).
const STAT_SNAPSHOTS: &str = "stat-snapshots";

pub struct Store {
    root: PathBuf,
    stat: StatIndex,
    session: Option<Session>,
}

impl Store {
    /// Opens (creating if needed) the store at `root` for writing: starts this process's
    /// session, and removes the scratch folders of sessions that died.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if let Err(e) = fs::create_dir_all(root) {
            return Err(read_only_or(root, e));
        }
        let format = check_format(root, true)?;
        for d in ["objects", "records", "scratch"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| read_only_or(&p, e))?;
        }
        let session = Session::start(root).map_err(|e| match e {
            StoreError::Io { path, source } => read_only_or(&path, source),
            e => e,
        })?;
        let store = Store {
            root: root.to_path_buf(),
            stat: StatIndex::new(&root.join("index"), true),
            session: Some(session),
        };
        if format == 1 {
            store.migrate_format_1()?;
        }
        store.clean_scratch()?;
        Ok(store)
    }

    /// Opens the store at `root` for reading: creates nothing, takes no lock, writes no record
    /// (a store that does not exist yet reads as empty), waits for nobody. What it hashes is
    /// remembered in the stat cache when the store is writable.
    pub fn open_read(root: &Path) -> Result<Store, StoreError> {
        if root.join("FORMAT").exists() {
            check_format(root, false)?;
        }
        let writable = is_writable(root);
        Ok(Store {
            root: root.to_path_buf(),
            stat: StatIndex::new(&root.join("index"), writable),
            session: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stat_cache(&self) -> &dyn StatCache {
        &self.stat
    }

    /// Writes what the stat cache learnt and closes it, so that other processes can open it:
    /// called between batches of work (after planning, after each commit).
    pub fn checkpoint(&self) {
        self.stat.checkpoint();
    }

    pub fn object_path(&self, digest: &str) -> PathBuf {
        self.root.join("objects").join(&digest[..2]).join(digest)
    }

    /// Forgets the stat-cache entries under `prefix` (an object about to be collected).
    pub fn forget_stats(&self, prefix: &Path) {
        self.stat.remove_prefix(prefix);
    }

    /// Puts the stat snapshot of `scope` (a workspace's experiment file) in front of the stat
    /// cache for this process ([`StatIndex::use_snapshot`]).
    pub fn use_stat_snapshot(&self, scope: &str) {
        self.stat
            .use_snapshot(&self.root.join(STAT_SNAPSHOTS), scope);
    }

    /// Deletes every scope's stat snapshot (gc, after collecting objects: the snapshots are
    /// rebuilt by the next runs).
    pub fn drop_stat_snapshots(&self) {
        let _ = fs::remove_dir_all(self.root.join(STAT_SNAPSHOTS));
    }

    fn session(&self) -> Result<&Session, StoreError> {
        self.session.as_ref().ok_or_else(|| {
            StoreError::Record("internal: a read-only store was asked to write".into())
        })
    }

    /// Removes the scratch folders of processes that are no longer alive (a live session's
    /// folder is its running tasks' work). Returns how many were removed.
    pub fn clean_scratch(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("scratch");
        let own = self.session.as_ref().map(|s| s.id().to_string());
        let live: Vec<String> = self.live_sessions()?.into_iter().map(|s| s.id).collect();
        let mut n = 0;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if own.as_deref() == Some(name.as_str()) || live.contains(&name) {
                continue;
            }
            remove_path(&e.path())?;
            n += 1;
        }
        Ok(n)
    }

    /// A new, empty scratch folder for one attempt of one task.
    pub fn new_scratch(&self, label: &str) -> Result<PathBuf, StoreError> {
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        let root = self.session()?.scratch();
        fs::create_dir_all(root).map_err(io(root))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{safe}-"))
            .tempdir_in(root)
            .map_err(io(root))?;
        Ok(dir.keep())
    }

    /// Checks an object before use: through the stat cache, or fully when `paranoid`.
    pub fn verify_object(&self, digest: &str, paranoid: bool) -> ObjectState {
        let path = self.object_path(digest);
        // An object is a folder of its own: a symlink there (even to a folder) is none.
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return ObjectState::Missing;
        }
        let cache: &dyn StatCache = if paranoid { &NoCache } else { &self.stat };
        match fingerprint::hash_path(&path, cache) {
            Ok(found) if found == digest => ObjectState::Intact,
            Ok(found) => ObjectState::Corrupt { found },
            Err(_) => ObjectState::Missing,
        }
    }

    /// Moves a verified scratch output folder into the store under `digest`. The caller holds
    /// a [`PinGuard`]: the object is pinned before it appears, so that no `gc` can take it
    /// before the run that made it records a root.
    ///
    /// The folder is re-hashed here (the worker's claim is not trusted); a mismatch is an error
    /// and nothing is moved. An existing intact object with the same digest is kept and the
    /// scratch copy dropped; a corrupt one is replaced.
    pub fn commit_object(
        &self,
        guard: &PinGuard,
        scratch_out: &Path,
        claimed: &str,
    ) -> Result<PathBuf, StoreError> {
        unshare_links(scratch_out)?;
        set_read_only(scratch_out, false);
        let recorder = Recorder::default();
        let actual = fingerprint::hash_path(scratch_out, &recorder)?;
        if actual != claimed {
            return Err(StoreError::Record(format!(
                "the outputs in `{}` hash to {actual}, not to {claimed} as the worker reported",
                scratch_out.display()
            )));
        }
        self.pin(guard, &actual)?;
        let dest = self.object_path(&actual);
        let is_dir = fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir());
        if is_dir && self.verify_object(&actual, true) == ObjectState::Intact {
            remove_path(scratch_out)?;
            return Ok(dest);
        }
        // A corrupt object, or what is no object at all where one belongs (a dangling symlink,
        // a plain file): cleared, so that the commit heals it instead of failing on every run.
        remove_path(&dest)?;
        let parent = dest.parent().expect("object path has a parent");
        fs::create_dir_all(parent).map_err(io(parent))?;
        if let Err(e) = fs::rename(scratch_out, &dest) {
            // Another process committed the same object a moment ago: theirs is as good.
            if self.verify_object(&actual, true) == ObjectState::Intact {
                remove_path(scratch_out)?;
                return Ok(dest);
            }
            return Err(io(&dest)(e));
        }
        // Folders become read-only only now: moving a folder needs it writable.
        set_read_only(&dest, true);
        // Files inside a renamed folder keep their inode and ctime: their stats stay valid.
        for (p, stat, d) in recorder.take() {
            if let Ok(rel) = p.strip_prefix(scratch_out) {
                self.stat.put(&dest.join(rel), &stat, &d);
            }
        }
        Ok(dest)
    }

    /// Deletes an object folder (garbage collection, or a corrupt object before recompute).
    pub fn remove_object(&self, digest: &str) -> Result<(), StoreError> {
        remove_path(&self.object_path(digest))
    }

    /// Every object digest present on disk.
    pub fn object_digests(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("objects");
        let mut out = Vec::new();
        for shard in read_dir_or_empty(&dir)? {
            if !shard.is_dir() {
                continue;
            }
            for e in fs::read_dir(&shard).map_err(io(&shard))? {
                let name = e.map_err(io(&shard))?.file_name();
                let name = name.to_string_lossy();
                // A commit of another process in flight leaves nothing here but the final name.
                if !name.starts_with('.') {
                    out.push(name.into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Upgrades a format-1 store: its records and latest keys move from the sled index into
    /// files. Done once, by the first writer of this binary; the stat cache stays in sled.
    fn migrate_format_1(&self) -> Result<(), StoreError> {
        let format = self.root.join("FORMAT");
        let _guard = self.collect_guard()?;
        // Another writer may have upgraded it while this one waited for the guard.
        if fs::read_to_string(&format).is_ok_and(|f| f.trim() == STORE_FORMAT.to_string()) {
            return Ok(());
        }
        let (records, latest) = self.stat.export_format_1();
        for rec in &records {
            self.put_record(rec)?;
        }
        for (experiment, stage, key_json) in &latest {
            self.set_latest(experiment, stage, key_json)?;
        }
        write_atomic(&format, format!("{STORE_FORMAT}\n").as_bytes())?;
        eprintln!(
            "{:>12} the store `{}` to layout format {STORE_FORMAT} ({} record(s) moved out of the index)",
            "Upgraded",
            self.root.display(),
            records.len()
        );
        Ok(())
    }
}

/// Checks (and, for a writer, creates or heals) the `FORMAT` file; returns the format found
/// (1 for a store a writer must upgrade).
fn check_format(root: &Path, writer: bool) -> Result<u32, StoreError> {
    let format_file = root.join("FORMAT");
    match fs::read_to_string(&format_file) {
        Ok(found) if found.trim() == STORE_FORMAT.to_string() => Ok(STORE_FORMAT),
        // Format 1 is upgraded by the first writer (`migrate_format_1`).
        Ok(found) if found.trim() == "1" && writer => Ok(1),
        // Empty: a store whose creation was cut short (a full disk, a kill) before FORMAT got
        // its bytes. Written again, atomically this time.
        Ok(found) if !found.trim().is_empty() => Err(StoreError::Format {
            root: root.to_path_buf(),
            found: found.trim().to_string(),
        }),
        _ if writer => {
            let fresh = !root.join("objects").exists();
            // A store without FORMAT but with objects was made by format 1 (whose FORMAT was
            // lost): its index is read as format 1.
            let v = if fresh || root.join("records").exists() {
                STORE_FORMAT
            } else {
                1
            };
            write_atomic(&format_file, format!("{v}\n").as_bytes())?;
            Ok(v)
        }
        _ => Ok(STORE_FORMAT),
    }
}

/// Whether this process can create files in `dir` (a read-only mount, another user's store).
fn is_writable(dir: &Path) -> bool {
    tempfile::tempfile_in(dir).is_ok()
}

fn read_only_or(path: &Path, e: std::io::Error) -> StoreError {
    match e.raw_os_error() {
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => StoreError::ReadOnly {
            root: path.to_path_buf(),
            source: e,
        },
        _ => io(path)(e),
    }
}

/// The entries of a folder, or none when it does not exist.
fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()).map_err(io(dir)))
            .collect::<Result<Vec<_>, _>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Writes a file so that readers see the old bytes or the new ones, never half: a temporary
/// name of this process's own, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("a store file has a parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Removes whatever is at `p` without following it: a folder (made writable first), a
/// symlink (dangling or not) or a plain file. Nothing there is fine.
fn remove_path(p: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            make_writable(p);
            fs::remove_dir_all(p).map_err(io(p))
        }
        Ok(_) => fs::remove_file(p).map_err(io(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io {
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// A stat cache that hits nothing and remembers what it was told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(PathBuf, FileStat, String)>>);

impl Recorder {
    fn take(self) -> Vec<(PathBuf, FileStat, String)> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl StatCache for Recorder {
    fn get(&self, _: &Path, _: &FileStat) -> Option<String> {
        None
    }
    fn put(&self, path: &Path, stat: &FileStat, digest: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((
            path.to_path_buf(),
            *stat,
            digest.to_string(),
        ));
    }
}

/// Calls `f` on `p` and everything under it (not following symlinks), folders after their
/// contents, so that a folder's mode changes last.
fn walk_files(p: &Path, f: &mut dyn FnMut(&Path, bool)) {
    if let Ok(meta) = fs::symlink_metadata(p) {
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    walk_files(&e.path(), f);
                }
            }
            f(p, true);
        } else if meta.is_file() {
            f(p, false);
        }
    }
}

/// Gives every output file that has other hard links (`ln {deps.raw} {outs.copy}`) an inode of
/// its own, so that making stored files read-only never changes the permissions of a user's
/// file or of another object's.
fn unshare_links(p: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let mut shared = Vec::new();
    walk_files(p, &mut |path, is_dir| {
        if !is_dir && fs::symlink_metadata(path).is_ok_and(|m| m.nlink() > 1) {
            shared.push(path.to_path_buf());
        }
    });
    for f in shared {
        let mut name = f.file_name().unwrap_or_default().to_os_string();
        name.push(".unshared");
        let tmp = f.with_file_name(name);
        fs::copy(&f, &tmp).map_err(io(&tmp))?;
        fs::rename(&tmp, &f).map_err(io(&f))?;
    }
    Ok(())
}

/// Stored objects are read-only, files and (with `folders`) folders, so that a stray write, a
/// `sed -i` or a new file fails instead of changing the cache. (Root ignores modes: the
/// dispatcher also checks every stage's stored inputs when the stage ends.)
fn set_read_only(p: &Path, folders: bool) {
    use std::os::unix::fs::PermissionsExt;
    walk_files(p, &mut |path, is_dir| {
        if (!is_dir || folders)
            && let Ok(m) = fs::metadata(path)
        {
            let mode = m.permissions().mode() & !0o222;
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    });
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Folders first (walk_files visits them last): each must be writable before its entries
    // can be removed, so make every folder writable top-down.
    fn folders(p: &Path) {
        if let Ok(m) = fs::symlink_metadata(p)
            && m.is_dir()
        {
            let mode = m.permissions().mode() | 0o700;
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    folders(&e.path());
                }
            }
        }
    }
    folders(p);
    walk_files(p, &mut |path, is_dir| {
        if !is_dir && let Ok(m) = fs::metadata(path) {
            let mode = m.permissions().mode() | 0o200;
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> StageRecord {
        StageRecord {
            key: key.to_string(),
            key_json: serde_json::json!({"format": 1, "stage": "s"}),
            experiment: "e".into(),
            stage: "s".into(),
            kind: "command".into(),
            object: "ab".repeat(32),
            outs: Default::default(),
            started_at: "2026-12-01T00:00:00Z".into(),
            duration_ms: 1,
            attempts: 1,
            host: "h".into(),
            threads: 1,
            devices: Vec::new(),
            command: None,
            stdout: String::new(),
            stderr: String::new(),
            metrics: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_format_1_store_is_upgraded_with_its_records_and_latest_keys() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let key = "0123456789abcdef".repeat(4);
        {
            let db = sled::open(root.join("index")).unwrap();
            let rec = record(&key);
            db.open_tree("records")
                .unwrap()
                .insert(key.as_bytes(), serde_json::to_vec(&rec).unwrap())
                .unwrap();
            db.open_tree("latest")
                .unwrap()
                .insert(b"e\0s", serde_json::to_vec(&rec.key_json).unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        fs::write(root.join("FORMAT"), "1\n").unwrap();
        let store = Store::open(root).unwrap();
        assert_eq!(fs::read_to_string(root.join("FORMAT")).unwrap(), "2\n");
        assert_eq!(store.record(&key).unwrap().unwrap().stage, "s");
        assert_eq!(
            store.latest("e", "s").unwrap(),
            Some(serde_json::json!({"format": 1, "stage": "s"}))
        );
        assert_eq!(store.records().unwrap().len(), 1);
    }

    #[test]
    fn a_record_file_that_is_not_a_record_of_its_key_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = "fe".repeat(32);
        store.put_record(&record(&key)).unwrap();
        assert!(store.record(&key).unwrap().is_some());
        let path = store.record_path(&key);
        fs::write(&path, b"{garbage").unwrap();
        assert!(store.record(&key).unwrap().is_none());
        // Another key's record copied under this name is not this key's.
        fs::write(
            &path,
            serde_json::to_vec(&record(&"cd".repeat(32))).unwrap(),
        )
        .unwrap();
        assert!(store.record(&key).unwrap().is_none());
        assert!(store.record("../../etc/passwd").unwrap().is_none());
    }

    #[test]
    fn a_claim_is_exclusive_until_its_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap();
        let b = Store::open(dir.path()).unwrap();
        let key = "12".repeat(32);
        let Claim::Held(guard) = a.try_claim(&key, "s").unwrap() else {
            panic!("the first claim is held");
        };
        match b.try_claim(&key, "s").unwrap() {
            Claim::Busy(h) => assert_eq!(h.owner.unwrap().pid, std::process::id()),
            Claim::Held(_) => panic!("a held claim is not given twice"),
        }
        drop(guard);
        assert!(matches!(b.try_claim(&key, "s").unwrap(), Claim::Held(_)));
    }
}
