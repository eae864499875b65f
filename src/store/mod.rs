//! The content-addressed store and its index.
//!
//! Layout under the store root (default `runs/.store`):
//!
//! ```text
//! FORMAT              layout version
//! lock, lock.info     the dispatcher's exclusive lock and who holds it
//! index/              sled: stage records by key, latest key per stage, the stat cache
//! objects/ab/<digest>/ one stage's output directory, named by its Merkle digest, files read-only
//! scratch/<task>/     a running task's task file, outputs, logs and result file
//! roots/<run>.json    every recorded run of every workspace and the objects it keeps ([`Root`])
//! ```
//!
//! Owns atomic commits (scratch → verify → rename → index record), read-time verification and the
//! single-owner lock. Only the dispatcher opens a [`Store`]; workers only see their scratch folder.

mod index;
mod lock;
mod record;
mod roots;

pub use index::Index;
pub use record::{OutRecord, StageRecord};
pub use roots::{FoundRoot, ROOT_FORMAT, Root};

use std::fs;
use std::path::{Path, PathBuf};

use crate::fingerprint::{self, FileStat, FingerprintError, NoCache, StatCache};

/// Bumped whenever the layout or the record format changes incompatibly.
pub const STORE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store `{root}` is busy: {holder}")]
    Busy { root: PathBuf, holder: String },
    #[error("store i/o error on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store index `{path}` cannot be opened or written")]
    Index {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "the store `{root}` has layout format {found}; this binary reads format {STORE_FORMAT}"
    )]
    Format { root: PathBuf, found: String },
    #[error("a record in the index is unreadable: {0}")]
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

/// How to react when another process holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Block until the holder is done (after telling the user).
    Wait,
    /// Fail at once with [`StoreError::Busy`] (exit code 4).
    NoWait,
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

/// An open store: the lock is held for as long as this value lives.
pub struct Store {
    root: PathBuf,
    index: Index,
    _lock: lock::StoreLock,
}

impl Store {
    /// Opens (creating if needed) the store at `root` and takes its lock.
    pub fn open(root: &Path, wait: LockWait, on_wait: &dyn Fn(&str)) -> Result<Store, StoreError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let lock = lock::StoreLock::acquire(root, wait, on_wait)?;
        let format_file = root.join("FORMAT");
        match fs::read_to_string(&format_file) {
            Ok(found) if found.trim() == STORE_FORMAT.to_string() => {}
            // Empty: a store whose creation was cut short (a full disk, a kill) before FORMAT
            // got its bytes. Written again, atomically this time.
            Ok(found) if !found.trim().is_empty() => {
                return Err(StoreError::Format {
                    root: root.to_path_buf(),
                    found: found.trim().to_string(),
                });
            }
            _ => {
                let tmp = root.join("FORMAT.tmp");
                fs::write(&tmp, format!("{STORE_FORMAT}\n")).map_err(io(&tmp))?;
                fs::rename(&tmp, &format_file).map_err(io(&format_file))?;
            }
        }
        for d in ["objects", "scratch"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let index = Index::open(&root.join("index"))?;
        Ok(Store {
            root: root.to_path_buf(),
            index,
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn stat_cache(&self) -> &dyn StatCache {
        &self.index
    }

    pub fn object_path(&self, digest: &str) -> PathBuf {
        self.root.join("objects").join(&digest[..2]).join(digest)
    }

    pub fn scratch_root(&self) -> PathBuf {
        self.root.join("scratch")
    }

    /// Removes every scratch folder: with the lock held, none belongs to a live task.
    pub fn clean_scratch(&self) -> Result<usize, StoreError> {
        let dir = self.scratch_root();
        let mut n = 0;
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let p = e.map_err(io(&dir))?.path();
            make_writable(&p);
            fs::remove_dir_all(&p).map_err(io(&p))?;
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
        let dir = tempfile::Builder::new()
            .prefix(&format!("{safe}-"))
            .tempdir_in(self.scratch_root())
            .map_err(io(&self.scratch_root()))?;
        Ok(dir.keep())
    }

    /// Checks an object before use: through the stat cache, or fully when `paranoid`.
    pub fn verify_object(&self, digest: &str, paranoid: bool) -> ObjectState {
        let path = self.object_path(digest);
        // An object is a folder of its own: a symlink there (even to a folder) is none.
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return ObjectState::Missing;
        }
        let cache: &dyn StatCache = if paranoid { &NoCache } else { &self.index };
        match fingerprint::hash_path(&path, cache) {
            Ok(found) if found == digest => ObjectState::Intact,
            Ok(found) => ObjectState::Corrupt { found },
            Err(_) => ObjectState::Missing,
        }
    }

    /// Moves a verified scratch output folder into the store under `digest`.
    ///
    /// The folder is re-hashed here (the worker's claim is not trusted); a mismatch is an error
    /// and nothing is moved. An existing intact object with the same digest is kept and the
    /// scratch copy dropped; a corrupt one is replaced.
    pub fn commit_object(&self, scratch_out: &Path, claimed: &str) -> Result<PathBuf, StoreError> {
        unshare_links(scratch_out)?;
        set_read_only(scratch_out);
        let recorder = Recorder::default();
        let actual = fingerprint::hash_path(scratch_out, &recorder)?;
        if actual != claimed {
            return Err(StoreError::Record(format!(
                "the outputs in `{}` hash to {actual}, not to {claimed} as the worker reported",
                scratch_out.display()
            )));
        }
        let dest = self.object_path(&actual);
        let is_dir = fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir());
        if is_dir && self.verify_object(&actual, true) == ObjectState::Intact {
            make_writable(scratch_out);
            fs::remove_dir_all(scratch_out).map_err(io(scratch_out))?;
            return Ok(dest);
        }
        // A corrupt object, or what is no object at all where one belongs (a dangling symlink,
        // a plain file): cleared, so that the commit heals it instead of failing on every run.
        remove_path(&dest)?;
        let parent = dest.parent().expect("object path has a parent");
        fs::create_dir_all(parent).map_err(io(parent))?;
        fs::rename(scratch_out, &dest).map_err(io(&dest))?;
        // Files inside a renamed folder keep their inode and ctime: their stats stay valid.
        for (p, stat, d) in recorder.take() {
            if let Ok(rel) = p.strip_prefix(scratch_out) {
                self.index.put(&dest.join(rel), &stat, &d);
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
        for shard in fs::read_dir(&dir).map_err(io(&dir))? {
            let shard = shard.map_err(io(&dir))?.path();
            if !shard.is_dir() {
                continue;
            }
            for e in fs::read_dir(&shard).map_err(io(&shard))? {
                out.push(
                    e.map_err(io(&shard))?
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Removes whatever is at `p` without following it: an object folder (made writable first), a
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

fn walk_files(p: &Path, f: &mut dyn FnMut(&Path, bool)) {
    if let Ok(meta) = fs::symlink_metadata(p) {
        if meta.is_dir() {
            f(p, true);
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    walk_files(&e.path(), f);
                }
            }
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

/// Stored files are read-only so that a stray write fails instead of corrupting the cache.
fn set_read_only(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    walk_files(p, &mut |path, is_dir| {
        if !is_dir && let Ok(m) = fs::metadata(path) {
            let mode = m.permissions().mode() & !0o222;
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    });
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    walk_files(p, &mut |path, _| {
        if let Ok(m) = fs::metadata(path) {
            let mode = m.permissions().mode() | 0o200;
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    });
}
